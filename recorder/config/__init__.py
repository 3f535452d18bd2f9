"""Settings: a TOML file plus environment variables, checked strictly at start."""

from recorder.config.load import (
    _ACCOUNT_KEYS,
    _TOP_KEYS,
    ENVIRONMENT,
    LOG_FORMATS,
    LOG_LEVELS,
    AccountConfig,
    MetricsConfig,
    NotifyRule,
    Retention,
    Settings,
    load,
)
from recorder.secret import Secret

__all__ = [
    "ENVIRONMENT",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "_ACCOUNT_KEYS",
    "_TOP_KEYS",
    "AccountConfig",
    "MetricsConfig",
    "NotifyRule",
    "Retention",
    "Secret",
    "Settings",
    "load",
]
