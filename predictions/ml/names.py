"""Names the command line offers as choices, importable without numpy, scikit-learn or torch.

``python -m predictions.ml`` parses its arguments before it imports the engine, so bad input fails
in a fraction of the start-up time. The registries these name (:data:`algorithms.ALGORITHMS`,
:data:`features.REPRESENTATIONS`) check at import that they hold exactly these names, in order.
"""

from __future__ import annotations

from collections.abc import Iterable

ALGORITHM_NAMES = (
    "rules_baseline",
    "logistic_regression",
    "svm",
    "decision_tree",
    "gradient_boosting",
    "mlp",
    "cnn_text",
    "gru_text",
)
REPRESENTATION_NAMES = ("word", "char", "word+char", "word+char+encoder", "word-top", "sequence")


def check_registry(kind: str, registry: Iterable[str], names: tuple[str, ...]) -> None:
    """Raise when a registry's names drifted from the command line's choices."""
    found = tuple(registry)
    if found != names:
        raise RuntimeError(f"{kind} registry {found} differs from predictions.ml.names {names}")
