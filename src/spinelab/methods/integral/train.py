"""Training of the integral method: one network, classification and localization together (eq. 4).

``IntegralTrainer`` is a ``spinelab.training.Trainer`` (checkpoints, resume, seed, bf16, progress).
The paper's optimizer is kept: Adam at lr 0.01, weight decay 1e-4, the rate cut by 0.4 (down to 1e-6)
when the loss stops falling. The paper watches a validation loss; ours watches the mean training
loss of each window of ``PLATEAU_WINDOW`` iterations (every crop is new, so it is not a memorized one),
which spends no time on a validation pass.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spinelab.methods.integral.config import IntegralConfig
from spinelab.methods.integral.data import Crops, prepare_case
from spinelab.methods.integral.network import IntegralNet
from spinelab.errors import SpinelabError
from spinelab.training import Trainer, prepared_cases, load_model_file, save_model_file
from spinelab.training.distributed import world

MODEL_VERSION = 1
PLATEAU_WINDOW = 100  # iterations per plateau check
PLATEAU_PATIENCE = 2  # windows without improvement before the rate is cut


def balanced_bce(logits: torch.Tensor, presence: torch.Tensor, balance: float) -> torch.Tensor:
    """Eq. 1 per crop, averaged over the batch: -B log p over present classes, -log(1 - p) over absent."""
    weight = torch.where(presence > 0, balance, 1.0)
    losses = F.binary_cross_entropy_with_logits(logits.float(), presence, weight=weight, reduction="none")
    return losses.sum(dim=1).mean()


def coordinate_loss(predicted: torch.Tensor, target: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
    """Eq. 2 without lambda: smooth-L1 (in voxels) summed over the axes of the present vertebrae, per crop."""
    losses = F.smooth_l1_loss(predicted.float(), target, reduction="none", beta=1.0).sum(dim=-1)
    return (losses * presence).sum(dim=1).mean()


class IntegralTrainer(Trainer):
    """The whole network, or with ``shared`` (a trained network's weights) only a new classification
    branch on its frozen encoder: the Bi-LSTM ablation compares branches on the same features."""

    def __init__(self, cache, config: IntegralConfig, out: Path, shared: dict | None = None, **options):
        super().__init__(out, **options)
        self.cache, self.config, self.shared, self.plateau = cache, config, shared, None
        self.name = "integral" if shared is None else f"integral_{'bilstm' if config.bilstm else 'fc'}_head"

    def build_network(self):
        network = IntegralNet(self.config)
        if self.shared is not None:
            network.load_state_dict({key: value for key, value in self.shared.items()
                                     if not key.startswith("classifier.")}, strict=False)
            for name, parameter in network.named_parameters():
                parameter.requires_grad_(name.startswith("classifier."))
        return network

    def build_dataset(self):
        return Crops(self.cache, self.config, self.seed)

    def build_optimizer(self, network):
        optimizer = torch.optim.Adam(network.parameters(), lr=self.lr, weight_decay=1e-4)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.4, min_lr=1e-6,
                                                                  patience=PLATEAU_PATIENCE)
        return optimizer

    def schedule(self, optimizer, iteration, base_lrs):
        if iteration and iteration % PLATEAU_WINDOW == 0:
            self.plateau.step(float(np.mean(self.history[-PLATEAU_WINDOW:])))

    def loss(self, network, batch):
        image, presence, coordinates = batch
        if self.shared is not None:  # the frozen encoder's features, the new branch's presence only
            with torch.no_grad():
                deepest = network.encode(image)[-1]
            return balanced_bce(network.classifier(deepest), presence, self.config.balance)
        logits, predicted = network(image)
        return (balanced_bce(logits, presence, self.config.balance)
                + self.config.coordinate_weight * coordinate_loss(predicted, coordinates, presence))


def train_model(data, out: Path, config: IntegralConfig | None = None, iterations: int = 2000, batch_size: int = 4,
                lr: float = 0.01, seed: int = 0, device: str = "cpu", model_out: str | None = None,
                progress: bool = True, head_from: str | None = None) -> Path:
    """Prepare the cases, train the network and write the model file (``out/model.pt`` by default).
    With ``head_from`` (an integral model file) only a new classification branch is trained on that
    model's frozen encoder, and the file keeps its localization branch."""
    config, out = config or IntegralConfig(), Path(out)
    shared = None
    if head_from is not None:
        if world()[1] > 1:
            raise SpinelabError("--head-from trains a small branch in one process; drop --devices")
        source = load_model_file(head_from, "integral", MODEL_VERSION)
        config = dataclasses.replace(IntegralConfig.from_dict(source.config), bilstm=config.bilstm)
        shared = source.networks["network"]

    def prepare(ct, centroids, mask, rng):
        return prepare_case(ct, centroids, config)

    cache = prepared_cases(data, out / "integral_cache", prepare, seed, progress, desc="resample cases")
    network = IntegralTrainer(cache, config, out, shared, iterations=iterations, batch_size=batch_size, lr=lr,
                              seed=seed, device=device, progress=progress).fit()
    meta = {"training_cases": len(cache), "iterations": iterations, "batch_size": batch_size, "lr": lr,
            "seed": seed, "data": str(data), **({"head_from": str(head_from)} if head_from else {})}
    return save_model_file(model_out or out / "model.pt", "integral", MODEL_VERSION, {"network": network},
                           config.to_dict(), meta)


def train(data, out, bilstm: bool = True, **options) -> Path:
    """``spinelab.train(..., method="integral")``: the default ``IntegralConfig`` (with or without the
    Bi-LSTM) becomes the model's config."""
    return train_model(data, out, IntegralConfig(bilstm=bilstm), **options)
