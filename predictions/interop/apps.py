from django.apps import AppConfig


class InteropConfig(AppConfig):
    """FHIR R4 read API and the import doors (FHIR, HL7 v2, CSV); see the package docstring."""

    name = "predictions.interop"
    label = "interop"
    verbose_name = "Interoperability (FHIR, HL7 v2, CSV)"
