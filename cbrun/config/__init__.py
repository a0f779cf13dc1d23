"""The config: schema (pydantic) and loading. Lower floor: never imports TensorFlow."""
