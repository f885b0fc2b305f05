import functools
import json

import numpy as np
import pytest
from scipy import ndimage

from spinelab import vertebrae
from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.formats import (centroids_from_landmarks, detect_format, read_centroids, read_landmarks_table,
                                 read_vid_keypoints, write_centroids)
from spinelab.io.images import read_label_map
from spinelab.io.volume import CTVolume


def rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    angle = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def grid(linear, origin=(0.0, 0.0, 0.0), shape=(40, 50, 30)) -> CTVolume:
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = origin
    return CTVolume(np.zeros(shape, np.int16), affine, "case.nii.gz")


GRIDS = {
    "ras-iso": grid(np.eye(3)),
    "lps-aniso": grid(np.diag([-0.7, -0.7, 2.5]), origin=(180.0, 200.0, -300.0)),
    "pir": grid(np.array([[0.0, 0.0, 2.0], [-1.0, 0.0, 0.0], [0.0, -1.2, 0.0]]), origin=(-77.0, 218.0, -808.0)),
    "oblique": grid(rotation((1, 2, 3), 23) @ np.diag([0.29, 0.31, 1.25]), origin=(-12.5, 40.0, 933.0)),
}
# Every level Payer's table can hold, so one set of centroids suits every format.
TRUTH = Centroids([1, 2, 8, 19, 28, 20, 24, 25],
                  np.array([[3.0, 8.0, 120.0], [2.5, 10.0, 100.0], [1.0, 2.0, 20.0], [0.5, -4.0, -150.0],
                            [0.2, -5.5, -180.0], [0.0, -6.0, -210.0], [-1.5, 4.0, -300.0], [-2.0, 6.0, -330.0]])
                  + [11.1, -22.2, 33.3])
WRITTEN_NAMES = {"verse": "c_ctd.json", "verse19": "c_ctd.json", "verse20-miccai": "c_iso-ctd.json",
                 "csi2014": "c.lml", "landmarks": "c_landmarks.csv", "slicer": "c.mrk.json", "csv": "c.csv"}
CONFIDENCE_FORMATS = ("verse", "verse19", "verse20-miccai", "slicer", "csv")


def one_line_error(excinfo, path) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.mark.parametrize("fmt", sorted(WRITTEN_NAMES))
@pytest.mark.parametrize("grid_name", sorted(GRIDS))
def test_every_format_reads_back_what_it_wrote(tmp_path, fmt, grid_name):
    reference = GRIDS[grid_name]
    truth = Centroids(TRUTH.labels, TRUTH.world, np.linspace(0.1, 0.9, len(TRUTH)))
    path = write_centroids(truth, tmp_path / WRITTEN_NAMES[fmt], reference=reference, fmt=fmt)
    assert detect_format(path) == fmt
    back = read_centroids(path, reference=reference)
    np.testing.assert_array_equal(back.labels, truth.labels)
    assert np.abs(back.world - truth.world).max() <= 1e-6
    if fmt in CONFIDENCE_FORMATS:
        np.testing.assert_allclose(back.confidence, truth.confidence, rtol=1e-3 if fmt == "slicer" else 1e-15)
    else:
        assert back.confidence is None
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left behind


def test_format_follows_the_file_name_when_writing(tmp_path):
    reference = GRIDS["pir"]
    for name, fmt in (("a_ctd.json", "verse"), ("a.mrk.json", "slicer"), ("a.lml", "csi2014"), ("a.csv", "csv")):
        assert detect_format(write_centroids(TRUTH, tmp_path / name, reference=reference)) == fmt


def test_verse_json_is_written_in_the_image_axes_as_plain_voxel_indices(tmp_path):
    reference = GRIDS["pir"]
    path = write_centroids(TRUTH, tmp_path / "c_ctd.json", reference=reference)
    data = json.loads(path.read_text())
    assert data[0] == {"direction": ["P", "I", "R"]}
    voxels = np.array([[entry[axis] for axis in "XYZ"] for entry in data[1:]])
    np.testing.assert_allclose(reference.to_world(voxels), TRUTH.world, atol=1e-9)


@pytest.mark.parametrize("direction", [("R", "A", "S"), ("L", "P", "S"), ("S", "L", "A"), ("I", "R", "P")])
def test_verse_direction_other_than_the_image_axes_means_the_reoriented_grid(tmp_path, direction):
    reference = GRIDS["oblique"]
    reoriented = reference.reoriented(direction)
    voxels = TRUTH.to_voxel(reoriented.affine)
    entries = [{"direction": list(direction)}] + [{"label": int(label), "X": x, "Y": y, "Z": z}
                                                  for label, (x, y, z) in zip(TRUTH.labels, voxels)]
    path = tmp_path / "other_ctd.json"
    path.write_text(json.dumps(entries))
    assert np.abs(read_centroids(path, reference=reference).world - TRUTH.world).max() < 1e-6


