"""What ``spinelab predict`` writes per scan: VerSe JSON, Slicer markups, a QC picture and, when the
method segments, the vertebra label map on the input's grid. All of them or none."""

from __future__ import annotations

import contextlib
from pathlib import Path

from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume


def output_paths(out: Path, case: str, label_map: bool = False) -> dict[str, Path]:
    paths = {"verse": out / f"{case}_ctd.json", "slicer": out / f"{case}.mrk.json", "qc": out / f"{case}_qc.png"}
    if label_map:
        paths["label_map"] = out / f"{case}_seg-vert_msk.nii.gz"
    return paths


def write_outputs(ct: CTVolume, centroids: Centroids, out: Path, case: str, title: str | None = None,
                  reference: Centroids | None = None, label_map: CTVolume | None = None) -> dict[str, Path]:
    """Write every output of one scan; the VerSe JSON and the label map are on the CT's own grid."""
    from spinelab.io.formats import write_centroids
    from spinelab.io.images import write_nifti
    from spinelab.viz.qc import render_qc

    paths = output_paths(Path(out), case, label_map is not None)
    try:
        write_centroids(centroids, paths["verse"], reference=ct)
        write_centroids(centroids, paths["slicer"])
        on_ct = None if label_map is None else label_map.resampled_onto(ct, order=0, cval=0)
        render_qc(ct, centroids, paths["qc"], title=title or case, reference=reference, label_map=on_ct)
        if on_ct is not None:
            write_nifti(on_ct, paths["label_map"], dtype="int16")
    except BaseException:
        for path in paths.values():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    return paths
