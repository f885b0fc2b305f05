"""``spinelab benchmark``: measure accuracy and speed and write docs/BENCHMARKS.md."""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    parser = sub.add_parser("benchmark", help="measure accuracy (synthetic held-out + real CT) and speed")
    parser.add_argument("--heldout", required=True, help="held-out dataset (VerSe layout), e.g. from spinelab synth")
    parser.add_argument("--model", help="model to benchmark (default: the packaged model)")
    parser.add_argument("--baseline", help="ablation model: no pretraining, no Sequence Loss")
    parser.add_argument("--pretrained", help="ablation model: pretraining, no Sequence Loss")
    parser.add_argument("--limit", type=int, help="use only the first N held-out scans")
    parser.add_argument("--out", default="docs/BENCHMARKS.md")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def run(args) -> int:
    from spinelab.eval.benchmark import evaluate_heldout, real_chest, time_stages, write_report
    from spinelab.methods.multiview.method import MultiViewMethod

    models = {"default": MultiViewMethod.load(args.model, args.device)}
    for key in ("baseline", "pretrained"):
        if getattr(args, key):
            models[key] = MultiViewMethod.load(getattr(args, key), args.device)
    out = Path(args.out)
    heldout = evaluate_heldout(args.heldout, models, args.limit)
    qc_name = "benchmark_chest_qc.png"
    chest = real_chest(models["default"], out.parent / qc_name)
    timings = time_stages(models["default"])
    model_name = f"`{args.model}`" if args.model else "the packaged default model"
    write_report(out, heldout, args.heldout, chest, timings, model_name, models["default"].meta, qc_name)
    raw = {name: {"overall": metrics.overall.to_dict(),
                  "regions": {region: summary.to_dict() for region, summary in metrics.by_region().items()}}
           for name, metrics in heldout.items()}
    out.with_suffix(".json").write_text(json.dumps({"heldout": raw, "chest": chest[0], "timings": timings}, indent=1))
    print(f"wrote {out}")
    return 0
