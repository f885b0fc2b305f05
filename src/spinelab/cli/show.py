"""``spinelab show CT [--centroids FILE] [--reference FILE] [--out PICTURE]``: write the QC picture."""

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
    from spinelab.viz.qc import picture_format, render_qc

    out = Path(args.out) if args.out else default_output(Path(args.ct))
    picture_format(out)  # a name we cannot write is refused before the CT is read
    ct = read_ct(args.ct)
    centroids, reference = _centroids_on(args.centroids, ct), _centroids_on(args.reference, ct)
    render_qc(ct, centroids, out, reference=reference,
              centroids_source=Path(args.centroids).name if args.centroids else "centroids",
              reference_source=Path(args.reference).name if args.reference else "reference")
    print(out)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "show", help="write a sagittal + coronal QC picture of a CT with its centroids",
        description="Write one picture file, --out (default: <CT name>_qc.png in the current folder), in the format "
                    "its extension names: .png, .jpg/.jpeg, .pdf, .svg or .tif/.tiff. It shows sagittal and coronal "
                    "bone-window projections of the CT around the spine, the centroids as labelled dots coloured by "
                    "region and, optionally, reference (ground-truth) centroids as labelled rings joined to the "
                    "prediction of the same label. Centroids outside the CT's volume are left out and counted in the "
                    "panel titles; a file with none inside is refused.")
    parser.add_argument("ct", help="CT file (NIfTI, MHA/MHD, NRRD) or a DICOM series folder")
    parser.add_argument("--centroids", help="centroid file to draw (any format spinelab reads)")
    parser.add_argument("--reference", help="reference (ground-truth) centroid file, drawn as rings")
    parser.add_argument("--out", metavar="PICTURE",
                        help="picture to write: .png, .jpg, .jpeg, .pdf, .svg, .tif or .tiff "
                             "(default: <CT name>_qc.png in the current folder)")
    parser.set_defaults(func=run)