def test_verse19_coordinates_are_mm_from_the_superior_anterior_right_corner(tmp_path):
    """Challenge page: X superior->inferior, Y anterior->posterior, Z right->left, origin at voxel 0."""
    reference = grid(np.diag([0.5, 1.0, 2.0]), origin=(10.0, 20.0, 30.0), shape=(100, 80, 60))
    path = tmp_path / "verse999_ctd.json"
    path.write_text(json.dumps([{"label": 20, "X": 4.0, "Y": 3.0, "Z": 2.0}]))
    # Reoriented to I, P, L the grid's voxel 0 is the most superior, anterior and right voxel.
    superior_anterior_right = reference.to_world([99, 79, 59])
    expected = superior_anterior_right + [-2.0, -3.0, -4.0]  # 2 mm left, 3 mm posterior, 4 mm inferior
    np.testing.assert_allclose(read_centroids(path, reference=reference).world[0], expected, atol=1e-9)


def test_lml_reads_header_and_suffixed_names_in_mm_along_the_image_axes(tmp_path):
    reference = GRIDS["lps-aniso"]
    path = tmp_path / "scan.lml"
    path.write_text("#some header\n200\tL1_center\t7.0\t14.0\t25.0\n210\tL2\t7.0\t14.0\t0.0\n")
    back = read_centroids(path, reference=reference)
    assert back.names() == ["L1", "L2"]
    np.testing.assert_allclose(back.world[0], reference.to_world([10.0, 20.0, 10.0]), atol=1e-9)


