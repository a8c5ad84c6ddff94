"""Interoperability: the standard doors in and out of MedAI (issue 16).

A Django app of its own (label ``interop``) inside ``predictions``, the top layer, because what
it serves reaches every app below: patients, visits and predictions' advice (as FHIR
RiskAssessment). It writes only through the services of the apps that own the tables.

* ``fhir_out``: MedAI rows → FHIR R4 resources (dicts), the read API's one mapping.
* ``selectors``: the read API's scoped, audited reads.
* ``api``: the read-only FHIR R4 API under ``/fhir/r4/``.
"""
