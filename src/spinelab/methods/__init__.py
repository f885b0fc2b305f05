"""The method registry: every localization + identification method spinelab offers, by name.

Each method is one folder below ``spinelab/methods`` and one ``MethodSpec`` here. The spec names
its parts as ``"module:attribute"`` strings, imported only when used, so ``spinelab --help`` and the
methods a run does not use cost nothing:

* ``method``: the ``Method`` subclass (``spinelab predict``);
* ``config``: the dataclass of its settings, stored in every model file it writes;
* ``train`` / ``train_arguments``: ``train(data, out, **options) -> model path`` and the function
  adding those options to ``spinelab train --method NAME`` (in a module that imports no torch, so
  the CLI starts fast); ``pretrain`` likewise where it has one;
* ``default_model``: the model file shipped in ``spinelab/models/`` (None: the user passes one);
* ``benchmark_sections``: optional extra benchmark rows of the method's own (e.g. an ablation):
  ``(method, heldout, limit, variants, real_cases=, real_pooled=) -> (markdown, raw)``, given the
  benchmark's real cases and the method's pooled metrics on them so they are not computed twice;
* ``published``: the paper's own headline figures, printed beside ours in the benchmark.

The CLI, the Python API and the benchmark resolve methods only through this registry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from spinelab.errors import SpinelabError
from spinelab.methods.base import Method, Prediction, StageTimer

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


@dataclass(frozen=True)
class PublishedResult:
    """A paper's headline figures and how its setting differs from our benchmark's."""

    data: str
    id_rate_percent: float
    mean_error_mm: float
    differences: str


@dataclass(frozen=True)
class MethodSpec:
    name: str
    summary: str
    method: str
    config: str
    train: str
    train_arguments: str
    pretrain: str | None = None
    pretrain_arguments: str | None = None
    default_model: str | None = None
    benchmark_sections: str | None = None
    published: PublishedResult | None = None

    def resolve(self, part: str):
        """The object a ``"module:attribute"`` field names; a method without that part is a one-line error."""
        reference = getattr(self, part)
        if reference is None:
            raise SpinelabError(f"method {self.name!r} has no {part.replace('_', ' ')} step")
        module, attribute = reference.split(":")
        return getattr(importlib.import_module(module), attribute)

    def model_path(self, model: str | Path | None) -> Path:
        if model is not None:
            return Path(model)
        if self.default_model is None:
            raise SpinelabError(f"method {self.name!r} ships no trained model; train one with "
                                f"'spinelab train --method {self.name}' and pass it with --model")
        return MODELS_DIR / self.default_model


_MULTIVIEW = "spinelab.methods.multiview"
METHODS: dict[str, MethodSpec] = {}
DEFAULT_METHOD = "multiview"


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method (or replace one of the same name)."""
    METHODS[spec.name] = spec
    return spec


register_method(MethodSpec(
    name="multiview",
    summary="multi-view DRR localization and identification (Wu et al., MICCAI 2023)",
    method=f"{_MULTIVIEW}.method:MultiViewMethod",
    config=f"{_MULTIVIEW}.config:MultiViewConfig",
    train=f"{_MULTIVIEW}.train:train",
    train_arguments=f"{_MULTIVIEW}.options:add_train_arguments",
    pretrain=f"{_MULTIVIEW}.train:pretrain_encoder",
    pretrain_arguments=f"{_MULTIVIEW}.options:add_pretrain_arguments",
    default_model="multiview.pt",
    benchmark_sections=f"{_MULTIVIEW}.ablation:benchmark_sections",
    published=PublishedResult(
        "VerSe19 test set (40 real CTs, 1 mm)", 98.12, 1.79,
        "real annotated CTs for training (70 VerSe19 scans) and testing, 1 mm DRRs, ResNet-50 encoders and "
        "15k iterations per network on a GPU; ours trains on synthetic CTs only, on 2 mm DRRs with ResNet-18 "
        "encoders and a few thousand iterations on 2 CPU cores"),
))


_DENSE = "spinelab.methods.dense"
register_method(MethodSpec(
    name="dense",
    summary="two-stage dense labelling: 3D body detection x 2D sagittal identification (McCouat & Glocker)",
    method=f"{_DENSE}.method:DenseMethod",
    config=f"{_DENSE}.config:DenseConfig",
    train=f"{_DENSE}.train:train",
    train_arguments=f"{_DENSE}.options:add_train_arguments",
    default_model="dense.pt",
    published=PublishedResult(
        "CSI2014 test set (60 real CTs, 1 mm)", 85.8, 5.60,
        "real annotated CTs for training (242 CSI2014 scans) and testing at 1 mm; ours trains on synthetic CTs "
        "only, at 2 mm with the sample sizes halved in voxels and narrower networks"),
))


