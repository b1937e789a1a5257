"""Reading settings files (quantization configs, recipes): YAML in, checked dataclass fields out."""

from __future__ import annotations

import dataclasses

import yaml

from .errors import BebertError


def parse_yaml(text: str, source: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BebertError(f"{source} is not valid YAML ({exc.__class__.__name__}).") from None


def check_settings(cls, data, source: str) -> dict:
    """``data`` as a dict whose keys are all fields of the dataclass ``cls``, or one clear error."""
    if not isinstance(data, dict):
        raise BebertError(f"{source} must be a mapping of settings, not {type(data).__name__}.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BebertError(f"{source} has unknown setting(s) {unknown}; known: {sorted(known)}.")
    return dict(data)
