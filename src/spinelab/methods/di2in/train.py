"""Training of the di2in method: DI2IN on random crops with the summed L2 loss of every deep-supervision
branch and of the final output (§2.1), then the shape dictionary from the real keypoint sets and the
message-passing kernels from the offsets between neighbours in its spines, all in one model file.

``DI2INTrainer`` is a ``spinelab.training.Trainer`` (checkpoints, resume, seed, bf16, progress,
AdamW with cosine decay: the paper gives no optimizer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spinelab.methods.di2in.config import DI2INConfig
from spinelab.methods.di2in.data import Crops, prepare_case
from spinelab.methods.di2in.message_passing import fit_chain
from spinelab.methods.di2in.network import DI2IN
from spinelab.methods.di2in.sparsity import build_dictionary
from spinelab.training import Trainer, prepared_cases, save_model_file

MODEL_VERSION = 1


def heatmap_loss(outputs: list[torch.Tensor], final: torch.Tensor, target: torch.Tensor,
                 foreground_weight: float) -> torch.Tensor:
    """Squared error summed over voxels and channels, per crop, of every branch and the final output, each
    voxel weighted 1 + ``foreground_weight`` x its target."""
    weight = 1.0 + foreground_weight * target
    return sum((weight * (output.float() - target) ** 2).sum() for output in [*outputs, final]) / len(target)


class DI2INTrainer(Trainer):
    name = "di2in"

    def __init__(self, cache, config: DI2INConfig, out: Path, **options):
        super().__init__(out, **options)
        self.cache, self.config = cache, config

    def build_network(self):
        return DI2IN(self.config)

    def build_dataset(self):
        return Crops(self.cache, self.config, self.seed)

    def loss(self, network, batch):
        image, target = batch
        outputs, final = network(image)
        return heatmap_loss(outputs, final, target, self.config.foreground_weight)


def train(data, out, iterations: int = 1500, batch_size: int = 4, lr: float = 1e-3, seed: int = 0,
          device: str = "cpu", model_out: str | None = None, progress: bool = True,
          dictionary_spines: int = 2000, config: DI2INConfig | None = None) -> Path:
    """Prepare the cases, train DI2IN, build the shape dictionary and fit the chain kernels on its spines;
    write the model file (``out/model.pt`` by default)."""
    from spinelab.synth.shape_model import default_data_dir

    config, out = config or DI2INConfig(), Path(out)

    def prepare(ct, centroids, mask, rng):
        return prepare_case(ct, centroids, config)

    cache = prepared_cases(data, out / "di2in_cache", prepare, seed, progress, desc="resample cases")
    network = DI2INTrainer(cache, config, out, iterations=iterations, batch_size=batch_size, lr=lr, seed=seed,
                           device=device, progress=progress).fit()
    data_dir = default_data_dir()
    atoms = build_dictionary(dictionary_spines, data_dir, seed)
    chain = fit_chain([(np.flatnonzero(np.isfinite(atom[:, 0])), atom[np.isfinite(atom[:, 0])]) for atom in atoms])
    meta = {"training_cases": len(cache), "iterations": iterations, "batch_size": batch_size, "lr": lr,
            "seed": seed, "data": str(data), "chain_pairs": int(len(chain.pairs)),
            "dictionary": f"{dictionary_spines} spines from "
                          + ("the real keypoint sets" if data_dir is not None else "the shape model alone")}
    return save_model_file(model_out or out / "model.pt", "di2in", MODEL_VERSION,
                           {"network": network, "chain": chain.to_state(),
                            "dictionary": {"atoms": torch.from_numpy(atoms).float()}}, config.to_dict(), meta)
