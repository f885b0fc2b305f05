"""The model file every method writes and reads: networks, config and a record of who wrote it.

One ``torch.save`` payload, loadable with ``weights_only=True``::

    {"format": "spinelab-model", "method": "multiview", "version": 1,
     "config": {...}, "networks": {"localizer": state_dict, ...}, "meta": {...training facts...},
     "written_by": {"spinelab": "0.1.0", "torch": "2.13.0", "date": "...", "command": "spinelab train ..."}}

Floating-point weights are stored as float16 (half the size; loading casts back to float32).
Loading checks the method and the format version, so a model given to the wrong method fails
with one line that names the right one.
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spinelab.errors import SpinelabError
from spinelab.io.files import atomic_path
from spinelab.version import __version__

FORMAT = "spinelab-model"
#: Files of spinelab <= 0.1.0 held one multiview model under this tag; they load as multiview format 1.
LEGACY_MULTIVIEW_FORMAT = "spinelab-multiview-1"


@dataclass
class ModelFile:
    method: str
    version: int
    config: dict
    networks: dict[str, dict[str, torch.Tensor]]
    meta: dict = field(default_factory=dict)
    written_by: dict = field(default_factory=dict)

    def load_into(self, key: str, network: torch.nn.Module) -> torch.nn.Module:
        """``network`` (built from the config) with the stored weights ``key``; a mismatch is a one-line error."""
        try:
            network.load_state_dict(self.networks[key])
        except (KeyError, RuntimeError) as exc:
            raise SpinelabError(f"{self.method} model: {key} does not match its config "
                                f"({str(exc).splitlines()[0]})") from None
        return network


def _command() -> str:
    """The command line of this process, as a model file records who wrote or changed it."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def _half(state: dict) -> dict:
    return {key: value.half() if value.is_floating_point() else value for key, value in state.items()}


def save_model_file(path: str | Path, method: str, version: int,
                    networks: dict[str, torch.nn.Module | dict[str, torch.Tensor]], config: dict,
                    meta: dict | None = None) -> Path:
    """Write networks (float16), config and meta atomically, stamped with the method and its writer
    (in distributed training by rank 0 only; every rank gets the path). A ``networks`` entry may also
    be a dict of tensors a method keeps beside its networks (di2in's kernels and shape dictionary)."""
    from spinelab.training.distributed import is_main

    if not is_main():
        return Path(path)
    payload = {
        "format": FORMAT, "method": method, "version": int(version), "config": dict(config),
        "networks": {name: _half(network if isinstance(network, dict) else network.state_dict())
                     for name, network in networks.items()},
        "meta": json.loads(json.dumps(meta or {})),
        "written_by": {"spinelab": __version__, "torch": str(torch.__version__), "date": time.strftime("%Y-%m-%d %H:%M"),
                       "command": _command()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def update_model_config(path: str | Path, method: str, version: int, changes: dict) -> Path:
    """Change settings of a written model file, keeping its weights and writer; the change, the command
    and the date are appended to ``meta["config_changes"]`` so the file still says how it was made."""
    load_model_file(path, method, version)  # the same checks and one-line errors as loading
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["config"].update(changes)
    payload["meta"].setdefault("config_changes", []).append(
        {"changes": json.loads(json.dumps(changes)), "date": time.strftime("%Y-%m-%d %H:%M"), "command": _command()})
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_model_file(path: str | Path, method: str, version: int) -> ModelFile:
    """Read a model file written by ``method`` in format ``version``; anything else is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise SpinelabError(f"{path}: model file not found (train one with 'spinelab train --method {method}' "
                            f"or pass --model)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, OSError) as exc:
        raise SpinelabError(f"{path}: not a spinelab model file ({str(exc).splitlines()[0]})") from None
    if isinstance(payload, dict) and payload.get("format") == LEGACY_MULTIVIEW_FORMAT:
        payload = {"format": FORMAT, "method": "multiview", "version": 1, "config": payload["config"],
                   "networks": {key: payload[key] for key in ("localizer", "identifier")},
                   "meta": payload.get("meta", {})}
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SpinelabError(f"{path}: not a spinelab model file (no '{FORMAT}' header)")
    if payload["method"] != method:
        raise SpinelabError(f"{path}: a '{payload['method']}' model, not '{method}' "
                            f"(use --method {payload['method']})")
    if payload["version"] != version:
        raise SpinelabError(f"{path}: {method} model format {payload['version']}, but this spinelab reads "
                            f"format {version}; retrain it or use the spinelab that wrote it "
                            f"({payload.get('written_by', {}).get('spinelab', '?')})")
    networks = {name: {key: value.float() if value.is_floating_point() else value for key, value in state.items()}
                for name, state in payload["networks"].items()}
    return ModelFile(method, version, payload["config"], networks, payload.get("meta", {}),
                     payload.get("written_by", {}))
