"""Training of the multi-view method: SimSiam pretraining, then the two U-Nets, then one model file.

Each network is a ``spinelab.training.Trainer`` (checkpoints, resume, seed, bf16, progress bar).
Losses follow Wu et al.: MSE on Gaussian heatmaps for localization; cross-entropy + gamma x
Sequence Loss for identification.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from spinelab.bone import BoneStage
from spinelab.errors import SpinelabError
from spinelab.io.files import atomic_path
from spinelab.methods.multiview.config import MultiViewConfig
from spinelab.methods.multiview.data import DRRDataset, ViewPairDataset, render_training_case
from spinelab.methods.multiview.sequence_loss import sequence_loss
from spinelab.methods.multiview.simsiam import SimSiam, simsiam_loss
from spinelab.nets import ResNetEncoder, ResNetUNet
from spinelab.training import Trainer, prepared_cases, save_model_file
from spinelab.vertebrae import NUM_CLASSES

MODEL_VERSION = 1
HEATMAP_FOREGROUND_WEIGHT = 20.0  # vertebra pixels are ~2 % of a DRR: weight them up in the MSE


class PretrainTrainer(Trainer):
    """SimSiam on pairs of views of one CT; SGD with the paper's linear lr scaling and cosine decay."""

    name = "pretrain"

    def __init__(self, cache, config: MultiViewConfig, out: Path, **options):
        super().__init__(out, **options)
        self.cache, self.config = cache, config

    def build_network(self):
        return SimSiam(ResNetEncoder(self.config.depth, self.config.width))

    def build_optimizer(self, network):
        return torch.optim.SGD(network.parameters(), lr=self.lr * self.batch_size / 256, momentum=0.9,
                               weight_decay=1e-4)

    def build_dataset(self):
        return ViewPairDataset(self.cache, self.seed)

    def loss(self, network, batch):
        return simsiam_loss(*network(batch[0], batch[1]))


class NetworkTrainer(Trainer):
    """The ``localizer`` (1 heatmap channel) or the ``identifier`` (NUM_CLASSES channels on pooled DRRs)."""

    def __init__(self, task: str, cache, config: MultiViewConfig, out: Path, encoder_state: dict | None = None,
                 **options):
        super().__init__(out, **options)
        self.name, self.cache, self.config, self.encoder_state = task, cache, config, encoder_state

    def build_network(self):
        channels = 1 if self.name == "localizer" else NUM_CLASSES
        network = ResNetUNet(channels, self.config.depth, self.config.width)
        if self.encoder_state is not None:
            network.encoder.load_state_dict(self.encoder_state)
        return network

    def build_dataset(self):
        return DRRDataset(self.cache, self.config, augment=True, seed=self.seed)

    def loss(self, network, batch):
        image, heatmap, classes = batch
        if self.name == "localizer":
            return localization_loss(network(image), heatmap)
        return identification_loss(network(F.avg_pool2d(image, self.config.identifier_scale)), classes, self.config)


def localization_loss(prediction: torch.Tensor, heatmap: torch.Tensor) -> torch.Tensor:
    weight = 1.0 + HEATMAP_FOREGROUND_WEIGHT * heatmap
    return (weight * (prediction.float() - heatmap) ** 2).mean()


def identification_loss(logits: torch.Tensor, classes: torch.Tensor, config: MultiViewConfig) -> torch.Tensor:
    """Cross-entropy balanced between squares and background + gamma x mean Sequence Loss of the views.

    The vertebra squares cover about 1 % of a DRR, so each of the two parts of the cross-entropy
    is averaged on its own and they count equally. The Sequence Loss rewards *any* consecutive
    labelling (its gradient reinforces the best path the network already predicts); next to an
    unbalanced cross-entropy it locked in sequences shifted by several vertebrae, such as lumbar
    spines labelled T7-T12. P is averaged in the ground-truth squares.
    """
    logits = logits.float()
    pixel_losses = F.cross_entropy(logits, classes, reduction="none")
    foreground = classes > 0
    loss = pixel_losses[~foreground].mean()
    if foreground.any():
        loss = loss + pixel_losses[foreground].mean()
    if config.sequence_loss_weight <= 0:
        return loss
    probabilities = logits.softmax(dim=1)
    matrices = [_ground_truth_matrix(probabilities[b], classes[b]) for b in range(len(classes))]
    matrices = [m for m in matrices if len(m)]
    if matrices:
        rows = max(len(m) for m in matrices)
        padded = torch.stack([F.pad(m, (0, 0, 0, rows - len(m))) for m in matrices])
        lengths = torch.tensor([len(m) for m in matrices])
        loss = loss + config.sequence_loss_weight * sequence_loss(padded, lengths).mean()
    return loss


