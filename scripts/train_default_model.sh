#!/usr/bin/env bash
# Reproduces the packaged default model (src/spinelab/models/multiview.pt), the two ablation models
# and docs/BENCHMARKS.md. About 2 hours on 2 CPU cores; DEVICE=cuda trains on a GPU.
set -euo pipefail
RUN=${RUN:-runs/default}
DEVICE=${DEVICE:-cpu}
TRAIN=(--iterations 1800 --batch-size 8 --seed 0 --device "$DEVICE")

spinelab synth --n 600 --out "$RUN/synth" --seed 1 --spacing 2 2 2 --workers 2
spinelab synth --n 60 --out "$RUN/heldout" --seed 1000
spinelab pretrain --data "$RUN/synth" --out "$RUN" --iterations 300 --batch-size 16 --seed 0 --device "$DEVICE"
spinelab train --data "$RUN/synth" --out "$RUN" --encoder "$RUN/encoder.pt" "${TRAIN[@]}" \
    --model-out src/spinelab/models/multiview.pt

# Ablation (Table 2 of Wu et al.): only the identification network changes; the localizer of the
# default model is reused (its finished checkpoint is picked up instead of training again).
for variant in baseline pretrained; do
    mkdir -p "$RUN/ablation_$variant"
    ln -sfn "$(cd "$RUN" && pwd)/drr_cache" "$RUN/ablation_$variant/drr_cache"
    cp "$RUN/localizer.ckpt" "$RUN/ablation_$variant/localizer.ckpt"
done
spinelab train --data "$RUN/synth" --out "$RUN/ablation_baseline" "${TRAIN[@]}" --sequence-loss-weight 0 \
    --model-out "$RUN/ablation_baseline/model.pt"
spinelab train --data "$RUN/synth" --out "$RUN/ablation_pretrained" --encoder "$RUN/encoder.pt" "${TRAIN[@]}" \
    --sequence-loss-weight 0 --model-out "$RUN/ablation_pretrained/model.pt"

spinelab benchmark --heldout "$RUN/heldout" --baseline "$RUN/ablation_baseline/model.pt" \
    --pretrained "$RUN/ablation_pretrained/model.pt" --out docs/BENCHMARKS.md
