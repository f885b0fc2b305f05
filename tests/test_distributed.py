"""Data-parallel training: two CPU processes (gloo) train one tiny network for 2 iterations."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from spinelab.methods.integral.config import IntegralConfig

TINY = IntegralConfig(spacing_mm=4.0, crop=(32, 32, 48), encoder_channels=(4, 8, 8, 8, 8),
                      decoder_channels=(8, 8, 8, 8), lstm_hidden=8, border=(4, 4, 6))


def _train_rank(rank: int, processes: int, port: int, data: str, out: str) -> None:
    from spinelab.methods.integral.data import prepare_case
    from spinelab.methods.integral.train import IntegralTrainer
    from spinelab.training import build_cache, load_cache

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=processes)
    try:
        torch.set_num_threads(1)
        build_cache(data, f"{out}/cache", lambda ct, centroids, mask, rng: prepare_case(ct, centroids, TINY),
                    progress=False)
        trainer = IntegralTrainer(load_cache(f"{out}/cache"), TINY, out, iterations=2, batch_size=2, lr=1e-2,
                                  progress=False)
        network = trainer.fit()
        torch.save({"weights": network.state_dict(), "losses": trainer.history}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_cpu_processes_train_one_network_with_distributed_data_parallel(tiny_dataset, tmp_path):
    mp.spawn(_train_rank, args=(2, _free_port(), str(tiny_dataset), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    for name, value in ranks[0]["weights"].items():  # gradients were averaged: both ranks hold one network
        torch.testing.assert_close(ranks[1]["weights"][name], value)
    assert ranks[0]["losses"] != ranks[1]["losses"]  # but each rank trained on batches of its own
    torch.manual_seed(0)
    from spinelab.methods.integral.network import IntegralNet

    untrained = IntegralNet(TINY).state_dict()
    assert any(not torch.equal(untrained[name], value) for name, value in ranks[0]["weights"].items())
    assert (tmp_path / "integral.ckpt").exists() and len(list((tmp_path / "cache").glob("*.npz"))) == 2
