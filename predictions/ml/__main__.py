"""Entry point for ``python -m predictions.ml``."""

from predictions.ml.cli import main

raise SystemExit(main())
