"""Training of the dense method: the detection and identification networks, then one model file.

Both are ``spinelab.training.Trainer`` subclasses (checkpoints, resume, seed, bf16, progress bar).
Losses follow McCouat & Glocker: cross-entropy weighted 0.1 / 0.9 for detection, an L1 loss on the
continuous vertebra number that ignores background pixels for identification.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from spinelab.methods.dense.config import DenseConfig
from spinelab.methods.dense.data import DetectionPatches, IdentificationSlabs, prepare_case
from spinelab.nets import SlabUNet
from spinelab.training import Trainer, prepared_cases, save_model_file

MODEL_VERSION = 1


def detection_network(config: DenseConfig) -> torch.nn.Module:
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=config.detection_channels,
                strides=(2,) * (len(config.detection_channels) - 1), num_res_units=1, norm="batch")


def identification_network(config: DenseConfig) -> torch.nn.Module:
    return SlabUNet(config.slab[0], 1, config.identification_channels, config.bottom_kernel)


def masked_l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |prediction - target| over the pixels whose target is a vertebra (target > 0); background is free."""
    vertebra = target > 0
    if not vertebra.any():
        return prediction.sum() * 0.0
    return (prediction.float() - target).abs()[vertebra].mean()


class DenseTrainer(Trainer):
    """The ``detection`` 3D U-Net or the ``identification`` slab U-Net."""

    def __init__(self, task: str, cache, config: DenseConfig, out: Path, **options):
        super().__init__(out, **options)
        self.name, self.cache, self.config = task, cache, config

    def build_network(self):
        return detection_network(self.config) if self.name == "detection" else identification_network(self.config)

    def build_dataset(self):
        kind = DetectionPatches if self.name == "detection" else IdentificationSlabs
        return kind(self.cache, self.config, self.seed)

    def loss(self, network, batch):
        inputs, target = batch
        if self.name == "identification":
            return masked_l1(network(inputs), target)
        weight = torch.tensor([self.config.background_weight, 1.0 - self.config.background_weight],
                              device=inputs.device)
        return F.cross_entropy(network(inputs).float(), target, weight=weight)


def train_model(data, out: Path, config: DenseConfig | None = None, iterations: int = 1500,
                identification_iterations: int | None = None, batch_size: int = 8, identification_batch_size: int = 16,
                lr: float = 1e-3, seed: int = 0, device: str = "cpu", model_out: str | None = None,
                progress: bool = True) -> Path:
    """Prepare the cases, train both networks and write the model file (``out/model.pt`` by default)."""
    config, out = config or DenseConfig(), Path(out)

    def prepare(ct, centroids, mask, rng):
        return prepare_case(ct, centroids, config)

    cache = prepared_cases(data, out / "dense_cache", prepare, seed, progress, desc="resample cases")
    common = dict(lr=lr, seed=seed, device=device, progress=progress)
    detection = DenseTrainer("detection", cache, config, out, iterations=iterations, batch_size=batch_size,
                             **common).fit()
    identification_iterations = identification_iterations or iterations
    identification = DenseTrainer("identification", cache, config, out, iterations=identification_iterations,
                                  batch_size=identification_batch_size, **common).fit()
    meta = {"training_cases": len(cache), "iterations": iterations, "identification_iterations": identification_iterations,
            "batch_size": batch_size, "identification_batch_size": identification_batch_size, "lr": lr, "seed": seed,
            "data": str(data)}
    return save_model_file(model_out or out / "model.pt", "dense", MODEL_VERSION,
                           {"detection": detection, "identification": identification}, config.to_dict(), meta)


def train(data, out, **options) -> Path:
    """``spinelab.train(..., method="dense")``: the default ``DenseConfig`` (2 mm) becomes the model's config."""
    return train_model(data, out, DenseConfig(), **options)
