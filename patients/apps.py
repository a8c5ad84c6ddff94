from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "patients"

    def ready(self) -> None:
        # The base's audit report finds a patient by MRN, and its pages show MRNs instead of
        # bare ids, through patients (the base imports no app; docs/architecture.md).
        from medai_site.audit_report import patient_lookup_register

        from .selectors import patient_id_for_mrn, patient_mrns

        patient_lookup_register(patient_id_for_mrn, patient_mrns)
