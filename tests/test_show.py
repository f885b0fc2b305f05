"""``spinelab show`` on the command line: the picture format follows --out, bad input is one line and exit 2."""

from __future__ import annotations

import numpy as np
import pytest

from spinelab.cli import main
from spinelab.io.centroids import Centroids
from spinelab.io.formats import write_centroids
from spinelab.io.images import write_nifti
from spinelab.io.volume import CTVolume
from spinelab.viz.qc import PICTURE_FORMATS

MAGIC = {"png": b"\x89PNG", "jpg": b"\xff\xd8\xff", "jpeg": b"\xff\xd8\xff", "pdf": b"%PDF", "svg": b"<?xml",
         "tif": (b"II*\x00", b"MM\x00*"), "tiff": (b"II*\x00", b"MM\x00*")}


@pytest.fixture(scope="module")
def small_ct(tmp_path_factory):
    """A 30 mm cube of air around water with a bone block at its centre, stored as NIfTI."""
    array = np.full((30, 30, 30), -1000, np.int16)
    array[2:28, 2:28, 2:28] = 0
    array[10:20, 10:20, 10:20] = 1200
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -14.5
    return write_nifti(CTVolume(array, affine), tmp_path_factory.mktemp("ct") / "small_ct.nii.gz")


def one_line_error(capsys, *argv) -> str:
    assert main([str(word) for word in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spinelab: error: "), lines
    return lines[0]


@pytest.mark.parametrize("extension", PICTURE_FORMATS)
def test_the_picture_is_written_in_the_format_its_extension_names(tmp_path, small_ct, extension):
    out = tmp_path / f"qc.{extension.upper() if extension == 'jpg' else extension}"
    assert main(["show", str(small_ct), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(MAGIC[extension])


@pytest.mark.parametrize("name", ["qc.bmp", "qc"])
def test_other_extensions_are_refused_before_any_work(tmp_path, capsys, name):
    line = one_line_error(capsys, "show", tmp_path / "no_such_ct.nii.gz", "--out", tmp_path / name)
    assert name in line and ".png, .jpg, .jpeg, .pdf, .svg, .tif, .tiff" in line
    assert "no_such_ct" not in line  # the CT was not even read
    assert list(tmp_path.iterdir()) == []


def test_centroids_of_another_scan_are_one_line_and_no_picture(tmp_path, capsys, small_ct):
    centroids = tmp_path / "other_scan.csv"
    write_centroids(Centroids([20, 21], [[0.0, 0.0, 400.0], [0.0, 0.0, 365.0]]), centroids)
    line = one_line_error(capsys, "show", small_ct, "--centroids", centroids, "--out", tmp_path / "qc.png")
    assert line == ("spinelab: error: other_scan.csv: none of the 2 centroid(s) lies inside the CT's volume "
                    "(nearest 350 mm outside); are they from another scan?")
    assert not (tmp_path / "qc.png").exists()


def test_help_names_the_file_written_and_its_formats(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["show", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "one picture file" in text and "<CT name>_qc.png" in text
    assert all(f".{extension}" in text for extension in PICTURE_FORMATS)
