"""A synthetic clinical population for the demo, the tests and the benchmarks.

No database is needed to generate one (numpy, pandas and the clinical catalogue only);
``manage.py seed_demo`` writes one into the database through :mod:`visits.demo_import`, which
imports it through the patients' and visits' bulk services.

The data is deliberately messy in the ways real records are: labs are measured only when a
clinician would plausibly order them, some vitals are entered in alternative units (°F, lb,
mmol/L - the unit actually used is recorded with the value), free text has synonyms, negations,
abbreviations, typos and inconsistent case and is sometimes sparse or misleading, about a third
of the notes are written in Chinese (complaint, history, examination and plan), complaints are
sometimes written as triage writes them (with an associated symptom), conditions
overlap in their signs, some visits carry a secondary diagnosis, chronic conditions recur for the
same patient and the odd visit is an exact duplicate of another.

Modules: :mod:`~visits.demo.generator` (the draw, step by step), :mod:`~visits.demo.conditions`
(what each condition looks like), :mod:`~visits.demo.measurements` (baselines, bounds, units as
written), :mod:`~visits.demo.texts` (the notes; :mod:`~visits.demo.texts_zh` the Chinese ones),
:mod:`~visits.demo.people` (names, contact data,
allergies), :mod:`~visits.demo.population` (the result and its table for the engine).
"""

from .conditions import CONDITIONS
from .generator import VISIT_TYPES, generate_population
from .measurements import ALTERNATIVE_UNITS, GENERATION_BOUNDS
from .population import (
    Population,
    SyntheticAllergy,
    SyntheticObservation,
    SyntheticPatient,
    SyntheticVisit,
    population_frame,
)

__all__ = [
    "ALTERNATIVE_UNITS",
    "CONDITIONS",
    "GENERATION_BOUNDS",
    "VISIT_TYPES",
    "Population",
    "SyntheticAllergy",
    "SyntheticObservation",
    "SyntheticPatient",
    "SyntheticVisit",
    "generate_population",
    "population_frame",
]
