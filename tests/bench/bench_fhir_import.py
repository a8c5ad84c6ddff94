"""FHIR import at hospital scale: one Bundle of 1,000 patients with 100,000 observations.

Run: ``MEDAI_PROFILE=test python tests/bench/bench_fhir_import.py [--patients 1000]
[--encounters 10] [--observations 10]`` (uses and drops its own database ``medai_bench_fhir``).
Writes the Bundle (a collection, written entry by entry) to a temporary file, imports it with
``fhir_import`` (validation with fhir.resources, the services, the audit trail: everything a real
import does), then imports it again (everything unchanged). Prints the figures and writes
``var/bench/fhir_import.json``. The goal (issue 16) is under 2 minutes; it is reported, never
asserted (STYLE.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MEDAI_PROFILE", "test")
os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/medai_bench_fhir"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medai_site.settings")

# Ten catalogued codes with typical values and their UCUM units.
CODES = [
    ("8867-4", 60, 110, "/min"),
    ("9279-1", 12, 24, "/min"),
    ("8310-5", 36.0, 38.5, "Cel"),
    ("2708-6", 92, 100, "%"),
    ("29463-7", 50, 110, "kg"),
    ("2345-7", 4.0, 9.0, "mmol/L"),
    ("718-7", 10, 16, "g/dL"),
    ("2160-0", 0.6, 1.4, "mg/dL"),
    ("2951-2", 134, 146, "mmol/L"),
    ("2823-3", 3.4, 5.3, "mmol/L"),
]


def write_bundle(path: Path, patients: int, encounters: int, observations: int) -> int:
    rng = random.Random(16)
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    count = 0
    with path.open("w") as out:
        out.write('{"resourceType": "Bundle", "type": "collection", "entry": [\n')
        first = True

        def entry(resource: dict) -> None:
            nonlocal first, count
            out.write(("" if first else ",\n") + json.dumps({"resource": resource}))
            first = False
            count += 1

        for p in range(patients):
            entry(
                {
                    "resourceType": "Patient",
                    "id": f"p{p}",
                    "identifier": [
                        {"type": {"coding": [{"code": "MR"}]}, "value": f"BENCH-{p:06d}"}
                    ],
                    "name": [{"family": f"Family{p}", "given": [f"Given{p}"]}],
                    "gender": "female" if p % 2 else "male",
                    "birthDate": f"{1940 + p % 60}-0{1 + p % 9}-1{p % 9}",
                }
            )
            for e in range(encounters):
                when = start + dt.timedelta(days=30 * e + p % 30)
                entry(
                    {
                        "resourceType": "Encounter",
                        "id": f"e{p}-{e}",
                        "status": "finished",
                        "class": {"code": "AMB"},
                        "subject": {"reference": f"Patient/p{p}"},
                        "period": {
                            "start": when.isoformat(),
                            "end": (when + dt.timedelta(hours=1)).isoformat(),
                        },
                    }
                )
                for o in range(observations):
                    code, low, high, unit = CODES[o % len(CODES)]
                    entry(
                        {
                            "resourceType": "Observation",
                            "id": f"o{p}-{e}-{o}",
                            "status": "final",
                            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                            "subject": {"reference": f"Patient/p{p}"},
                            "encounter": {"reference": f"Encounter/e{p}-{e}"},
                            "effectiveDateTime": when.isoformat(),
                            "valueQuantity": {
                                "value": round(rng.uniform(low, high), 1),
                                "unit": unit,
                                "system": "http://unitsofmeasure.org",
                                "code": unit,
                            },
                        }
                    )
        out.write("\n]}\n")
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--encounters", type=int, default=10)
    parser.add_argument("--observations", type=int, default=10, help="per encounter")
    parser.add_argument("--profile", action="store_true", help="print the first import's profile")
    args = parser.parse_args()

    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS medai_bench_fhir")
        conn.execute("CREATE DATABASE medai_bench_fhir")
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from predictions.interop.services import fhir_import
        from tests.factories import AdminFactory, CareTeamFactory
        from visits.models import Observation

        admin = AdminFactory(username="bench_admin")
        team = CareTeamFactory(name="bench")
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp) / "bundle.json"
            resources = write_bundle(bundle, args.patients, args.encounters, args.observations)
            size_mb = bundle.stat().st_size / 1e6
            profiler = None
            if args.profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            started, cpu = time.perf_counter(), time.process_time()
            first = fhir_import(paths=[bundle], actor=admin, care_teams=[team], source="bench")
            first_s = time.perf_counter() - started
            first_cpu = time.process_time() - cpu
            if profiler is not None:
                import pstats

                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            if profiler is not None:
                profiler = cProfile.Profile()
                profiler.enable()
            started = time.perf_counter()
            again = fhir_import(paths=[bundle], actor=admin, care_teams=[team], source="bench")
            again_s = time.perf_counter() - started
            if profiler is not None:
                profiler.disable()
                print("--- re-import ---")
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        result = {
            "patients": args.patients,
            "encounters": args.patients * args.encounters,
            "observations": args.patients * args.encounters * args.observations,
            "resources": resources,
            "bundle_mb": round(size_mb, 1),
            "import_seconds": round(first_s, 1),
            "resources_per_second": round(resources / first_s),
            # This process's CPU seconds (PostgreSQL's own work not included): on a shared
            # machine the wall time above includes waiting for the CPU.
            "import_cpu_seconds": round(first_cpu, 1),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "reimport_seconds": round(again_s, 1),
            "stored_observations": Observation.objects.count(),
            "first_totals": first.as_dict()["totals"],
            "reimport_totals": again.as_dict()["totals"],
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        }
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True
        ) as conn:
            conn.execute("DROP DATABASE IF EXISTS medai_bench_fhir")
    print(json.dumps(result, indent=2))
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fhir_import.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
