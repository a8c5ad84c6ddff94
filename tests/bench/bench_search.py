"""Patient search at hospital scale: median and p95 of a blind-index search among 100,000 patients.

Run: `MEDAI_PROFILE=test python tests/bench/bench_search.py [--patients N]` (uses and drops its own
database `medai_bench_search`). Prints a table and writes var/bench/search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MEDAI_PROFILE", "test")
os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/medai_bench_search"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medai_site.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS medai_bench_search")
        conn.execute("CREATE DATABASE medai_bench_search")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from patients.models import Patient
    from patients.selectors import patient_search
    from patients.services import PatientInput, patients_bulk_import
    from tests.factories import CareTeamFactory, DoctorFactory
    from visits.demo import generate_population

    doctor = DoctorFactory(username="bench_doctor")
    team = CareTeamFactory(name="bench", members=[doctor])
    started = time.perf_counter()
    population = generate_population(n_visits=int(args.patients * 1.6) + 10, seed=3)
    people = population.patients[: args.patients]
    # Through the bulk service, as a migration from another system would load them.
    patients_bulk_import(
        patients=[
            PatientInput(
                mrn=p.mrn,
                sex=p.sex,
                given_name=p.given_name,
                family_name=p.family_name,
                birth_date=p.birth_date,
                phone=p.phone,
                national_id=p.national_id,
                care_teams=(team,),
            )
            for p in people
        ],
        actor=None,
    )
    load_s = time.perf_counter() - started
    n = Patient.objects.count()

    sample = people[:: max(1, len(people) // args.queries)][: args.queries]
    timings: dict[str, list[float]] = {
        "full name": [],
        "family name": [],
        "phone": [],
        "national id": [],
        "MRN": [],
    }
    for p in sample:
        for kind, query in (
            ("full name", f"{p.given_name} {p.family_name}"),
            ("family name", p.family_name),
            ("phone", p.phone),
            ("national id", p.national_id),
            ("MRN", p.mrn),
        ):
            t0 = time.perf_counter()
            hits = list(patient_search(viewer=doctor, query=query))
            timings[kind].append((time.perf_counter() - t0) * 1000)
            assert hits, (kind, query)
    result = {
        "patients": n,
        "load_seconds": round(load_s, 1),
        "queries_per_kind": len(sample),
        "ms": {},
    }
    print(
        f"{n} patients loaded in {load_s:.0f} s; {len(sample)} searches per kind (results decrypted and checked)"
    )
    print(f"{'search by':<14}{'median ms':>10}{'p95 ms':>10}")
    for kind, values in timings.items():
        values.sort()
        med, p95 = statistics.median(values), values[int(0.95 * (len(values) - 1))]
        result["ms"][kind] = {"median": round(med, 2), "p95": round(p95, 2)}
        print(f"{kind:<14}{med:>10.2f}{p95:>10.2f}")
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(json.dumps(result, indent=2))
    from django.db import connections

    connections.close_all()
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS medai_bench_search")


if __name__ == "__main__":
    main()
