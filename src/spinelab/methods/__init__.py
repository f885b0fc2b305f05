"""Localization + identification methods; each folder composes the shared parts behind ``Method``."""

from __future__ import annotations

import importlib

from spinelab.errors import SpinelabError
from spinelab.methods.base import Method, Prediction

#: method name -> "module:class"; the first one is the default.
METHODS = {"multiview": "spinelab.methods.multiview.method:MultiViewMethod"}
DEFAULT_METHOD = "multiview"


def load_method(name: str = DEFAULT_METHOD, model: str | None = None, device: str = "cpu") -> Method:
    """Instantiate a method with its trained model (the packaged default when ``model`` is None)."""
    if name not in METHODS:
        raise SpinelabError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    module_name, class_name = METHODS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls.load(model, device=device)


__all__ = ["METHODS", "DEFAULT_METHOD", "Method", "Prediction", "load_method"]
