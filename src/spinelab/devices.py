"""Torch devices: one check with a one-line error, and the precision every loop and inference runs in.

bf16 autocast halves the cost where the hardware computes in bf16 (CUDA GPUs, CPUs with
AVX512-BF16 or AMX). Elsewhere torch emulates it: on an AVX2-only EPYC the multiview localizer
took 59 s in bf16 against 2.8 s in float32 for the 10 DRRs of one scan. So ``auto`` uses bf16
only on such hardware; ``SPINELAB_PRECISION=bf16|fp32`` forces one (e.g. to reproduce numbers
measured on other hardware).
"""

from __future__ import annotations

import os

import torch

from spinelab.errors import SpinelabError

PRECISIONS = ("auto", "bf16", "fp32")


def check_device(device: str) -> str:
    """``device`` if torch can use it here; otherwise a SpinelabError that says why."""
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise SpinelabError(f"unknown device {device!r} (use cpu or cuda)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise SpinelabError(f"device {device!r} asked for, but torch sees no CUDA GPU on this machine")
    return device


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bf16 in hardware (CUDA, or a CPU with AVX512-BF16 or AMX)."""
    if torch.device(device).type != "cpu":
        return True
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in
               ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def use_bf16(device: str) -> bool:
    precision = os.environ.get("SPINELAB_PRECISION", "auto").lower()
    if precision not in PRECISIONS:
        raise SpinelabError(f"SPINELAB_PRECISION={precision!r}: use one of {', '.join(PRECISIONS)}")
    return precision == "bf16" or (precision == "auto" and native_bf16(device))


def autocast(device: str):
    """bf16 autocast where it is fast (see the module doc), a no-op context otherwise."""
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=use_bf16(device))
