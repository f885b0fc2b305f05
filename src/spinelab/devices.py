"""Torch devices: one check with a one-line error, and the precision every loop and inference runs in.

bf16 autocast halves the cost where the hardware computes in bf16 (CUDA GPUs, CPUs with
AVX512-BF16 or AMX). Elsewhere torch emulates it: on an AVX2-only EPYC the multiview localizer
took 59 s in bf16 against 2.8 s in float32 for the 10 DRRs of one scan. So ``auto`` uses bf16
only on such hardware; ``SPINELAB_PRECISION=bf16|fp32`` forces one (e.g. to reproduce numbers
measured on other hardware).

On Linux, glibc hands every buffer above 32 MB (a batch of 3D heatmaps, a feature map) back to the
kernel when it is freed and faults it in afresh on the next step: a di2in training step spent 40 % of
its time in the kernel, 2.5 s against 1.6 s with freed memory kept (``keep_freed_memory``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

import torch

from spinelab.errors import SpinelabError

PRECISIONS = ("auto", "bf16", "fp32")
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc mallopt parameters
KEPT_FREE_BYTES = 2**30  # freed heap memory kept for reuse before glibc returns it to the kernel


@functools.cache
def keep_freed_memory() -> None:
    """Serve every allocation from glibc's heap and keep up to 1 GiB of freed memory (see the module doc);
    elsewhere (macOS, musl, Windows) nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES)


def check_device(device: str) -> str:
    """``device`` if torch can use it here; otherwise a SpinelabError that says why. Called before every
    training and inference run, so it also sets up the allocator for them."""
    keep_freed_memory()
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
