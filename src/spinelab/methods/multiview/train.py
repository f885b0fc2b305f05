"""Training of the multi-view method: SimSiam pretraining, then the two U-Nets, then one model file.

Every loop checkpoints to ``<out>/<stage>.ckpt`` every ``checkpoint_every`` iterations and resumes
from it, is seeded (``torch.manual_seed`` + per-item numpy generators), shows a progress bar and
runs in bf16 autocast (about 2x faster on CPU). Losses follow Wu et al.: MSE on Gaussian heatmaps
for localization; cross-entropy + gamma x Sequence Loss for identification.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from spinelab.drr import NUM_CLASSES
from spinelab.errors import SpinelabError
from spinelab.io.files import atomic_path
from spinelab.losses.sequence import sequence_loss
from spinelab.methods.multiview.config import MultiViewConfig
from spinelab.methods.multiview.data import DRRDataset, ViewPairDataset, build_cache, load_cache
from spinelab.nets import ResNetUNet, SimSiam, simsiam_loss
from spinelab.nets.unet import ResNetEncoder

HEATMAP_FOREGROUND_WEIGHT = 20.0  # vertebra pixels are ~2 % of a DRR: weight them up in the MSE


def batches(dataset, batch_size: int, seed: int):
    """Endless shuffled batches; each pass bumps ``dataset.epoch`` so augmentation changes."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                             generator=generator, num_workers=0)
        yield from loader
        dataset.epoch += 1


def _autocast(device: str):
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def run_loop(name: str, model: torch.nn.Module, step_loss: Callable, data, iterations: int, out: Path,
             optimizer: torch.optim.Optimizer, device: str, checkpoint_every: int = 200,
             progress: bool = True) -> list[float]:
    """Optimize ``step_loss(batch) -> loss`` for ``iterations`` with cosine decay, resuming from a checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / f"{name}.ckpt"
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    start, history = 0, []
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = state["iteration"], state["history"]
        torch.set_rng_state(state["torch_rng"])
    model.to(device).train()
    bar = tqdm(range(start, iterations), desc=name, unit="it", disable=not progress, file=sys.stderr,
               initial=start, total=iterations)
    for iteration in bar:
        batch = next(data)
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * 0.5 * (1.0 + math.cos(math.pi * iteration / iterations))
        with _autocast(device):
            loss = step_loss([item.to(device) for item in batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(history[-20:]):.4f}")
        if (iteration + 1) % checkpoint_every == 0 or iteration + 1 == iterations:
            with atomic_path(checkpoint) as tmp:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "iteration": iteration + 1, "history": history, "torch_rng": torch.get_rng_state()}, tmp)
    return history


def pretrain_encoder(cache, config: MultiViewConfig, out: Path, iterations: int = 500, batch_size: int = 16,
                     lr: float = 0.05, seed: int = 0, device: str = "cpu", progress: bool = True) -> dict:
    """SimSiam on pairs of views of one CT; SGD with cosine decay as in the paper. Returns the encoder state."""
    torch.manual_seed(seed)
    model = SimSiam(ResNetEncoder(config.depth, config.width))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr * batch_size / 256, momentum=0.9, weight_decay=1e-4)
    data = batches(ViewPairDataset(cache, seed), batch_size, seed)

    def step(batch):
        return simsiam_loss(*model(batch[0], batch[1]))

    run_loop("pretrain", model, step, data, iterations, out, optimizer, device, progress=progress)
    return model.encoder.state_dict()


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


def train_network(task: str, cache, config: MultiViewConfig, out: Path, iterations: int = 1000,
                  batch_size: int = 8, lr: float = 1e-3, seed: int = 0, device: str = "cpu",
                  encoder_state: dict | None = None, progress: bool = True) -> ResNetUNet:
    """Train the ``localizer`` (1 heatmap channel) or the ``identifier`` (NUM_CLASSES channels)."""
    torch.manual_seed(seed)
    channels = 1 if task == "localizer" else NUM_CLASSES
    model = ResNetUNet(channels, config.depth, config.width)
    if encoder_state is not None:
        model.encoder.load_state_dict(encoder_state)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    data = batches(DRRDataset(cache, config, augment=True, seed=seed), batch_size, seed)

    def step(batch):
        image, heatmap, classes = batch
        if task == "localizer":
            return localization_loss(model(image), heatmap)
        return identification_loss(model(F.avg_pool2d(image, config.identifier_scale)), classes, config)

    run_loop(task, model, step, data, iterations, out, optimizer, device, progress=progress)
    return model.eval()


def _half(state: dict) -> dict:
    return {key: value.half() if value.is_floating_point() else value for key, value in state.items()}


def save_model(path: str | Path, localizer: ResNetUNet, identifier: ResNetUNet, config: MultiViewConfig,
               meta: dict | None = None) -> Path:
    """One file with both networks in float16 (half the size; inference casts back to float32)."""
    payload = {
        "format": "spinelab-multiview-1",
        "config": config.to_dict(),
        "localizer": _half(localizer.state_dict()),
        "identifier": _half(identifier.state_dict()),
        "meta": json.loads(json.dumps(meta or {})),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _prepare_cache(data, out: Path, config: MultiViewConfig, views_per_case: int, seed: int, progress: bool):
    cache_dir = out / "drr_cache"
    build_cache(data, cache_dir, config, views_per_case, seed, progress)
    return load_cache(cache_dir)


def pretrain(data, out: Path, config: MultiViewConfig | None = None, views_per_case: int = 10,
             iterations: int = 500, batch_size: int = 16, lr: float = 0.05, seed: int = 0, device: str = "cpu",
             progress: bool = True) -> Path:
    """Render the dataset's DRRs and pretrain the encoder with SimSiam; writes ``out/encoder.pt``."""
    config = config or MultiViewConfig()
    cache = _prepare_cache(data, out, config, views_per_case, seed, progress)
    state = pretrain_encoder(cache, config, out, iterations, batch_size, lr, seed, device, progress)
    path = out / "encoder.pt"
    with atomic_path(path) as tmp:
        torch.save({"depth": config.depth, "width": config.width, "encoder": state}, tmp)
    return path


