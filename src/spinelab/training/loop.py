"""The training loop every method uses: a ``Trainer`` base class whose hooks a method fills in.

The base class owns what must not differ between methods: seeding, endless shuffled batches,
cosine learning-rate decay, bf16 autocast, a progress bar, and a checkpoint in
``<out>/<name>.ckpt`` every ``checkpoint_every`` iterations from which an interrupted (or extended,
with more ``iterations``) run resumes; it then draws batches from a stream seeded by the iteration it
resumes at, so it does not replay the crops of its first iterations. Under ``torch.distributed``
(``spinelab.training.distributed``) the network is wrapped in ``DistributedDataParallel``, each rank
draws its own batches and only rank 0 writes the checkpoint.
A method subclasses it and says what to build (``build_network``, ``build_dataset``, and
``build_optimizer`` when AdamW does not fit), what to minimize (``loss``) and, when cosine decay does
not fit, how the learning rate moves (``schedule``). A step whose gradients are not finite is skipped
and counted on the progress bar; a loss that is not finite stops the run with one line.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spinelab.devices import autocast, check_device
from spinelab.errors import SpinelabError
from spinelab.io.files import atomic_path
from spinelab.training.distributed import barrier, world


def batches(dataset, batch_size: int, seed: int):
    """Endless shuffled batches; each pass bumps ``dataset.epoch`` (when it has one) so augmentation changes."""
    if len(dataset) < batch_size:  # drop_last would give no batch at all, and the loop would wait forever
        raise SpinelabError(f"the training data gives {len(dataset)} items, fewer than one batch of {batch_size}; "
                            f"lower --batch-size or add cases")
    generator = torch.Generator().manual_seed(seed)
    while True:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                             generator=generator, num_workers=0)
        yield from loader
        if hasattr(dataset, "epoch"):
            dataset.epoch += 1


class Trainer:
    """Trains one network for ``iterations``; subclasses implement the hooks below."""

    name = "network"

    def __init__(self, out: str | Path, iterations: int, batch_size: int = 8, lr: float = 1e-3, seed: int = 0,
                 device: str = "cpu", checkpoint_every: int = 200, progress: bool = True):
        self.out, self.iterations, self.batch_size, self.lr = Path(out), iterations, batch_size, lr
        self.seed, self.device = seed, check_device(device)
        self.checkpoint_every, self.progress = checkpoint_every, progress
        self.history: list[float] = []

    # Hooks -----------------------------------------------------------------------------------------------
    def build_network(self) -> torch.nn.Module:
        raise NotImplementedError

    def build_dataset(self) -> torch.utils.data.Dataset:
        """Items are tuples of tensors; ``loss`` receives them batched and on the device."""
        raise NotImplementedError

    def build_optimizer(self, network: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(network.parameters(), lr=self.lr, weight_decay=1e-4)

    def loss(self, network: torch.nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def schedule(self, optimizer: torch.optim.Optimizer, iteration: int, base_lrs: list[float]) -> None:
        """Set the learning rates of ``iteration`` (``self.history`` holds the losses so far): cosine decay."""
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * 0.5 * (1.0 + math.cos(math.pi * iteration / self.iterations))

    @staticmethod
    def gradients_finite(network: torch.nn.Module) -> bool:
        """False when a gradient holds inf or NaN: that step is skipped (as AMP's gradient scaler does),
        since one such step leaves the weights NaN for good."""
        return all(bool(torch.isfinite(p.grad).all()) for p in network.parameters() if p.grad is not None)

    # The loop --------------------------------------------------------------------------------------------
    def fit(self) -> torch.nn.Module:
        """Build, train (resuming from the checkpoint if there is one) and return the network in eval mode."""
        torch.manual_seed(self.seed)
        network = self.build_network()
        optimizer = self.build_optimizer(network)
        self.out.mkdir(parents=True, exist_ok=True)
        checkpoint = self.out / f"{self.name}.ckpt"
        base_lrs = [group["lr"] for group in optimizer.param_groups]
        start = 0
        if checkpoint.exists():
            state = torch.load(checkpoint, map_location=self.device, weights_only=False)
            network.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start, self.history = state["iteration"], state["history"]
            torch.set_rng_state(state["torch_rng"])
        dataset = self.build_dataset()
        if start and hasattr(dataset, "epoch"):
            dataset.epoch = start
        rank, processes = world()
        stream = self.seed * 1_000_003 + start if start else self.seed
        data = batches(dataset, self.batch_size, stream + 7919 * rank)
        network.to(self.device).train()
        trained = network
        if processes > 1:
            trained = torch.nn.parallel.DistributedDataParallel(network)
        bar = tqdm(range(start, self.iterations), desc=self.name, unit="it", disable=not self.progress or rank > 0,
                   file=sys.stderr, initial=start, total=self.iterations)
        skipped = 0
        for iteration in bar:
            batch = next(data)
            self.schedule(optimizer, iteration, base_lrs)
            with autocast(self.device):
                loss = self.loss(trained, [item.to(self.device) for item in batch])
            if not torch.isfinite(loss):
                raise SpinelabError(f"{self.name}: training diverged at iteration {iteration} (loss {float(loss.detach())}); "
                                    f"lower --lr or resume from the last checkpoint")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.gradients_finite(network):
                optimizer.step()
            else:
                skipped += 1
            self.history.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(self.history[-20:]):.4f}", **({"skipped": skipped} if skipped else {}))
            if rank == 0 and ((iteration + 1) % self.checkpoint_every == 0 or iteration + 1 == self.iterations):
                with atomic_path(checkpoint) as tmp:
                    torch.save({"model": network.state_dict(), "optimizer": optimizer.state_dict(),
                                "iteration": iteration + 1, "history": self.history,
                                "torch_rng": torch.get_rng_state()}, tmp)
        barrier()  # every rank leaves with rank 0's last checkpoint written
        return network.eval()
