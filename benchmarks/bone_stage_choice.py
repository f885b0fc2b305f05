"""Should the packaged multiview networks render their DRRs through the bone stage? Decided on
synthetic validation scans only, then recorded in the model file's config.

The packaged localizer and identifier were trained before the bone stage existed. This script runs
them on synthetic validation sets (``spinelab synth --n 30 --seed 2000``, the set the review
thresholds were chosen on, and the same at ``--resolution test``) with the stage off and on, writes
the tables to docs/BONE_STAGE.md and, with ``--write``, sets ``bone_stage`` in
``src/spinelab/models/multiview.pt`` to the setting with the higher mean VerSe id-rate over the sets
(the networks' weights are copied unchanged). No real CT is used.

Run: ``python benchmarks/bone_stage_choice.py VALIDATION_DIR [VALIDATION_DIR ...] [--write]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spinelab.eval.report import metrics_table
from spinelab.io.files import write_text
from spinelab.methods import MODELS_DIR, load_method
from spinelab.methods.multiview.ablation import evaluate_runs, variant
from spinelab.training.model_file import load_model_file, save_model_file

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("validation", nargs="+", help="synthetic validation sets (VerSe layout)")
    parser.add_argument("--write", action="store_true", help="record the better setting in the packaged model")
    args = parser.parse_args()
    method = load_method("multiview")
    runs = {"bone stage off": variant(method, bone_stage=False), "bone stage on": variant(method, bone_stage=True)}
    results = {folder: evaluate_runs(folder, runs) for folder in args.validation}
    mean_rate = {name: sum(r[name].overall.verse_id_rate for r in results.values()) / len(results) for name in runs}
    chosen = max(mean_rate, key=mean_rate.get)
    text = ["# The bone stage for the packaged multiview networks", "",
            "Written by `python benchmarks/bone_stage_choice.py`: the packaged networks (trained without the "
            "bone stage) on synthetic validation scans, with their DRRs rendered from every voxel above 150 HU "
            "(off) or only from those the bone stage calls bone (on). Chosen by the mean VerSe id-rate over the "
            f"sets ({', '.join(f'{name} {100 * rate:.1f} %' for name, rate in mean_rate.items())}): **{chosen}**. "
            "No real CT was used.", ""]
    for folder, table in results.items():
        text += [f"`{folder}` ({len(next(iter(table.values())).scans)} scans):", "", metrics_table(table), ""]
    write_text(ROOT / "docs" / "BONE_STAGE.md", "\n".join(text))
    print("\n".join(text))
    if args.write:
        path = MODELS_DIR / "multiview.pt"
        model = load_model_file(path, "multiview", 1)
        model.config["bone_stage"] = chosen == "bone stage on"
        networks = {name: _module(state) for name, state in model.networks.items()}
        save_model_file(path, "multiview", 1, networks, model.config, model.meta)
        print(f"{path}: bone_stage = {model.config['bone_stage']}")
    return 0


def _module(state: dict):
    """A stand-in module whose ``state_dict`` is ``state``: the weights are re-saved exactly as loaded."""
    import torch

    class Weights(torch.nn.Module):
        def state_dict(self, *args, **kwargs):
            return state

    return Weights()


if __name__ == "__main__":
    sys.exit(main())