def train_model(data, out: Path, config: MultiViewConfig | None = None, encoder: str | None = None,
                views_per_case: int = 10, iterations: int = 1500, batch_size: int = 8, lr: float = 1e-3,
                seed: int = 0, device: str = "cpu", model_out: str | None = None, progress: bool = True,
                identifier_iterations: int | None = None) -> Path:
    """Train localizer and identifier (optionally from a pretrained encoder) and write the model file.

    ``identifier_iterations`` defaults to ``iterations``; the identifier runs on pooled images and
    so affords more iterations in the same time.
    """
    config = config or MultiViewConfig()
    encoder_state = None
    if encoder:
        saved = torch.load(encoder, map_location="cpu", weights_only=True)
        if (saved["depth"], saved["width"]) != (config.depth, config.width):
            raise SpinelabError(f"{encoder}: encoder is ResNet-{saved['depth']} x{saved['width']}, "
                                f"but training asks for ResNet-{config.depth} x{config.width}")
        encoder_state = saved["encoder"]
    cache = _prepare_cache(data, out, config, views_per_case, seed, progress)
    identifier_iterations = identifier_iterations or iterations
    common = dict(batch_size=batch_size, lr=lr, seed=seed, device=device, encoder_state=encoder_state,
                  progress=progress)
    localizer = train_network("localizer", cache, config, out, iterations=iterations, **common)
    identifier = train_network("identifier", cache, config, out, iterations=identifier_iterations, **common)
    meta = {"training_cases": len(cache), "views_per_case": views_per_case, "iterations": iterations,
            "identifier_iterations": identifier_iterations,
            "batch_size": batch_size, "lr": lr, "seed": seed, "pretrained_encoder": bool(encoder),
            "data": str(data)}
    return save_model(model_out or out / "model.pt", localizer, identifier, config, meta)
