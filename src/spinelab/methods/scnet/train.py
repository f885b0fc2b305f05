"""Training of the scnet method: the three networks one after another on the same cached cases, each a
``spinelab.training.Trainer`` (checkpoints, resume, seed, progress, cosine decay), in one model file.

The paper trains with batch 1, Adam at 1e-4 for the U-Nets and Nesterov at 1e-8 for the SC-Net over
20k / 100k / 50k iterations. With a few thousand iterations on a CPU we use AdamW at 1e-3 for all
three (the trainer's default), with batches of 2.
"""

from __future__ import annotations

from pathlib import Path

from spinelab.methods.scnet.config import SCNetConfig
from spinelab.methods.scnet.data import LandmarkCrops, SpineInputs, VertebraCrops, prepare_case
from spinelab.methods.scnet.losses import heatmap_l2, landmark_loss, segmentation_loss
from spinelab.methods.scnet.network import SCNet, UNet
from spinelab.training import Trainer, prepared_cases, save_model_file
from spinelab.vertebrae import VERTEBRA_CLASSES

MODEL_VERSION = 1


def spine_network(config: SCNetConfig) -> UNet:
    return UNet(1, 1, config.spine_channels)


def landmark_network(config: SCNetConfig) -> SCNet:
    return SCNet(len(VERTEBRA_CLASSES), config.channels, config.spatial_channels, config.sigma_voxels)


def segment_network(config: SCNetConfig) -> UNet:
    return UNet(2, 1, config.segment_channels, head_std=0.01)


class _StageTrainer(Trainer):
    def __init__(self, cache, config: SCNetConfig, out: Path, **options):
        super().__init__(out, **options)
        self.cache, self.config = cache, config


class SpineTrainer(_StageTrainer):
    name = "scnet_spine"

    def build_network(self):
        return spine_network(self.config)

    def build_dataset(self):
        return SpineInputs(self.cache, self.config, self.seed)

    def loss(self, network, batch):
        image, target = batch
        return heatmap_l2(network(image), target, self.config.spine_foreground_weight)


class LandmarkTrainer(_StageTrainer):
    name = "scnet_landmarks"

    def build_network(self):
        return landmark_network(self.config)

    def build_dataset(self):
        return LandmarkCrops(self.cache, self.config, self.seed)

    def loss(self, network, batch):
        image, positions = batch
        config = self.config
        sigma = getattr(network, "module", network).sigma  # DistributedDataParallel wraps the network
        return landmark_loss(network(image), positions, sigma, config.sigma_alpha, config.foreground_weight,
                             config.min_sigma_voxels)


class SegmentTrainer(_StageTrainer):
    name = "scnet_segment"

    def build_network(self):
        return segment_network(self.config)

    def build_dataset(self):
        return VertebraCrops(self.cache, self.config, self.seed)

    def loss(self, network, batch):
        inputs, target = batch
        return segmentation_loss(network(inputs), target)


def train(data, out, iterations: int = 2000, spine_iterations: int = 300, segment_iterations: int = 2000,
          batch_size: int = 2, lr: float = 1e-3, seed: int = 0, device: str = "cpu", model_out: str | None = None,
          progress: bool = True, config: SCNetConfig | None = None) -> Path:
    """Prepare the cases, train the spine U-Net, the SC-Net (``iterations``) and the segmentation U-Net;
    write the model file (``out/model.pt`` by default)."""
    config, out = config or SCNetConfig(), Path(out)

    def prepare(ct, centroids, mask, rng):
        return prepare_case(ct, centroids, mask, config)

    cache = prepared_cases(data, out / "scnet_cache", prepare, seed, progress, desc="resample cases")
    options = dict(batch_size=batch_size, lr=lr, seed=seed, device=device, progress=progress)
    networks = {"spine": SpineTrainer(cache, config, out, iterations=spine_iterations, **options).fit(),
                "landmarks": LandmarkTrainer(cache, config, out, iterations=iterations, **options).fit(),
                "segmenter": SegmentTrainer(cache, config, out, iterations=segment_iterations, **options).fit()}
    meta = {"training_cases": len(cache), "iterations": iterations, "spine_iterations": spine_iterations,
            "segment_iterations": segment_iterations, "batch_size": batch_size, "lr": lr, "seed": seed,
            "data": str(data)}
    return save_model_file(model_out or out / "model.pt", "scnet", MODEL_VERSION, networks, config.to_dict(), meta)
