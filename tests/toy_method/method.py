"""Toy inference: heatmap by sliding window on a coarse canonical grid, its peak as one centroid."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from spinelab.inference import sliding_window
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.methods.base import Method, Prediction, StageTimer
from spinelab.targets import dense_labels

L1 = 20


@dataclass
class ToyConfig:
    spacing_mm: float = 6.0
    patch: int = 16
    sigma_mm: float = 12.0

    def to_dict(self) -> dict:
        return asdict(self)


def toy_network() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 1, 1))


def network_input(ct: CTVolume, config: ToyConfig) -> CTVolume:
    """The canonical CT resampled to the toy's spacing, bone window scaled to [0, 1]."""
    coarse = ct.resampled(config.spacing_mm)
    return coarse.with_array(np.clip((coarse.array + 200.0) / 1500.0, 0.0, 1.0).astype(np.float32))


class ToyMethod(Method):
    name = "toy"
    seen_axcodes: list = []  # the contract test reads which frames predict_canonical was given

    def __init__(self, network: torch.nn.Module, config: ToyConfig, device: str):
        self.network, self.config, self.device = network.to(device).eval(), config, device

    @classmethod
    def from_model_file(cls, model, device):
        network = toy_network()
        network.load_state_dict(model.networks["net"])
        return cls(network, ToyConfig(**model.config), device)

    def predict_canonical(self, ct: CTVolume, timer: StageTimer) -> Prediction:
        ToyMethod.seen_axcodes.append(ct.axcodes)
        with timer("networks"):
            volume = network_input(ct, self.config)
            heatmap = sliding_window(self.network, volume.array, (self.config.patch,) * 3, device=self.device)[0]
        peak = np.unravel_index(int(heatmap.argmax()), heatmap.shape)
        centroids = Centroids([L1], volume.to_world([peak]), [float(heatmap.max())])
        label_map = volume.with_array(dense_labels(volume.shape, volume.affine, centroids))
        return Prediction(centroids, label_map=label_map)
