"""The demo generator's output is pinned: a refactor must not change what a seed produces.

The digests cover every field of every generated patient and visit (names, contact data, dates,
observations with their units, diagnoses, free text) and the engine's tabular view of them. If a
change to the generator is *meant* to change the data, update the digests in the same commit and
say why in its message.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import UTC, date, datetime

from visits.demo import generate_population, population_frame

END = datetime(2025, 6, 1, tzinfo=UTC)
POPULATION_SHA256 = "b4ecd6d0dbbddab696ca9eef31b747b58ab16152b4ebc856e9571b7530e6b3c6"
FRAME_SHA256 = "214c66b9b4cd01fe58550fca37f790fdfa586fe0dd58b73f81868f7ab4cfdfd6"


def _json_default(value: object) -> str:
    if isinstance(value, date):  # datetimes are dates too
        return value.isoformat()
    raise TypeError(f"unexpected {type(value).__name__} in generated data")


def test_same_seed_gives_the_pinned_population_and_frame():
    population = generate_population(n_visits=1500, seed=7, end=END)
    records = [asdict(p) for p in population.patients] + [asdict(v) for v in population.visits]
    blob = json.dumps(records, default=_json_default, sort_keys=True).encode()
    assert len(population.visits) == 1500
    assert hashlib.sha256(blob).hexdigest() == POPULATION_SHA256
    frame_csv = population_frame(population).to_csv(index=False).encode()
    assert hashlib.sha256(frame_csv).hexdigest() == FRAME_SHA256
