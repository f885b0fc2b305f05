import numpy as np
import pytest
from scipy import ndimage

from spinelab import vertebrae
from spinelab.errors import SpinelabError
from spinelab.io.formats import read_centroids
from spinelab.io.labelmap import (TOTALSEGMENTATOR_BONE, TOTALSEGMENTATOR_HEART_AND_VESSELS, TOTALSEGMENTATOR_TO_VERSE,
                                  centroids_from_label_map, vertebra_mask)
from spinelab.io.images import read_ct, read_label_map
from spinelab.io.volume import CTVolume

VERSE_CASES = ("sub-verse004", "sub-verse010", "sub-gl003_dir-ax", "sub-gl017")


def block(shape, box, value, array=None) -> np.ndarray:
    array = np.zeros(shape, np.int16) if array is None else array
    array[tuple(slice(a, b) for a, b in box)] = value
    return array


def test_body_centroids_match_the_official_verse_centroids(shared_data):
    body_errors, whole_errors = [], []
    for case in VERSE_CASES:
        mask = read_label_map(shared_data / "verse_masks" / f"{case}_seg-vert_msk.nii.gz")
        truth = read_centroids(shared_data / "verse_masks" / f"{case}_seg-subreg_ctd.json", reference=mask).as_dict()
        for kind, errors in (("body", body_errors), ("whole", whole_errors)):
            found = centroids_from_label_map(mask, scheme="verse", kind=kind)
            assert sorted(found.labels.tolist()) == sorted(truth)
            errors += [np.linalg.norm(world - truth[label]) for label, world in zip(found.labels, found.world)]
    # Measured: body median 0.53 mm, max 2.5 mm; whole-vertebra median 11.3 mm (37 vertebrae C1-L5).
    assert np.median(body_errors) < 1.0 and max(body_errors) < 4.0
    assert np.median(whole_errors) > 7.0


def test_body_centroid_matches_the_tptbox_body_subregion(tptbox_example):
    labels = read_label_map(tptbox_example["labels"])
    subregions = read_label_map(tptbox_example["subregions"]).array
    found = centroids_from_label_map(labels, kind="body")
    assert found.names() == ["L2", "L3", "L4"]
    for label, world in zip(found.labels, found.world):
        body = (labels.array == label) & np.isin(subregions, (49, 50))  # VerSe subregions: vertebral body
        assert np.linalg.norm(world - labels.to_world(ndimage.center_of_mass(body))) < 2.0  # measured <= 1.1 mm


def test_totalsegmentator_chest_gives_the_thoracic_spine_top_to_bottom(chest_example):
    found = centroids_from_label_map(read_label_map(chest_example["labels"]), scheme="auto")
    names = found.names()
    expected = [vertebrae.name(label) for label in range(vertebrae.label("T1"), vertebrae.label("L2") + 1)]
    assert names[names.index("T1"): names.index("L2") + 1] == expected
    assert (np.diff(found.world[:, 2]) < 0).all()  # skull to tail is superior to inferior
    assert "C5" not in names  # 99 voxels at the top of the field of view: too little to hold a body


def test_totalsegmentator_heart_and_vessel_labels_are_where_the_chest_holds_contrast(chest_example):
    """The benchmark counts what the bone stage keeps of these labels: in the contrast chest CT they hold
    agent (bright), none of them is bone, and the aorta and heart are among them."""
    hu = read_ct(chest_example["ct"]).array
    labels = read_label_map(chest_example["labels"]).array
    vessels = np.isin(labels, sorted(TOTALSEGMENTATOR_HEART_AND_VESSELS))
    assert not TOTALSEGMENTATOR_HEART_AND_VESSELS & TOTALSEGMENTATOR_BONE
    assert np.median(hu[vessels]) > 150 and {51, 52} <= set(np.unique(labels[vessels]).tolist())


def test_totalsegmentator_numbering_maps_to_verse_and_merges_s1_into_the_sacrum():
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    array = np.zeros((8, 8, 60), np.int16)
    slices = {0: 25, 1: 26, 6: 31, 25: 50, 40: 90}  # sacrum, S1, L1, C1, an organ
    for z, value in slices.items():
        array[:, :, z] = value
    numbered = vertebra_mask(CTVolume(array, affine)).array
    assert {z: int(numbered[0, 0, z]) for z in slices} == {0: 26, 1: 26, 6: 20, 25: 1, 40: 0}
    assert set(np.unique(numbered)) == {0, 1, 20, 26}
    assert TOTALSEGMENTATOR_TO_VERSE[27] == vertebrae.label("L5") and TOTALSEGMENTATOR_TO_VERSE[43] == 8


def test_partial_vertebrae_are_skipped_and_whole_ones_kept():
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    array = block((60, 60, 90), [(10, 50), (10, 45), (5, 30)], vertebrae.label("L1"))  # 35 cm3
    array = block(array.shape, [(10, 50), (10, 45), (60, 64)], vertebrae.label("L2"), array)  # 5.6 cm3
    found = centroids_from_label_map(CTVolume(array, affine), scheme="verse")
    assert found.names() == ["L1"]
    np.testing.assert_allclose(found.world[0], [29.5, 27.0, 17.0], atol=0.01)  # a box's body is the box


def test_unknown_scheme_kind_and_values_are_errors():
    labels = CTVolume(block((10, 10, 10), [(2, 8), (2, 8), (2, 8)], 20), np.eye(4), "mask.nii.gz")
    with pytest.raises(SpinelabError, match="mask.nii.gz: unknown label scheme"):
        centroids_from_label_map(labels, scheme="nnunet")
    with pytest.raises(SpinelabError, match="unknown centroid kind"):
        centroids_from_label_map(labels, kind="pedicle")
    with pytest.raises(SpinelabError, match="non-integer"):
        centroids_from_label_map(labels.with_array(labels.array + 0.5))
