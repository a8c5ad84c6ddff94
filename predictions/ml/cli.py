"""``python -m predictions.ml evaluate ...``: the command-line contract of DESIGN.md.

Bad input (missing file, unknown column, one-class target, empty file) ends with one line on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only light imports here (the module docstring is the --help text, so the note is a comment):
# the arguments are parsed, the data read and its target checked before the learners (scikit-learn,
# torch) are imported, so bad input fails in well under a second (tests/.../test_cli_startup.py).
from predictions.ml.errors import DataError, EngineError
from predictions.ml.names import ALGORITHM_NAMES, REPRESENTATION_NAMES
from predictions.ml.timeline.cli import add_forecast_parser, run_forecast

if TYPE_CHECKING:
    from predictions.ml.pipeline import TrainedModel

EXIT_BAD_INPUT = 2
DEFAULT_OUT = "ml-report"
DEFAULT_FOLDS = 10  # the published reference results are 10-fold cross-validated


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m predictions.ml", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("evaluate", help="cross-validate, select, calibrate and report")
    evaluate.add_argument("--data", required=True, type=Path, help="CSV file with a header")
    evaluate.add_argument("--target", required=True, help="column to predict")
    evaluate.add_argument("--positive", nargs="+", help="target values forming the positive class")
    evaluate.add_argument("--group", help="patient id column for grouped splitting")
    evaluate.add_argument(
        "--external", nargs="+", type=Path, default=[], help="external validation CSVs"
    )
    evaluate.add_argument("--cv", type=int, default=DEFAULT_FOLDS, help="outer folds (default 10)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument(
        "--algorithms",
        nargs="+",
        choices=list(ALGORITHM_NAMES),
        help="default: the six classical learners (cnn_text and gru_text are opt-in)",
    )
    evaluate.add_argument(
        "--text-representations",
        nargs="+",
        choices=list(REPRESENTATION_NAMES),
        help="free-text representations to cross-validate (default: word, word+char, "
        "word-top for dense learners, sequence for the neural ones)",
    )
    evaluate.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help="report directory")
    add_forecast_parser(commands)
    return parser


def _external_metrics(
    model: TrainedModel, path: Path, target: str, positive: list[str] | None
) -> dict[str, Any]:
    from predictions.ml.dataset import normalise_label, read_csv
    from predictions.ml.evaluate import evaluate_predictions

    frame = read_csv(path)
    if target not in frame.columns:
        raise DataError(f"external file {path}: target column {target!r} not found")
    labels = frame[target].map(normalise_label)
    if positive:
        wanted = {normalise_label(v) for v in positive}
        labels = labels.map(
            lambda v: None if v is None else ("positive" if v in wanted else "negative")
        )
    usable = labels.isin(model.classes).to_numpy()
    proba = model.predict_frame(frame[usable])
    entry: dict[str, Any] = {
        "path": str(path),
        "rows": len(frame),
        "rows_scored": int(usable.sum()),
        "rows_dropped_unknown_or_missing_label": int((~usable).sum()),
    }
    if usable.sum() and len(set(labels[usable])) >= 1:
        entry["metrics"] = evaluate_predictions(labels[usable].to_numpy(), proba, model.classes)
    else:
        entry["metrics"] = None
    return entry


def _cell(value: Any) -> str:
    """A table cell: six characters wide, a dash when the metric does not apply."""
    from predictions.ml.metric_format import format_metric

    return format_metric(value, missing="   -  ", width=6)


def print_table(report: dict[str, Any]) -> None:
    multiclass = report["task"] == "multiclass"
    data = report["dataset"]
    print(
        f"{data['rows']} rows ({data['rows_used']} used), {data['columns']} columns, "
        f"{report['task']} over {len(report['classes'])} classes, "
        f"{report['cv']['folds']}-fold grouped CV (seed {report['cv']['seed']})"
    )
    extra = "  top3" if multiclass else "  sens  spec"
    print(
        f"{'model':<22}  acc   bal_acc  roc_auc  [95% CI]        brier  (base)   ece  log_loss{extra}"
    )
    for entry in report["models"]:
        m = entry["metrics"]
        lo, hi = m["roc_auc_ci"]
        tail = (
            f"  {_cell(m.get('top3_accuracy'))}"
            if multiclass
            else f"  {_cell(m.get('sensitivity'))} {_cell(m.get('specificity'))}"
        )
        mark = "*" if entry["name"] == report["selected"]["name"] else " "
        print(
            f"{mark}{entry['name']:<21} {_cell(m['accuracy'])} {_cell(m['balanced_accuracy'])}  "
            f"{_cell(m['roc_auc'])} [{_cell(lo)},{_cell(hi)}] {_cell(m['brier'])} ({_cell(m['brier_baseline'])})"
            f" {_cell(m['ece'])} {_cell(m['log_loss'])}{tail}"
        )
    print(f"* selected: {report['selected']['name']} ({report['selected']['selection_rule']})")
    text = report.get("text")
    if text:
        print(f"text: {text['selected']} selected; {text['why']}")
        encoder = text["encoder"]
        state = "tried" if encoder.get("tried") else f"not tried: {encoder.get('why_not')}"
        print(f"sentence encoder ({', '.join(encoder['languages'])} only): {state}")
    for name, why in report.get("skipped", {}).items():
        print(f"skipped {name}: {why}")
    for ext in report["external"]:
        m = ext["metrics"] or {}
        print(
            f"external {ext['path']}: {ext['rows_scored']} rows, accuracy {_cell(m.get('accuracy'))}, "
            f"roc_auc {_cell(m.get('roc_auc'))}, brier {_cell(m.get('brier'))}"
        )


def run_evaluate(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from predictions.ml.dataset import (
        check_folds,
        check_target,
        read_csv,
        shipped_plausible_ranges,
    )

    frame = read_csv(args.data)
    for path in args.external:
        if not path.is_file():
            raise DataError(f"external file not found: {path}")
    # train() starts with these checks; run here, bad input fails before the learners are imported.
    check_folds(args.cv)
    check_target(frame, target=args.target, group=args.group, positive=args.positive)
    from predictions.ml.pipeline import ModelSpec, train

    columns = set(frame.columns)
    subgroups = {name: name for name in ("sex", "age") if name in columns}
    spec = ModelSpec(
        target=args.target,
        group=args.group,
        positive=args.positive,
        subgroup_columns=subgroups,
        # No catalogue here: the clinical catalogue's ranges as shipped with the engine, so an
        # exported table (obs_<LOINC> or the usual column names) is cleaned as the app cleans it.
        plausible=shipped_plausible_ranges(),
    )
    result = train(
        frame,
        spec,
        algorithms=args.algorithms,
        cv=args.cv,
        seed=args.seed,
        out_dir=args.out,
        representations=args.text_representations,
    )
    report = result.report
    report["external"] = [
        _external_metrics(result.model, path, args.target, args.positive) for path in args.external
    ]
    from predictions.ml.artifacts import save_model

    info = save_model(result.model, args.out / "model.joblib")
    report["artifact"] = {
        "path": str(info.path),
        "sha256": info.sha256,
        "size_bytes": info.size_bytes,
    }
    report["seconds"] = round(time.perf_counter() - started, 2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    print_table(report)
    print(f"report: {args.out / 'report.json'}  ({report['seconds']} s)")
    return 0


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)  # sklearn's rare-class fold warnings
    try:
        if args.command == "evaluate":
            return run_evaluate(args)
        if args.command == "forecast":
            return run_forecast(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_BAD_INPUT  # pragma: no cover - argparse requires a command


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
