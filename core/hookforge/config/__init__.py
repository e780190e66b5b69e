"""Configuration: YAML files, command-line overrides and shortcuts, strict validation."""

from hookforge.config.loader import apply_overrides, apply_shortcuts, read_yaml
from hookforge.config.schema import ComponentSpec, ResolvedConfig, RunSection, load_config, resolve
from hookforge.config.secrets import flatten, redact

__all__ = ["ComponentSpec", "ResolvedConfig", "RunSection", "apply_overrides", "apply_shortcuts",
           "flatten", "load_config", "read_yaml", "redact", "resolve"]
