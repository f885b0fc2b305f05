"""``spinelab show CT [--centroids FILE] [--reference FILE] [--out PNG]``: write the QC picture."""

from __future__ import annotations

from pathlib import Path

from spinelab.io.images import nifti_stem


def default_output(ct_path: Path) -> Path:
    """``<CT name without .nii/.nii.gz>_qc.png`` in the current folder (a DICOM folder keeps its name)."""
    return Path.cwd() / f"{nifti_stem(ct_path)}_qc.png"


def _centroids_on(path: str | None, ct):
    """Centroids of ``path`` (None without one); voxel-based formats are placed on the CT's grid."""
    if not path:
        return None
    from spinelab.io.formats import read_centroids

    return read_centroids(path, reference=ct)


def run(args) -> int:
    from spinelab.io.images import read_ct
    from spinelab.viz.qc import render_qc

    ct = read_ct(args.ct)
    centroids, reference = _centroids_on(args.centroids, ct), _centroids_on(args.reference, ct)
    out = render_qc(ct, centroids, args.out or default_output(Path(args.ct)), reference=reference)
    print(out)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "show", help="write a sagittal + coronal QC picture of a CT with its centroids",
        description="Write a PNG with sagittal and coronal bone-window projections of the CT around the spine, "
                    "the centroids as labelled dots coloured by region and, optionally, reference (ground-truth) "
                    "centroids as rings joined to the prediction of the same label.")
    parser.add_argument("ct", help="CT as NIfTI (.nii/.nii.gz) or a DICOM series folder")
    parser.add_argument("--centroids", help="centroid file to draw (any format spinelab reads)")
    parser.add_argument("--reference", help="reference (ground-truth) centroid file, drawn as rings")
    parser.add_argument("--out", help="PNG to write (default: <CT name>_qc.png in the current folder)")
    parser.set_defaults(func=run)
