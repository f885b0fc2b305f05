"""Choose the multi-view label correction's ``missed_vertebra_penalty`` on a validation set.

The held-out set of docs/BENCHMARKS.md must not pick settings, so the penalty is chosen on a
separate synthetic validation set. Only the final dynamic programme changes between the rows,
so the networks run once per scan. Run::

    spinelab synth --n 30 --seed 2000 --out runs/validation --workers 2
    python benchmarks/missed_vertebra_penalty.py runs/validation    # about 2 minutes on 2 cores
"""

from __future__ import annotations

import sys

from spinelab.methods import load_method
from spinelab.methods.multiview.ablation import evaluate_runs, variant

PENALTIES = (None, 0.2, 0.35, 0.5, 0.8)


def main(data: str) -> None:
    method = load_method("multiview")
    runs = {penalty: variant(method, missed_vertebra_penalty=penalty) for penalty in PENALTIES}
    results = evaluate_runs(data, runs)
    print("| missed_vertebra_penalty | VerSe id-rate | CSI id-rate | cervical | thoracic | lumbar |")
    print("|---|---|---|---|---|---|")
    for penalty in PENALTIES:
        metrics = results[penalty]
        regions = metrics.by_region()
        cells = [metrics.overall.verse_id_rate, metrics.overall.csi_id_rate,
                 *(regions[name].verse_id_rate if name in regions else None
                   for name in ("cervical", "thoracic", "lumbar"))]
        print(f"| {penalty} | " + " | ".join("-" if value is None else f"{100 * value:.1f} %" for value in cells)
              + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/validation")
