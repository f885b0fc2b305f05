"""Bone probability of a CT at about 4 mm and the bone mask it gives on any finer grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinelab.io.volume import CTVolume, is_column_major
from spinelab.settings import StoredSettings

#: Largest sliding-window patch (voxels per axis): most scans fit one window at 4 mm.
MAX_PATCH = 128
#: The bone radiographs the stage serves (the multiview defaults): only HU above this cut attenuate,
#: on a grid of about this spacing. The stage's signal shares are measured on them.
DRR_CUT_HU = 150.0
DRR_SPACING_MM = 2.0


def mask_share(volume: CTVolume, mask: np.ndarray, spacing: float) -> CTVolume:
    """The share of each voxel of ``volume`` block-averaged to about ``spacing`` that ``mask`` covers."""
    return volume.with_array(mask.astype(np.float32)).block_averaged(spacing)


@dataclass
class BoneConfig(StoredSettings):
    spacing_mm: float = 4.0  # the network sees the CT block-averaged to about this
    channels: tuple[int, ...] = (16, 32, 64, 128)  # MONAI U-Net widths; three stride-2 stages
    hu_low: float = -1000.0  # input HU are clipped to [hu_low, hu_high] and divided by 1000
    hu_high: float = 3071.0
    threshold: float = 0.5  # a voxel is bone where the interpolated probability reaches this
    bone_fraction: float = 0.25  # training target: a coarse voxel is bone when this share of it is

    @classmethod
    def from_dict(cls, values: dict) -> BoneConfig:
        config = super().from_dict(values)
        config.channels = tuple(int(c) for c in config.channels)
        return config


def build_network(config: BoneConfig):
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=1, out_channels=1, channels=config.channels,
                strides=(2,) * (len(config.channels) - 1), num_res_units=1)


def network_input(hu: np.ndarray, config: BoneConfig) -> np.ndarray:
    """HU clipped to the scanner's range and scaled to about [-1, 3]: bright agent stays bright."""
    return (np.clip(hu, config.hu_low, config.hu_high) / 1000.0).astype(np.float32)


def default_bone_model() -> Path:
    return Path(__file__).resolve().parents[1] / "models" / "bone.pt"


class BoneStage:
    """A trained bone network: ``probability`` at about 4 mm, ``mask`` on the grid of the volume given."""

    name = "bone"
    model_version = 1

    def __init__(self, network, config: BoneConfig, device: str = "cpu", meta: dict | None = None):
        self.network = network.to(device).eval()
        self.config = config
        self.device = device
        self.meta = meta or {}

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> BoneStage:
        from spinelab.errors import SpinelabError
        from spinelab.training.model_file import load_model_file

        path = default_bone_model() if path is None else Path(path)
        if not path.is_file():
            raise SpinelabError(f"{path}: bone model not found (train one with 'spinelab train-bone')")
        model = load_model_file(path, cls.name, cls.model_version)
        config = BoneConfig.from_dict(model.config)
        network = build_network(config)
        try:
            network.load_state_dict(model.networks["bone"])
        except (KeyError, RuntimeError) as exc:
            raise SpinelabError(f"bone model: network does not match its config ({str(exc).splitlines()[0]})") from None
        return cls(network, config, device, model.meta)

    def probability(self, ct: CTVolume) -> CTVolume:
        """Bone probability (float32 in [0, 1]) on ``ct`` block-averaged to about ``spacing_mm``."""
        import torch

        from spinelab.inference import sliding_window

        coarse = ct.block_averaged(self.config.spacing_mm)
        image = network_input(coarse.array, self.config)
        multiple = 2 ** (len(self.config.channels) - 1)
        # Instance norm needs two voxels per axis at the bottleneck, so tiny volumes get padded further.
        shape = [max(-(-n // multiple), 2) * multiple for n in image.shape]
        patch = [min(MAX_PATCH, n) for n in shape]
        padded = np.full(shape, network_input(np.float32(self.config.hu_low), self.config), dtype=np.float32)
        padded[tuple(slice(0, n) for n in image.shape)] = image
        logits = sliding_window(self.network, padded, patch, overlap=0.25, device=self.device)[0]
        probability = torch.sigmoid(torch.from_numpy(logits)).numpy()[tuple(slice(0, n) for n in image.shape)]
        return coarse.with_array(probability.astype(np.float32))

    def probability_on(self, volume: CTVolume) -> np.ndarray:
        """Bone probability interpolated onto ``volume``'s own (finer) grid."""
        return self.probability(volume).resampled_onto(volume, order=1, mode="nearest").array

    def mask(self, volume: CTVolume) -> np.ndarray:
        """Boolean bone mask on ``volume``'s grid."""
        return self.probability_on(volume) >= self.config.threshold

    def without_contrast(self, ct: CTVolume, soft_tissue_hu: float = 40.0, bright_hu: float = DRR_CUT_HU) -> CTVolume:
        """``ct`` with every voxel above ``bright_hu`` that the stage does not call bone set to
        ``soft_tissue_hu``: contrast agent and calcified plaque gone, bone untouched. Only the bright
        voxels are looked up in the probability, so this costs little more than the stage itself."""
        from scipy import ndimage

        probability = self.probability(ct)
        bright = _nonzero(ct.array > bright_hu)
        voxel_to_coarse = np.linalg.inv(probability.affine) @ ct.affine  # one transform, not world and back
        coarse = voxel_to_coarse[:3, :3] @ np.stack(bright) + voxel_to_coarse[:3, 3:]
        bone = ndimage.map_coordinates(probability.array, coarse, order=1, mode="nearest") >= self.config.threshold
        array = ct.array.copy(order="K")  # NIfTI arrays are column-major: a row-major copy would transpose
        array[tuple(index[~bone] for index in bright)] = soft_tissue_hu
        return ct.with_array(array)


def _nonzero(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """``np.nonzero`` read in the array's own memory order."""
    if is_column_major(mask):
        return np.nonzero(mask.T)[::-1]
    return np.nonzero(mask)
