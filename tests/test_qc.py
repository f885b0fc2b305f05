import argparse

import numpy as np
import pytest
from matplotlib.image import imread
from scipy import ndimage

from spinelab import vertebrae
from spinelab.cli import show
from spinelab.io.centroids import Centroids
from spinelab.io.formats import write_centroids
from spinelab.io.images import write_nifti
from spinelab.io.volume import CTVolume
from spinelab.viz.qc import FIGURE_SIZE_PX, REGION_COLOURS, render_qc

T12, L1 = vertebrae.label("T12"), vertebrae.label("L1")
CUBE_HALF_MM = 8.0
# Two bone cubes, offset from each other along every axis (RAS+ mm), each carrying a centroid, and a
# decoy cube beside the upper one, outside both slabs around the spine (like a rib or the pelvis).
UPPER = np.array([25.0, -15.0, 30.0])
LOWER = np.array([10.0, -30.0, -25.0])
DECOY = UPPER + np.array([-45.0, 30.0, 0.0])


def pir_phantom() -> CTVolume:
    """Air with bone cubes, stored P-I-R with anisotropic voxels so every axis is permuted or flipped."""
    affine = np.array([[0, 0, 0.8, -50.0], [-1.5, 0, 0, 60.0], [0, -2.0, 0, 70.0], [0, 0, 0, 1]])
    volume = CTVolume(np.full((80, 70, 125), -1000, np.int16), affine)
    world = volume.to_world(np.moveaxis(np.indices(volume.shape), 0, -1))
    for centre in (UPPER, LOWER, DECOY):
        volume.array[np.all(np.abs(world - centre) <= CUBE_HALF_MM, axis=-1)] = 1200
    assert volume.axcodes == ("P", "I", "R")
    return volume


def marker_centres(picture: np.ndarray, colour) -> list[np.ndarray]:
    """(column, row) centres of the filled dots of ``colour``, left to right; thin text strokes are eroded away."""
    matches = np.all(np.abs(picture[..., :3] - np.asarray(colour)) < 0.02, axis=-1)
    matches[int(0.92 * picture.shape[0]):] = False  # the legend
    dots, count = ndimage.label(ndimage.binary_erosion(matches, iterations=2))
    centres = [np.array(c)[::-1] for c in ndimage.center_of_mass(matches, dots, range(1, count + 1))]
    return sorted(centres, key=lambda c: c[0])


def brightness(picture, xy) -> float:
    column, row = np.round(xy).astype(int)
    return float(picture[row, column, :3].mean())


def test_markers_land_on_the_bone_they_mark_in_both_views(tmp_path):
    ct = pir_phantom()
    centroids = Centroids([T12, L1], [UPPER, LOWER])
    path = render_qc(ct, centroids, tmp_path / "qc.png", title="phantom")
    assert [p.name for p in tmp_path.iterdir()] == ["qc.png"]  # no temporary file left behind
    picture = imread(path)
    assert picture.shape[:2] == (FIGURE_SIZE_PX[1], FIGURE_SIZE_PX[0])

    upper_dots = marker_centres(picture, REGION_COLOURS["thoracic"])
    lower_dots = marker_centres(picture, REGION_COLOURS["lumbar"])
    assert len(upper_dots) == len(lower_dots) == 2  # one per view
    # Sagittal (left panel): horizontal = anterior to the left; coronal: patient's right to the left.
    for view, (upper, lower), horizontal in (("sagittal", (upper_dots[0], lower_dots[0]), 1),
                                             ("coronal", (upper_dots[1], lower_dots[1]), 0)):
        offset_mm = np.array([-(UPPER - LOWER)[horizontal], -(UPPER - LOWER)[2]])  # screen x right, y down
        offset_px = upper - lower
        scale = np.linalg.norm(offset_px) / np.linalg.norm(offset_mm)
        np.testing.assert_allclose(offset_px, offset_mm * scale, atol=2.5, err_msg=view)
        for dot in (upper, lower):
            assert np.all(picture[int(round(dot[1])), int(round(dot[0])), :3] == pytest.approx(
                REGION_COLOURS["thoracic" if dot is upper else "lumbar"], abs=0.02)), view
            for inside in ((0, 5.5), (0, -5.5)):  # inside the cube's projection, clear of the dot
                assert brightness(picture, dot + np.array(inside) * scale) > 0.8, view
            assert brightness(picture, dot + np.array([-14.0, 0.0]) * scale) < 0.1, view
        decoy_mm = np.array([-(DECOY - UPPER)[horizontal], 0.0])
        assert brightness(picture, upper + decoy_mm * scale) < 0.1, f"{view}: the decoy outside the slab shows"


def test_whole_volume_without_centroids_and_hollow_reference(tmp_path):
    ct = pir_phantom()
    reference = Centroids([T12, L1], [UPPER, LOWER])
    path = render_qc(ct, None, tmp_path / "plain.png")
    assert imread(path).shape[:2] == (FIGURE_SIZE_PX[1], FIGURE_SIZE_PX[0])
    # Ground truth only: rings, no filled dot.
    picture = imread(render_qc(ct, None, tmp_path / "reference.png", reference=reference))
    assert marker_centres(picture, REGION_COLOURS["lumbar"]) == []
    ring = np.all(np.abs(picture[..., :3] - REGION_COLOURS["lumbar"]) < 0.02, axis=-1)
    ring[int(0.92 * picture.shape[0]):] = False
    assert ring.sum() > 20


def run_show(*argv) -> int:
    parser = argparse.ArgumentParser()
    show.register(parser.add_subparsers())
    args = parser.parse_args(["show", *map(str, argv)])
    return args.func(args)


def test_show_command_writes_the_picture_named_after_the_ct(tmp_path, monkeypatch):
    ct_path = write_nifti(pir_phantom(), tmp_path / "phantom_ct.nii.gz")
    monkeypatch.chdir(tmp_path)
    assert run_show(ct_path) == 0
    assert imread(tmp_path / "phantom_ct_qc.png").shape[:2] == (FIGURE_SIZE_PX[1], FIGURE_SIZE_PX[0])

    write_centroids(Centroids([T12, L1], [UPPER, LOWER]), tmp_path / "found.csv")
    write_centroids(Centroids([L1], [LOWER]), tmp_path / "truth_ctd.json", reference=pir_phantom())  # voxel file
    assert run_show(ct_path, "--centroids", tmp_path / "found.csv", "--reference", tmp_path / "truth_ctd.json",
                    "--out", tmp_path / "pictures" / "qc.png") == 0
    picture = imread(tmp_path / "pictures" / "qc.png")
    assert len(marker_centres(picture, REGION_COLOURS["thoracic"])) == 2
