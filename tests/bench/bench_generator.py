"""Demo generator speed: 10,000 visits (and their table for the engine), median of a few runs.

Run: ``python tests/bench/bench_generator.py [--visits 10000] [--repeats 3]``. Needs no database.
Prints the timings and writes var/bench/generator.json. Timings are reported, never asserted
(STYLE.md); the run does check that it generated what it was asked for.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from visits.demo import generate_population, population_frame  # noqa: E402 - after path fix

END = datetime(2025, 6, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--visits", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    generate_s, frame_s = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        population = generate_population(n_visits=args.visits, seed=11, end=END)
        generated = time.perf_counter()
        frame = population_frame(population)
        generate_s.append(generated - started)
        frame_s.append(time.perf_counter() - generated)
        if len(population.visits) != args.visits or len(frame) != args.visits:
            raise SystemExit(f"generated {len(population.visits)} visits, not {args.visits}")
    result = {
        "visits": args.visits,
        "patients": len(population.patients),
        "repeats": args.repeats,
        "generate_s_median": round(statistics.median(generate_s), 3),
        "frame_s_median": round(statistics.median(frame_s), 3),
    }
    print(
        f"{args.visits:,} visits ({result['patients']:,} patients): generate "
        f"{result['generate_s_median']:.2f} s, table {result['frame_s_median']:.2f} s "
        f"(median of {args.repeats})"
    )
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "generator.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