def test_slicer_reads_both_coordinate_systems_and_skips_unplaced_points(tmp_path):
    def markup(system, points):
        return {"markups": [{"type": "Fiducial", "coordinateSystem": system, "controlPoints": points}]}

    ras = [{"label": "T12", "position": [1.0, 2.0, 3.0]},
           {"label": "L1", "position": [0.0, 0.0, 0.0], "positionStatus": "undefined"}]
    (tmp_path / "ras.mrk.json").write_text(json.dumps(markup("RAS", ras)))
    (tmp_path / "lps.mrk.json").write_text(json.dumps(markup("LPS", ras[:1])))
    from_ras = read_centroids(tmp_path / "ras.mrk.json")
    assert from_ras.names() == ["T12"]
    np.testing.assert_allclose(from_ras.world, [[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(read_centroids(tmp_path / "lps.mrk.json").world, [[-1.0, -2.0, 3.0]])


def test_slicer_file_is_written_in_lps_like_slicer(tmp_path):
    data = json.loads(write_centroids(TRUTH, tmp_path / "c.mrk.json").read_text())
    markup = data["markups"][0]
    assert markup["type"] == "Fiducial" and markup["coordinateSystem"] == "LPS"
    assert [p["label"] for p in markup["controlPoints"]] == TRUTH.names()
    np.testing.assert_allclose(markup["controlPoints"][0]["position"], TRUTH.world[0] * [-1, -1, 1])


def test_confidence_is_in_every_prediction_output_and_reads_back(tmp_path):
    truth = Centroids(TRUTH.labels[:3], TRUTH.world[:3], [0.83, 0.5, 0.123456789])
    verse = write_centroids(truth, tmp_path / "c_ctd.json", reference=GRIDS["pir"])
    slicer = write_centroids(truth, tmp_path / "c.mrk.json")
    table = write_centroids(truth, tmp_path / "c.csv")
    assert [entry["confidence"] for entry in json.loads(verse.read_text())[1:]] == [0.83, 0.5, 0.123456789]
    points = json.loads(slicer.read_text())["markups"][0]["controlPoints"]
    assert [point["description"] for point in points] == ["confidence 0.83", "confidence 0.5", "confidence 0.1235"]
    assert table.read_text().splitlines()[:3] == ["# frame: RAS+ mm", "label,name,x,y,z,confidence",
                                                  "1,C1,14.1,-14.2,153.3,0.83"]
    for path in (verse, table):
        np.testing.assert_array_equal(read_centroids(path, reference=GRIDS["pir"]).confidence, truth.confidence)
    np.testing.assert_allclose(read_centroids(slicer).confidence, [0.83, 0.5, 0.1235])


def test_files_without_confidence_for_every_point_read_without_confidence(tmp_path):
    plain = write_centroids(TRUTH, tmp_path / "c_ctd.json", reference=GRIDS["pir"])
    assert "confidence" not in plain.read_text()
    assert read_centroids(plain, reference=GRIDS["pir"]).confidence is None
    data = json.loads(write_centroids(Centroids(TRUTH.labels[:2], TRUTH.world[:2], [0.9, 0.8]),
                                      tmp_path / "c.mrk.json").read_text())
    data["markups"][0]["controlPoints"][1]["description"] = "fractured"  # a note typed in Slicer
    (tmp_path / "c.mrk.json").write_text(json.dumps(data))
    assert read_centroids(tmp_path / "c.mrk.json").confidence is None


@pytest.mark.parametrize("header, to_ras", [("label,name,x_ras,y_ras,z_ras", [1, 1, 1]),
                                            ("Label,Name,X_LPS,Y_LPS,Z_LPS,Confidence", [-1, -1, 1])])
def test_csv_without_frame_line_takes_the_frame_from_its_columns(tmp_path, header, to_ras):
    rows = "\n".join(f"{label},,{x},{y},{z}" + (",0.5" if "Confidence" in header else "")
                     for label, (x, y, z) in zip(TRUTH.labels, TRUTH.world))
    path = tmp_path / "points.csv"
    path.write_text(f"{header}\n{rows}\n")
    assert detect_format(path) == "csv"
    back = read_centroids(path)
    np.testing.assert_array_equal(back.labels, TRUTH.labels)
    np.testing.assert_allclose(back.world, TRUTH.world * to_ras)


@pytest.mark.parametrize("text, problem", [
    ("label,name,x,y,z\n20,L1,1,2,3\n", "states no coordinate frame; add a '# frame: RAS+ mm' line, or name the "
                                        "columns x_ras,y_ras,z_ras (RAS+ mm) or x_lps,y_lps,z_lps (LPS mm)"),
    ("# frame: LPS mm\nlabel,name,x,y,z\n20,L1,1,2,3\n", "frame"),
    ("# frame: RAS+ mm\nlabel,name,x_lps,y_lps,z_lps\n20,L1,1,2,3\n", "contradicts its LPS columns"),
    ("label,name,x_ras,y_lps,z\n20,L1,1,2,3\n", "header"),
    ("# frame: RAS+ mm\nlabel,name,x,y,z\n20,L2,1,2,3\n", "disagree"),
    ("# frame: RAS+ mm\nlabel,name,x,y\n20,L1,1,2\n", "header"),
    ("# frame: RAS+ mm\nlabel,name,x,y,z\n20,L1,1,nan,3\n", "NaN"),
])
def test_csv_problems_are_one_line_errors(tmp_path, text, problem):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(SpinelabError) as excinfo:
        read_centroids(path)
    assert problem in one_line_error(excinfo, path)


VERSE_ROWS = [{"direction": ["R", "A", "S"]}, {"label": 20, "X": 1.0, "Y": 2.0, "Z": 3.0}]


@pytest.mark.parametrize("content, problem", [
    (json.dumps(VERSE_ROWS + [{"label": 31, "X": 1.0, "Y": 2.0, "Z": 3.0}]), "unknown vertebra label 31"),
    (json.dumps(VERSE_ROWS + [{"label": "L9", "X": 1.0, "Y": 2.0, "Z": 3.0}]), "unknown vertebra label"),
    (json.dumps(VERSE_ROWS + [{"label": 21, "X": float("nan"), "Y": 2.0, "Z": 3.0}]), "NaN"),
    (json.dumps(VERSE_ROWS + [{"label": 21, "X": "nan", "Y": 2.0, "Z": 3.0}]), "NaN"),
    (json.dumps(VERSE_ROWS + [{"label": 20, "X": 5.0, "Y": 2.0, "Z": 3.0}]), "more than once"),
    (json.dumps(VERSE_ROWS + [{"label": 21, "X": 1.0, "Y": 2.0}]), "lacks"),
    (json.dumps([{"direction": ["R", "A", "R"]}, VERSE_ROWS[1]]), "direction"),
    (json.dumps(VERSE_ROWS)[:-5], "not valid JSON"),
    (json.dumps({"something": "else"}), "unrecognized"),
])
def test_bad_verse_json_is_a_one_line_error_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "bad_ctd.json"
    path.write_text(content)
    with pytest.raises(SpinelabError) as excinfo:
        read_centroids(path, reference=GRIDS["ras-iso"])
    assert problem in one_line_error(excinfo, path)


def test_voxel_formats_need_their_image(tmp_path):
    path = write_centroids(TRUTH, tmp_path / "c_ctd.json", reference=GRIDS["pir"])
    with pytest.raises(SpinelabError) as excinfo:
        read_centroids(path)
    assert "reference" in one_line_error(excinfo, path)
    with pytest.raises(SpinelabError, match="reference"):
        write_centroids(TRUTH, tmp_path / "d_ctd.json")


def test_failed_write_leaves_nothing_behind(tmp_path):
    sacrum = Centroids([26], [[0.0, 0.0, 0.0]])
    with pytest.raises(SpinelabError, match="no column for S"):
        write_centroids(sacrum, tmp_path / "t.csv", reference=GRIDS["pir"], fmt="landmarks")
    with pytest.raises(SpinelabError, match="pass fmt"):
        write_centroids(TRUTH, tmp_path / "t.txt")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------- real data

VERSE_CASES = {"sub-verse004": "sub-verse004", "sub-verse010": "sub-verse010",
               "sub-gl003": "sub-gl003_dir-ax", "sub-gl017": "sub-gl017"}


@functools.lru_cache(maxsize=1)
def official(shared_data, case) -> tuple[Centroids, CTVolume]:
    folder = shared_data / "verse_masks"
    mask = read_label_map(folder / f"{VERSE_CASES[case]}_seg-vert_msk.nii.gz")
    return read_centroids(folder / f"{VERSE_CASES[case]}_seg-subreg_ctd.json", reference=mask), mask


@pytest.mark.parametrize("case", sorted(VERSE_CASES))
def test_official_verse_centroids_land_in_their_vertebra(shared_data, case):
    truth, mask = official(shared_data, case)
    boxes = ndimage.find_objects(mask.array)
    for label, world in zip(truth.labels, truth.world):
        box = boxes[label - 1]
        voxels = np.argwhere(mask.array[box] == label) + [s.start for s in box]
        if label == vertebrae.LABELS["C1"]:
            # No body: VerSe's C1 centroid is the whole ring's centre of mass, in the ring's hole.
            np.testing.assert_allclose(world, mask.to_world(voxels.mean(axis=0)), atol=0.1)
            continue
        assert np.linalg.norm(mask.to_world(voxels) - world, axis=1).min() <= 3.0, vertebrae.name(label)


def test_payer_verse19_table_matches_the_official_centroids(shared_data):
    truth, mask = official(shared_data, "sub-verse004")
    table = read_landmarks_table(shared_data / "verse_landmarks" / "verse2019_landmarks.csv")
    assert len(table) == 80 and all(points.shape == (26, 3) for points in table.values())
    from_table = centroids_from_landmarks(table["verse004"], mask)
    np.testing.assert_array_equal(from_table.labels, truth.labels)
    assert np.linalg.norm(from_table.world - truth.world, axis=1).max() < 3.5  # measured 3.2 mm


def test_vid_keypoints_are_lps_world_and_pedicles_follow_their_bodies(shared_data):
    truth, _ = official(shared_data, "sub-verse004")
    path = shared_data / "vid" / "KeypointGroundTruthNoSacrum" / "Training" / "c4RqiADLFOuB.json"  # verse004
    keypoints = read_vid_keypoints(path)
    assert keypoints.body.names() == truth.names()
    distances = np.linalg.norm(keypoints.body.world - truth.world, axis=1)
    assert np.median(distances) < 6.0 and distances.max() < 9.0  # measured 4.7 and 7.8 mm
    to_left = keypoints.left - keypoints.body.world
    to_right = keypoints.right - keypoints.body.world
    assert (to_left[:, 0] < -5).all() and (to_right[:, 0] > 5).all()  # RAS: +x is the patient's right
    assert (to_left[:, 1] < -10).all() and (to_right[:, 1] < -10).all()  # pedicles are posterior


def test_vid_files_with_unequal_pedicle_counts_align_by_distance(shared_data):
    path = shared_data / "vid" / "KeypointGroundTruthNoSacrum" / "Training" / "5NFLQ6nDW31n.json"  # 17 bodies, 16+16
    keypoints = read_vid_keypoints(path)
    assert keypoints.left.shape == keypoints.right.shape == (17, 3)
    assert np.isnan(keypoints.left).all(axis=1).sum() == 1
    present = ~np.isnan(keypoints.left).any(axis=1)
    assert np.linalg.norm(keypoints.left[present] - keypoints.body.world[present], axis=1).max() < 45
    assert read_centroids(path).names() == keypoints.body.names()


def test_vid_prediction_files_are_refused(shared_data):
    path = shared_data / "vid" / "KeypointPredictionsNoSacrum" / "Training" / "c4RqiADLFOuB.json"
    with pytest.raises(SpinelabError) as excinfo:
        read_vid_keypoints(path)
    assert "spine_level" in one_line_error(excinfo, path)


def test_official_centroids_survive_every_writer(shared_data, tmp_path):
    truth, mask = official(shared_data, "sub-gl003")
    for fmt, name in WRITTEN_NAMES.items():
        path = write_centroids(truth, tmp_path / name, reference=mask, fmt=fmt)
        assert np.abs(read_centroids(path, reference=mask).world - truth.world).max() <= 1e-6, fmt
