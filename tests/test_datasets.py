import shutil

import numpy as np
import pytest

from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.datasets import Case, csi2014_cases, find_cases, verse_cases, write_verse_case
from spinelab.io.formats import write_centroids
from spinelab.io.images import write_nifti
from spinelab.io.volume import CTVolume

SHAPE = (24, 20, 16)
AFFINE = np.array([[0.0, 0.0, 2.0, -40.0],  # axes point P, I, R as in VerSe'19 files
                   [-1.5, 0.0, 0.0, 30.0],
                   [0.0, -1.2, 0.0, 100.0],
                   [0.0, 0.0, 0.0, 1.0]])


def ct_volume(seed=0) -> CTVolume:
    rng = np.random.default_rng(seed)
    return CTVolume(rng.integers(-1000, 1500, SHAPE).astype(np.int16), AFFINE)


def mask_volume() -> CTVolume:
    array = np.zeros(SHAPE, np.uint8)
    array[4:12, 2:8, 3:9] = 20
    array[4:12, 10:16, 3:9] = 21
    return CTVolume(array, AFFINE)


CENTROIDS = Centroids([20, 21], CTVolume(np.zeros(SHAPE), AFFINE).to_world([[7.5, 4.5, 5.5], [7.5, 12.5, 5.5]]))


def test_written_verse_case_loads_back(tmp_path):
    ct, mask = ct_volume(), mask_volume()
    written = write_verse_case(tmp_path, "synth001", ct, CENTROIDS, mask)
    assert written.ct_path == tmp_path / "rawdata" / "sub-synth001" / "sub-synth001_ct.nii.gz"
    assert written.mask_path == tmp_path / "derivatives" / "sub-synth001" / "sub-synth001_seg-vert_msk.nii.gz"
    assert written.centroids_path.name == "sub-synth001_seg-subreg_ctd.json"
    assert verse_cases(tmp_path) == find_cases(tmp_path) == [written]
    loaded_ct, centroids, loaded_mask = written.load()
    np.testing.assert_array_equal(loaded_ct.array, ct.array)
    np.testing.assert_allclose(loaded_ct.affine, AFFINE, atol=1e-5)
    np.testing.assert_array_equal(loaded_mask.array, mask.array)
    np.testing.assert_array_equal(centroids.labels, CENTROIDS.labels)
    assert np.abs(centroids.world - CENTROIDS.world).max() < 1e-4  # NIfTI stores the affine in float32


def test_verse_cases_span_several_datasets_and_skip_unannotated_scans(tmp_path):
    first = write_verse_case(tmp_path / "01_training", "sub-a", ct_volume(), CENTROIDS, None)
    second = write_verse_case(tmp_path / "02_validation", "b", ct_volume(1), CENTROIDS, mask_volume())
    write_nifti(ct_volume(2), tmp_path / "02_validation" / "rawdata" / "sub-c" / "sub-c_ct.nii.gz")  # test scan
    assert first.mask_path is None
    assert [case.case_id for case in find_cases(tmp_path)] == ["sub-a", "sub-b"]
    assert find_cases(tmp_path)[1] == second


def test_flat_verse_folders_including_challenge_names(tmp_path):
    write_verse_case(tmp_path / "bids", "x", ct_volume(), CENTROIDS, mask_volume())
    subject = tmp_path / "flat" / "sub-x"
    subject.mkdir(parents=True)
    for written in [*(tmp_path / "bids" / "rawdata" / "sub-x").iterdir(),
                    *(tmp_path / "bids" / "derivatives" / "sub-x").iterdir()]:
        shutil.copy(written, subject)
    challenge = tmp_path / "flat"
    write_nifti(ct_volume(3), challenge / "verse004.nii.gz")
    write_nifti(mask_volume(), challenge / "verse004_seg.nii.gz")
    write_centroids(CENTROIDS, challenge / "verse004_ctd.json", reference=ct_volume(), fmt="verse")
    cases = {case.case_id: case for case in find_cases(challenge)}
    assert sorted(cases) == ["sub-x", "verse004"]
    assert cases["verse004"].mask_path == challenge / "verse004_seg.nii.gz"
    assert cases["sub-x"].mask_path == subject / "sub-x_seg-vert_msk.nii.gz"
    assert np.abs(cases["verse004"].load()[1].world - CENTROIDS.world).max() < 1e-4


def test_csi2014_scans_pair_with_lml_files(tmp_path):
    folder = tmp_path / "spine-1" / "patient0001" / "2804506"
    write_nifti(ct_volume(), folder / "2804506.nii.gz")
    write_centroids(CENTROIDS, folder / "2804506.lml", reference=ct_volume())
    write_centroids(CENTROIDS, tmp_path / "orphan.lml", reference=ct_volume())
    cases = find_cases(tmp_path)
    assert cases == csi2014_cases(tmp_path) == [Case("2804506", folder / "2804506.nii.gz", folder / "2804506.lml")]
    assert np.abs(cases[0].load()[1].world - CENTROIDS.world).max() < 1e-4


def test_folders_without_cases_and_mismatched_masks_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpinelabError, match="empty: no cases found"):
        find_cases(tmp_path / "empty")
    with pytest.raises(SpinelabError, match="no such folder"):
        find_cases(tmp_path / "missing")
    with pytest.raises(SpinelabError, match="grid"):
        write_verse_case(tmp_path, "bad", ct_volume(), CENTROIDS, CTVolume(mask_volume().array[:, :, :8], AFFINE))
    case = write_verse_case(tmp_path / "shifted", "s", ct_volume(), CENTROIDS, mask_volume())
    moved = AFFINE.copy()
    moved[:3, 3] += 10.0
    write_nifti(CTVolume(mask_volume().array, moved), case.mask_path)
    with pytest.raises(SpinelabError, match="does not match its CT"):
        case.load()
