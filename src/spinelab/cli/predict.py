"""``spinelab predict CT... [--out DIR]``: centroids, Slicer markups and a QC picture per scan."""

from __future__ import annotations

import sys

from spinelab.methods import DEFAULT_METHOD, METHODS


def register(sub) -> None:
    parser = sub.add_parser("predict", help="localize and identify vertebrae in CT scans")
    parser.add_argument("cts", nargs="+", help="NIfTI files or DICOM series folders")
    parser.add_argument("--out", default="spinelab_out", help="output folder (default: %(default)s)")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS))
    parser.add_argument("--model", default=None, help="trained model file (default: the packaged model)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.set_defaults(func=run)


def run(args) -> int:
    from spinelab.api import predict

    result = predict(args.cts, out=args.out, method=args.method, model=args.model, device=args.device)
    for case, prediction in result.predictions.items():
        names = " ".join(prediction.centroids.names()) or "none"
        print(f"{case}: {len(prediction.centroids)} vertebrae ({names}) -> {result.outputs[case]['verse']}")
    if result.failures:
        print(f"spinelab: {len(result.failures)} of {len(args.cts)} scan(s) failed", file=sys.stderr)
        return 2
    return 0
