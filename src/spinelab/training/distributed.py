"""Data-parallel training over several processes (``torch.distributed``), started by torchrun.

``spinelab train ... --devices N`` re-runs itself under ``torchrun --standalone --nproc-per-node N``;
each process then joins the group here (NCCL on GPUs, one per process; gloo on CPUs). The trainer
wraps its network in ``DistributedDataParallel`` and draws its own batches per rank; only rank 0
builds the case cache, writes checkpoints and writes the model file, the others wait for it.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, number of processes) of this training process; (0, 1) outside a group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def join_group(device: str) -> str:
    """Join the group torchrun describes in the environment (if any); the device this process trains on."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.device(device).type == "cuda":
        device = f"cuda:{local}"
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return device


def launch(argv: list[str], processes: int) -> int:
    """Run ``spinelab ARGV`` in ``processes`` processes under torchrun; its exit status."""
    from torch.distributed.run import main as torchrun

    try:
        torchrun(["--standalone", f"--nproc-per-node={processes}", "-m", "spinelab", *argv])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
