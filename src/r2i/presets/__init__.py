"""YAML presets: flat or nested overrides of the dataclass defaults in r2i.config."""
