"""Where the configuration is validated: every problem names its key path."""

from .schema import ConfigError, format_duration, parse_duration
from .settings import AlertmanagerConfig, Config, WhatsGateConfig, load_config, parse_config

__all__ = [
    "AlertmanagerConfig",
    "Config",
    "ConfigError",
    "WhatsGateConfig",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
]
