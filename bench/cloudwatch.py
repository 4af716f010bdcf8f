"""Moved to training/nab.py (the trainer uses its training part); re-exported here."""

from training.nab import (  # noqa: F401
    DEFAULT_DIR,
    NEUTRAL,
    load_cloudwatch,
    measured_column,
    series_to_contract,
)
