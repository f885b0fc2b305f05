"""Settings dataclasses stored inside model files: one way to write them and read them back.

Reading ignores keys the dataclass does not know, so a model file written by a newer spinelab with
extra settings still loads, and settings it lacks take today's defaults.
"""

from __future__ import annotations

from dataclasses import asdict, fields


class StoredSettings:
    """Mixin for a ``@dataclass`` of settings: ``to_dict`` for the model file, ``from_dict`` back."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})
