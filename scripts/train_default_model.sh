#!/usr/bin/env bash
# Reproduces the packaged default model src/spinelab/models/multiview.pt and its benchmark
# (about 75 minutes on 2 CPU cores; pass --device cuda through DEVICE=cuda on a GPU machine).
set -euo pipefail
RUN=${RUN:-runs/default}
DEVICE=${DEVICE:-cpu}
spinelab synth --n 600 --out "$RUN/synth" --seed 1 --spacing 2 2 2 --workers 2
spinelab pretrain --data "$RUN/synth" --out "$RUN" --iterations 300 --batch-size 16 --seed 0 --device "$DEVICE"
spinelab train --data "$RUN/synth" --out "$RUN" --encoder "$RUN/encoder.pt" --iterations 1800 --batch-size 8 \
    --seed 0 --device "$DEVICE" --model-out src/spinelab/models/multiview.pt
spinelab synth --n 60 --out "$RUN/heldout" --seed 1000 --workers 2
spinelab benchmark --heldout "$RUN/heldout" --out docs/BENCHMARKS.md
