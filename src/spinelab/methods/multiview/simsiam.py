"""SimSiam (Chen & He 2021): two views of the same CT are a positive pair, no negatives needed.

In Wu et al. the two views are DRRs of one CT from different angles, so the encoder learns what
stays the same around the patient: the spine's appearance and context.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spinelab.nets import ResNetEncoder


class SimSiam(nn.Module):
    """Encoder -> global pool -> 3-layer projector; a 2-layer bottleneck predictor on top."""

    def __init__(self, encoder: ResNetEncoder, dim: int = 512, predictor_dim: int = 128):
        super().__init__()
        self.encoder = encoder
        features = encoder.channels[-1]
        self.projector = nn.Sequential(
            nn.Linear(features, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
            nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
            nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim, affine=False))
        self.predictor = nn.Sequential(
            nn.Linear(dim, predictor_dim, bias=False), nn.BatchNorm1d(predictor_dim), nn.ReLU(inplace=True),
            nn.Linear(predictor_dim, dim))

    def forward(self, view_a: torch.Tensor, view_b: torch.Tensor):
        z_a, z_b = (self.projector(self.encoder(v)[-1].mean(dim=(2, 3))) for v in (view_a, view_b))
        return self.predictor(z_a), self.predictor(z_b), z_a.detach(), z_b.detach()


def simsiam_loss(p_a, p_b, z_a, z_b) -> torch.Tensor:
    """Symmetric negative cosine similarity with stop-gradient on the targets (range -1..1)."""
    return -0.5 * (F.cosine_similarity(p_a, z_b, dim=1).mean() + F.cosine_similarity(p_b, z_a, dim=1).mean())
