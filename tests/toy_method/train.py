"""Toy training: cached coarse volumes and heatmaps, random patches, MSE, through the shared Trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spinelab.inference import pad_to, random_patch_slices
from spinelab.targets import gaussian_heatmap
from spinelab.training import Trainer, prepared_cases, save_model_file
from toy_method.method import ToyConfig, network_input, toy_network


class PatchDataset(torch.utils.data.Dataset):
    def __init__(self, cache, config: ToyConfig, seed: int):
        self.cache, self.config, self.seed, self.epoch = cache, config, seed, 0

    def __len__(self) -> int:
        return 4 * len(self.cache)

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        case = self.cache[index % len(self.cache)]
        patch = (self.config.patch,) * 3
        image, _ = pad_to(case["image"], patch)
        heatmap, _ = pad_to(case["heatmap"], patch)
        box = random_patch_slices(image.shape, patch, rng, foreground=heatmap > 0.5)
        return torch.from_numpy(image[box])[None], torch.from_numpy(heatmap[box])[None]


class ToyTrainer(Trainer):
    name = "toy"

    def __init__(self, cache, config: ToyConfig, out: Path, **options):
        super().__init__(out, **options)
        self.cache, self.config = cache, config

    def build_network(self):
        return toy_network()

    def build_dataset(self):
        return PatchDataset(self.cache, self.config, self.seed)

    def loss(self, network, batch):
        image, heatmap = batch
        return torch.nn.functional.mse_loss(network(image).float(), heatmap)


def add_train_arguments(parser) -> None:
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)


def train(data, out: Path, iterations: int = 2, batch_size: int = 2, lr: float = 1e-3, seed: int = 0,
          device: str = "cpu", model_out: str | None = None, progress: bool = True) -> Path:
    config = ToyConfig()

    def prepare(ct, centroids, mask, rng):
        volume = network_input(ct.canonical(), config)
        points = centroids.to_voxel(volume.affine)
        heatmap = gaussian_heatmap(points, volume.shape, config.sigma_mm / config.spacing_mm)
        return {"image": volume.array, "heatmap": heatmap}

    cache = prepared_cases(data, Path(out) / "cache", prepare, seed, progress)
    network = ToyTrainer(cache, config, out, iterations=iterations, batch_size=batch_size, lr=lr, seed=seed,
                         device=device, progress=progress).fit()
    return save_model_file(model_out or Path(out) / "model.pt", "toy", 1, {"net": network}, config.to_dict(),
                           {"data": str(data), "iterations": iterations})
