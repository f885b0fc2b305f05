import argparse

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import imread
from matplotlib.text import Text
from scipy import ndimage

from spinelab import vertebrae
from spinelab.cli import show
from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.formats import write_centroids
from spinelab.io.images import write_nifti
from spinelab.io.volume import CTVolume
from spinelab.viz.qc import BONE_WINDOW, FIGURE_SIZE_PX, REGION_COLOURS, qc_figure, render_qc

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


def water_box(shape, spacing) -> CTVolume:
    """Water (0 HU, dark grey in the bone window) filling ``shape`` voxels of ``spacing`` mm, R-A-S, centred on 0."""
    spacing = np.asarray(spacing, dtype=float)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.array(shape) - 1) / 2 * spacing
    return CTVolume(np.zeros(shape, np.int16), affine)


def panel_boxes(picture) -> list[tuple[int, int]]:
    """(height, width) in pixels of each panel of a ``water_box`` picture: the large dark grey regions."""
    grey = (0 - BONE_WINDOW[0]) / (BONE_WINDOW[1] - BONE_WINDOW[0])
    panels, _ = ndimage.label(np.all(np.abs(picture[..., :3] - grey) < 0.02, axis=-1))
    boxes = [(box[0].stop - box[0].start, box[1].stop - box[1].start) for box in ndimage.find_objects(panels)]
    return [box for box in boxes if box[0] * box[1] > 2000]


def test_a_thin_axial_slab_fills_the_picture_with_its_true_aspect(tmp_path):
    slab = water_box((512, 512, 20), (0.7, 0.7, 2.5))  # 358.4 x 358.4 x 50 mm
    boxes = panel_boxes(imread(render_qc(slab, None, tmp_path / "slab.png")))
    assert len(boxes) == 2
    for height, width in boxes:
        assert height >= 150, "a 5 cm slab must not become a strip"
        assert width / height == pytest.approx(358.4 / 50, rel=0.03)


def test_the_scale_bar_fits_a_tiny_volume(tmp_path):
    picture = imread(render_qc(water_box((30, 30, 30), (1.0, 1.0, 1.0)), None, tmp_path / "tiny.png"))
    panel_width = max(width for _, width in panel_boxes(picture))
    white = np.all(picture[..., :3] > 0.99, axis=-1)
    runs = [len(run) for row in white for run in np.split(row, np.flatnonzero(np.diff(row)) + 1) if run[0]]
    longest = max(runs)  # the bar: 10 mm on a 30 mm panel
    assert panel_width / 6 < longest <= panel_width / 3 + 2
    assert white.sum(axis=1).max() < panel_width  # thin: no white band across the panels


def label_texts(figure):
    """Per panel: the vertebra names drawn, as (text, italic, window box) in display pixels."""
    FigureCanvasAgg(figure).draw()
    names = set(vertebrae.NAMES.values()) - {"S"}  # the sacrum's name is also the letter for superior
    return [[(text.get_text(), text.get_fontstyle() == "italic", Text.get_window_extent(text))
             for text in ax.texts if text.get_text() in names] for ax in figure.axes]


def test_reference_rings_are_named_and_no_two_names_overlap():
    l4, l5, l3 = (vertebrae.label(name) for name in ("L4", "L5", "L3"))
    ct = pir_phantom()
    centroids = Centroids([l4, l5], [LOWER, LOWER + [0.0, 0.0, -1.5]])  # L4 and L5 almost on each other
    reference = Centroids([l3, l4, l5], [LOWER + [0, 0, 25.0], LOWER + [0, 0, 1.0], LOWER + [0, 0, -2.0]])
    for labels in label_texts(qc_figure(ct, centroids, reference=reference)):
        assert sorted(text for text, italic, _ in labels if italic) == ["L3", "L4", "L5"]  # the rings
        assert sorted(text for text, italic, _ in labels if not italic) == ["L4", "L5"]  # the dots
        for first, (_, _, box) in enumerate(labels):
            for _, _, other in labels[first + 1:]:
                assert not box.overlaps(other)


def test_centroids_of_another_scan_are_refused_and_those_outside_counted(tmp_path):
    ct = water_box((30, 30, 30), (1.0, 1.0, 1.0))  # the box reaches 15 mm from the origin
    elsewhere = Centroids([T12, L1], [[0.0, 0.0, 215.0], [0.0, 0.0, 115.0]])
    with pytest.raises(SpinelabError, match=r"^found.json: none of the 2 centroid\(s\) lies inside the CT's volume "
                                            r"\(nearest 100 mm outside\); are they from another scan\?$"):
        render_qc(ct, elsewhere, tmp_path / "qc.png", centroids_source="found.json")
    with pytest.raises(SpinelabError, match="^truth.json: none of the 2"):
        render_qc(ct, None, tmp_path / "qc.png", reference=elsewhere, reference_source="truth.json")
    assert list(tmp_path.iterdir()) == []

    partly = Centroids([T12, L1], [[0.0, 0.0, 16.0], [0.0, 0.0, 5.0]])
    figure = qc_figure(ct, partly, reference=partly)
    for ax, labels in zip(figure.axes, label_texts(figure)):
        assert [text for text, _, _ in labels] == ["L1", "L1"]  # ring and dot; T12 is not drawn
        assert any(text.get_text().endswith("; 1 centroid(s) and 1 reference centroid(s) outside the volume not shown")
                   for text in ax.texts)


def test_a_label_map_is_drawn_where_its_vertebra_lies(tmp_path):
    """Only the upper cube is labelled (L1) in the P-I-R phantom: the picture changes around the upper cube's
    markers, in both panels, and not around the lower cube's."""
    volume = pir_phantom()
    world = volume.to_world(np.moveaxis(np.indices(volume.shape), 0, -1))
    labels = volume.with_array(np.where(np.all(np.abs(world - UPPER) <= CUBE_HALF_MM, axis=-1), 20, 0).astype(np.int16))
    centroids = Centroids(np.array([20, 21]), np.stack([UPPER, LOWER]))
    plain = imread(render_qc(volume, centroids, tmp_path / "plain.png"))
    tinted = imread(render_qc(volume, centroids, tmp_path / "tinted.png", label_map=labels))
    changed = np.abs(tinted[..., :3] - plain[..., :3]).max(axis=-1) > 0.05
    rows, columns = np.nonzero(changed)
    markers = marker_centres(plain, REGION_COLOURS["lumbar"])  # two per panel
    upper = [m for m in markers if m[1] < np.median([n[1] for n in markers])]
    assert len(rows) > 100 and len(upper) == 2
    for row, column in zip(rows, columns):
        nearest = min(markers, key=lambda m: np.hypot(m[0] - column, m[1] - row))
        assert any(nearest is m for m in upper)
