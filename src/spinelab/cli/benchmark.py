"""``spinelab benchmark``: every chosen method on the same held-out synthetic set and real CTs -> docs/BENCHMARKS.md."""

from __future__ import annotations

import json
from pathlib import Path

from spinelab.errors import SpinelabError
from spinelab.methods import DEFAULT_METHOD, METHODS


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, path = value.partition("=")
        if not sep or not key or not path:
            raise SpinelabError(f"{option} {value!r}: expected NAME=PATH")
        pairs[key] = path
    return pairs


def _variants(values: list[str]) -> dict[str, dict[str, str]]:
    """``METHOD:NAME=PATH`` options -> {method: {name: path}}."""
    variants: dict[str, dict[str, str]] = {}
    for key, path in _pairs(values, "--variant").items():
        method, sep, name = key.partition(":")
        if not sep or not name or method not in METHODS:
            raise SpinelabError(f"--variant {key}={path}: expected METHOD:NAME=PATH with METHOD one of "
                                f"{', '.join(METHODS)}")
        variants.setdefault(method, {})[name] = path
    return variants


def register(sub) -> None:
    parser = sub.add_parser(
        "benchmark", help="measure accuracy (held-out synthetic + real CTs) and speed of one or more methods",
        description="Run each method through the same predict on a held-out synthetic dataset and the real example "
                    "CTs, time it on a 512x512x400 CT, score the bone stage on the real chest CT, and write one "
                    "comparison (OUT, OUT's .json twin and a QC picture per method next to OUT).")
    parser.add_argument("--heldout", required=True, help="held-out dataset (VerSe layout), e.g. from spinelab synth")
    parser.add_argument("--methods", default=DEFAULT_METHOD,
                        help=f"comma-separated methods to compare (default: %(default)s; known: {', '.join(METHODS)})")
    parser.add_argument("--model", action="append", default=[], metavar="METHOD=PATH",
                        help="model file of a method (default: its packaged model); repeatable")
    parser.add_argument("--variant", action="append", default=[], metavar="METHOD:NAME=PATH",
                        help="extra models for a method's own rows (multiview ablation: multiview:baseline=..., "
                             "multiview:pretrained=...; integral: integral:bilstm_head=..., integral:fc_head=...)")
    parser.add_argument("--limit", type=int, help="use only the first N held-out scans")
    parser.add_argument("--throughput-scans", type=int, default=20,
                        help="held-out CTs for the batch throughput rows of the first method (0: skip; "
                             "default: %(default)s)")
    parser.add_argument("--out", default="spinelab_benchmark/BENCHMARKS.md",
                        help="report to write (default: %(default)s; scripts/train_default_model.sh writes "
                             "docs/BENCHMARKS.md)")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def run(args) -> int:
    from spinelab.bone import BoneStage
    from spinelab.eval.benchmark import (MethodResult, batch_throughput, evaluate_heldout, evaluate_real, real_cases,
                                         speed_test_ct, time_stages, write_report)
    from spinelab.eval.bone import bone_section
    from spinelab.io.files import write_text
    from spinelab.methods import load_method, method_spec

    names = [name.strip() for name in args.methods.split(",") if name.strip()]
    specs = [method_spec(name) for name in names]
    model_paths = _pairs(args.model, "--model")
    variants = _variants(args.variant)
    out = Path(args.out)
    cases = real_cases()
    big_ct = speed_test_ct()
    bone_text, bone_raw = bone_section(BoneStage.load(device=args.device), big_ct)
    results, models = {}, {}
    for spec in specs:
        method = load_method(spec.name, model_paths.get(spec.name), args.device)
        models[spec.name] = (f"`{model_paths[spec.name]}`" if spec.name in model_paths else "packaged default",
                             method.meta)
        heldout, seconds, heldout_review = evaluate_heldout(method, args.heldout, args.limit)
        real, outside, real_review = evaluate_real(method, cases, out.parent)
        result = MethodResult(heldout, seconds, real, outside, time_stages(method, big_ct),
                              {"held-out synthetic": heldout_review, "real CTs": real_review})
        if spec.benchmark_sections:
            loaded = {key: load_method(spec.name, path, args.device)
                      for key, path in variants.get(spec.name, {}).items()}
            result.sections, result.raw_sections = spec.resolve("benchmark_sections")(
                method, args.heldout, args.limit, loaded, real_cases=cases, real_pooled=real["pooled"])
        results[spec.name] = result
    throughput_text, throughput_raw = ("", {})
    if args.throughput_scans > 0:
        throughput_text, throughput_raw = batch_throughput(args.heldout, names[0], args.throughput_scans,
                                                           model_paths.get(names[0]))
    write_report(out, results, models, args.heldout, cases, bone_text,
                 {spec.name: spec.published for spec in specs if spec.published}, throughput_text)
    raw = {name: {"heldout": {"overall": r.heldout.overall.to_dict(),
                              "regions": {k: v.to_dict() for k, v in r.heldout.by_region().items()}},
                  "seconds_per_scan": r.seconds_per_scan,
                  "real": {case: m.overall.to_dict() for case, m in r.real.items()},
                  "outside_volume": r.outside_volume, "timings": r.timings, "own_rows": r.raw_sections,
                  "review": {kind: vars(counts) for kind, counts in r.review.items()}}
           for name, r in results.items()}
    raw["bone_stage"] = bone_raw
    raw["batch_throughput"] = throughput_raw
    write_text(out.with_suffix(".json"), json.dumps(raw, indent=1) + "\n")
    print(f"wrote {out}")
    return 0
