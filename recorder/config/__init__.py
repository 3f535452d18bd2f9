"""Settings: declared once (settings.py), read strictly from a TOML file and the
environment (load.py) with small readers (readers.py) that refuse anything ambiguous."""

from recorder.config.load import ACCOUNT_KEYS, TOP_KEYS, load
from recorder.config.reference import account_table, environment, reference_table
from recorder.config.settings import (
    LOG_FORMATS,
    LOG_LEVELS,
    AccountConfig,
    MetricsConfig,
    NotifyRule,
    Retention,
    Settings,
)

__all__ = [
    "ACCOUNT_KEYS",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "TOP_KEYS",
    "AccountConfig",
    "MetricsConfig",
    "NotifyRule",
    "Retention",
    "Settings",
    "account_table",
    "environment",
    "load",
    "reference_table",
]