_INTEGRAL = "spinelab.methods.integral"
register_method(MethodSpec(
    name="integral",
    summary="residual multi-label classification and localization with integral regression and a Bi-LSTM (Qin et al.)",
    method=f"{_INTEGRAL}.method:IntegralMethod",
    config=f"{_INTEGRAL}.config:IntegralConfig",
    train=f"{_INTEGRAL}.train:train",
    train_arguments=f"{_INTEGRAL}.options:add_train_arguments",
    default_model="integral.pt",
    benchmark_sections=f"{_INTEGRAL}.ablation:benchmark_sections",
    published=PublishedResult(
        "CSI2014 test set (56 real CTs, 2 mm)", 89.0, 2.3,
        "real annotated CTs for training (240 CSI2014 scans) and testing, batch 2 on two GPUs until convergence; "
        "ours trains on synthetic CTs only, for a few thousand iterations on 2 CPU cores, with a stride-2 stem "
        "(heatmaps at 4 mm) and 112-voxel crops along S-I instead of 104"),
))


_DI2IN = "spinelab.methods.di2in"
register_method(MethodSpec(
    name="di2in",
    summary="deep image-to-image heatmaps, message passing along the spine and sparse shape refinement (Yang et al.)",
    method=f"{_DI2IN}.method:DI2INMethod",
    config=f"{_DI2IN}.config:DI2INConfig",
    train=f"{_DI2IN}.train:train",
    train_arguments=f"{_DI2IN}.options:add_train_arguments",
    default_model="di2in.pt",
    benchmark_sections=f"{_DI2IN}.ablation:benchmark_sections",
    published=PublishedResult(
        "Set 2 of Glocker et al.'s CTs (242 for training, 60 real CTs for testing)", 85.0, 8.6,
        "real annotated CTs for training and testing, on a GPU; ours trains on synthetic CTs only, at 4 mm with "
        "8-96 channels, a foreground-weighted L2 and GroupNorm, 2500 iterations on 2 CPU cores"),
))


_SCNET = "spinelab.methods.scnet"
register_method(MethodSpec(
    name="scnet",
    summary="coarse-to-fine spine localization, SpatialConfiguration-Net and per-vertebra U-Net segmentation "
            "(Payer et al., VerSe 2019 winner)",
    method=f"{_SCNET}.method:SCNetMethod",
    config=f"{_SCNET}.config:SCNetConfig",
    train=f"{_SCNET}.train:train",
    train_arguments=f"{_SCNET}.options:add_train_arguments",
    default_model="scnet.pt",
    benchmark_sections=f"{_SCNET}.benchmark:benchmark_sections",
    published=PublishedResult(
        "VerSe 2019 test set (40 real CTs, 1 mm)", 95.65, 4.27,
        "real annotated CTs for training (80 VerSe19 scans) and testing, 64 filters per layer, 8 / 2 / 1 mm and "
        "20k / 100k / 50k iterations on a GPU (Dice 0.909); ours trains on synthetic CTs only, 8-32 filters at "
        "8 / 4 / 2 mm and a few thousand iterations on 2 CPU cores"),
))


def method_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        raise SpinelabError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    return METHODS[name]


def load_method(name: str = DEFAULT_METHOD, model: str | Path | None = None, device: str = "cpu",
                segment: bool = False) -> Method:
    """Instantiate a method with its trained model (the packaged default when ``model`` is None); with
    ``segment`` its predictions also carry a vertebra label map (methods that segment only)."""
    spec = method_spec(name)
    cls = spec.resolve("method")
    if segment and not cls.can_segment:
        segmenting = ", ".join(other for other, s in METHODS.items() if s.resolve("method").can_segment)
        raise SpinelabError(f"method {name!r} does not segment vertebrae; --segment needs one that does ({segmenting})")
    method = cls.load(spec.model_path(model), device)
    method.segment = segment
    return method


__all__ = ["DEFAULT_METHOD", "METHODS", "Method", "MethodSpec", "Prediction", "PublishedResult", "StageTimer",
           "load_method", "method_spec", "register_method"]
