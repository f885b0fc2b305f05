"""``spinelab predict CT... [--out DIR]``: centroids, Slicer markups and a QC picture per scan, and a batch summary."""

from __future__ import annotations

import sys

from spinelab.methods import DEFAULT_METHOD, METHODS


def register(sub) -> None:
    parser = sub.add_parser(
        "predict", help="localize and identify vertebrae in CT scans",
        description="Find and label the vertebrae of each CT. Writes to OUT, per scan: <case>_ctd.json (VerSe "
                    "centroids on the CT's grid, with confidences), <case>.mrk.json (3D Slicer markups), <case>_qc.png "
                    "(QC picture) and, with --segment, <case>_seg-vert_msk.nii.gz; and "
                    "spinelab_summary.csv (every input: status, vertebrae, confidence, review flags, outputs). "
                    "Inputs whose names clash get distinct case names; a failed scan is reported and the batch goes "
                    "on (exit status 2 if any failed).")
    parser.add_argument("cts", nargs="+", help="CT files (NIfTI, MHA/MHD, NRRD), DICOM series folders, folders to "
                        "search recursively, quoted globs ('archive/**/*.nii.gz') or manifests (.txt/.lst: one input "
                        "per line; .csv: an 'input' column)")
    parser.add_argument("--out", default="spinelab_out", help="output folder (default: %(default)s)")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS))
    parser.add_argument("--model", default=None, help="trained model file (default: the method's packaged model)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes, each loading the model once (default: %(default)s)")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run the scans on a Ray cluster, one model per actor: 'auto' (the cluster this machine "
                             "belongs to), an address, or 'local' (start one here); --workers then counts actors "
                             "(default: one per CPU). Needs pip install \"spinelab[cluster]\"")
    parser.add_argument("--segment", action="store_true",
                        help="also write each scan's vertebra label map, <case>_seg-vert_msk.nii.gz in VerSe numbering on "
                             "the CT's grid, and draw it on the QC picture (methods that segment: scnet)")
    parser.add_argument("--resume", action="store_true",
                        help="skip the scans OUT's summary lists as done whose outputs all exist")
    parser.set_defaults(func=run)


def run(args) -> int:
    from spinelab.api import predict

    result = predict(args.cts, out=args.out, method=args.method, model=args.model, device=args.device,
                     workers=args.workers, resume=args.resume, ray=args.ray, segment=args.segment)
    for record in result.records:
        if record.prediction is None:  # failed, or done by an earlier run (--resume)
            continue
        if record.status == "ok":
            names = " ".join(record.prediction.centroids.names())
            review = f"; needs review: {'; '.join(record.prediction.review)}" if record.prediction.review else ""
            print(f"{record.case}: {len(record.prediction.centroids)} vertebrae ({names}) -> "
                  f"{record.outputs['verse']}{review}")
        elif record.status == "no vertebrae":
            print(f"{record.case}: no vertebrae found ({record.message}) -> {record.outputs['verse']}")
    if result.summary is not None and result.summary.exists():
        print(f"summary: {result.summary}")
    if result.failures:
        print(f"spinelab: {len(result.failures)} of {len(result.records)} scan(s) failed", file=sys.stderr)
        return 2
    return 0
