"""CDS Hooks 2.0: MedAI's models and rules as decision support inside an EHR.

``auth`` (the EHR's JWT), ``fhir`` (prefetch -> the prediction service's inputs), ``cards``
(the services and their cards), ``views``/``urls`` (the endpoints).
"""