def _ground_truth_matrix(probabilities: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """P (n, C-1): mean probabilities inside each ground-truth square, rows in class (= anatomical) order."""
    present = [int(c) for c in torch.unique(classes) if int(c) > 0]
    rows = [probabilities[1:, classes == c].mean(dim=1) for c in present]
    return torch.stack(rows) if rows else probabilities.new_zeros((0, probabilities.shape[0] - 1))


def save_model(path: str | Path, localizer: ResNetUNet, identifier: ResNetUNet, config: MultiViewConfig,
               meta: dict | None = None) -> Path:
    return save_model_file(path, "multiview", MODEL_VERSION, {"localizer": localizer, "identifier": identifier},
                           config.to_dict(), meta)


def _cache(data, out: Path, config: MultiViewConfig, views_per_case: int, seed: int, progress: bool):
    bone = BoneStage.load() if config.bone_stage else None

    def prepare(ct, centroids, mask, rng):
        return render_training_case(ct, centroids, config, views_per_case, rng, bone)

    return prepared_cases(data, out / "drr_cache", prepare, seed, progress, desc="render DRRs")


def pretrain(data, out: Path, config: MultiViewConfig | None = None, views_per_case: int = 10,
             iterations: int = 500, batch_size: int = 16, lr: float = 0.05, seed: int = 0, device: str = "cpu",
             progress: bool = True) -> Path:
    """Render the dataset's DRRs and pretrain the encoder with SimSiam; writes ``out/encoder.pt``."""
    config, out = config or MultiViewConfig(), Path(out)
    cache = _cache(data, out, config, views_per_case, seed, progress)
    network = PretrainTrainer(cache, config, out, iterations=iterations, batch_size=batch_size, lr=lr, seed=seed,
                              device=device, progress=progress).fit()
    path = out / "encoder.pt"
    with atomic_path(path) as tmp:
        torch.save({"depth": config.depth, "width": config.width, "encoder": network.encoder.state_dict()}, tmp)
    return path


def train_model(data, out: Path, config: MultiViewConfig | None = None, encoder: str | None = None,
                views_per_case: int = 10, iterations: int = 1500, batch_size: int = 8, lr: float = 1e-3,
                seed: int = 0, device: str = "cpu", model_out: str | None = None, progress: bool = True,
                identifier_iterations: int | None = None) -> Path:
    """Train localizer and identifier (optionally from a pretrained encoder) and write the model file.

    ``identifier_iterations`` defaults to ``iterations``; the identifier runs on pooled images and
    so affords more iterations in the same time.
    """
    config, out = config or MultiViewConfig(), Path(out)
    encoder_state = None
    if encoder:
        saved = torch.load(encoder, map_location="cpu", weights_only=True)
        if (saved["depth"], saved["width"]) != (config.depth, config.width):
            raise SpinelabError(f"{encoder}: encoder is ResNet-{saved['depth']} x{saved['width']}, "
                                f"but training asks for ResNet-{config.depth} x{config.width}")
        encoder_state = saved["encoder"]
    cache = _cache(data, out, config, views_per_case, seed, progress)
    identifier_iterations = identifier_iterations or iterations
    common = dict(batch_size=batch_size, lr=lr, seed=seed, device=device, progress=progress,
                  encoder_state=encoder_state)
    localizer = NetworkTrainer("localizer", cache, config, out, iterations=iterations, **common).fit()
    identifier = NetworkTrainer("identifier", cache, config, out, iterations=identifier_iterations, **common).fit()
    meta = {"training_cases": len(cache), "views_per_case": views_per_case, "iterations": iterations,
            "identifier_iterations": identifier_iterations,
            "batch_size": batch_size, "lr": lr, "seed": seed, "pretrained_encoder": bool(encoder),
            "data": str(data)}
    return save_model(model_out or out / "model.pt", localizer, identifier, config, meta)


# Entry points of the method registry: ``spinelab.train|pretrain(..., method="multiview")`` --------------------


def train(data, out, depth: int = 18, width: float = 0.5, identifier_scale: int = 2,
          sequence_loss_weight: float = 1.0, bone_stage: bool = True, **options) -> Path:
    """``spinelab.train(..., method="multiview")``: the network settings become the model's config."""
    config = MultiViewConfig(depth=depth, width=width, identifier_scale=identifier_scale,
                             sequence_loss_weight=sequence_loss_weight, bone_stage=bone_stage)
    return train_model(data, out, config, **options)


def pretrain_encoder(data, out, depth: int = 18, width: float = 0.5, bone_stage: bool = True, **options) -> Path:
    """``spinelab.pretrain(..., method="multiview")``: SimSiam encoder for ``train --encoder``."""
    return pretrain(data, out, MultiViewConfig(depth=depth, width=width, bone_stage=bone_stage), **options)
