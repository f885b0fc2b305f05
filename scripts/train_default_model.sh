#!/usr/bin/env bash
# Reproduces the packaged default models (src/spinelab/models/bone.pt, multiview.pt, dense.pt, integral.pt,
# di2in.pt, scnet.pt) and docs/BENCHMARKS.md (about 5 hours on 2 CPU cores with native bf16; DEVICE=cuda trains on a GPU).
# ABLATION=1 also trains the two ablation models of Wu et al.'s Table 2 (about 35 more minutes) and adds
# their rows to the benchmark.
set -euo pipefail
RUN=${RUN:-runs/default}
DEVICE=${DEVICE:-cpu}
# The identifier sees 2x-pooled DRRs (about 5 iterations/s on 2 cores), so it gets more iterations.
TRAIN=(--iterations 1800 --identifier-iterations 6000 --batch-size 8 --seed 0 --device "$DEVICE")

# The bone stage first: the multiview DRRs, in training and at inference, are rendered
# from the voxels it calls bone. It writes the packaged src/spinelab/models/bone.pt.
spinelab train-bone --out "$RUN/bone" --cases 240 --iterations 3000 --seed 0 --workers 2 --device "$DEVICE" \
    --model-out src/spinelab/models/bone.pt
spinelab synth --n 600 --out "$RUN/synth" --seed 1 --spacing 2 2 2 --workers 2
spinelab synth --n 60 --out "$RUN/heldout" --seed 1000
spinelab pretrain --method multiview --data "$RUN/synth" --out "$RUN" --iterations 300 --batch-size 16 --seed 0 --device "$DEVICE"
spinelab train --method multiview --data "$RUN/synth" --out "$RUN" --encoder "$RUN/encoder.pt" "${TRAIN[@]}" \
    --model-out src/spinelab/models/multiview.pt
# The dense method (McCouat & Glocker) on the same synthetic cases: about 35 minutes on 2 cores.
spinelab train --method dense --data "$RUN/synth" --out "$RUN/dense" --iterations 3000 --identification-iterations 5000 \
    --seed 0 --device "$DEVICE" --model-out src/spinelab/models/dense.pt
# The integral method (Qin et al.) on the same synthetic cases, then two new classification branches on
# its frozen encoder, with and without the Bi-LSTM, for the Table II rows of the benchmark.
# The packaged model was trained for 2000 iterations and then extended to 5000 (a resumed run draws a
# fresh batch stream and restarts the plateau count), so both steps are here: about 75 minutes on 2 cores.
for iterations in 2000 5000; do
    spinelab train --method integral --data "$RUN/synth" --out "$RUN/integral" --iterations "$iterations" \
        --batch-size 4 --seed 0 --device "$DEVICE" --model-out src/spinelab/models/integral.pt
done
HEAD=(--head-from src/spinelab/models/integral.pt --iterations 300 --batch-size 8 --lr 1e-3 --seed 0 --device "$DEVICE")
spinelab train --method integral --data "$RUN/synth" --out "$RUN/integral" "${HEAD[@]}" --model-out "$RUN/integral/bilstm_head.pt"
spinelab train --method integral --data "$RUN/synth" --out "$RUN/integral" "${HEAD[@]}" --no-bilstm \
    --model-out "$RUN/integral/fc_head.pt"
# The di2in method (Yang et al.) on the same synthetic cases: about an hour on 2 cores. Its shape
# dictionary and message-passing kernels come from the real keypoint sets in ../shared/data.
spinelab train --method di2in --data "$RUN/synth" --out "$RUN/di2in" --iterations 2500 --batch-size 4 --seed 0 \
    --device "$DEVICE" --model-out src/spinelab/models/di2in.pt
# The scnet method (Payer et al.): its three networks on the first 240 of the synthetic CTs (the same
# files as sub-synth0000-0239 of "$RUN/synth": case i depends only on the seed and i), about 90 minutes on 2 cores.
spinelab synth --n 240 --out "$RUN/synth240" --seed 1 --spacing 2 2 2 --workers 2
spinelab train --method scnet --data "$RUN/synth240" --out "$RUN/scnet" --iterations 2500 --spine-iterations 300 \
    --segment-iterations 2000 --batch-size 2 --seed 0 --device "$DEVICE" --model-out src/spinelab/models/scnet.pt
# Bone stage on or off and the face margin, chosen on synthetic validation scans (docs/MODEL_SETTINGS.md).
spinelab synth --n 30 --out "$RUN/validation" --seed 2000 --workers 2
spinelab synth --n 30 --out "$RUN/validation_test" --seed 2000 --resolution test --workers 2
python benchmarks/model_settings.py "$RUN/validation" "$RUN/validation_test" --write
# The dense detection threshold and body-piece share, chosen on the same validation scans (docs/DENSE_SETTINGS.md).
python benchmarks/dense_settings.py "$RUN/validation" --write
# The integral presence threshold, cluster separation and consecutive decoder, on the same validation scans
# (docs/INTEGRAL_SETTINGS.md).
python benchmarks/integral_settings.py "$RUN/validation" --write
# The di2in presence threshold, message passing and sparsity settings, on the same validation scans
# (docs/DI2IN_SETTINGS.md).
python benchmarks/di2in_settings.py "$RUN/validation" --write
# The scnet peak threshold, on the same validation scans (docs/SCNET_SETTINGS.md).
python benchmarks/scnet_settings.py "$RUN/validation" --write
# Every packaged model's column test (the bound a centroid may lie off its neighbours' segment), on the same
# validation scans (docs/COLUMN_TEST.md).
python benchmarks/column_test.py "$RUN/validation" "$RUN/validation_test" --write
# Whether the bone stage takes contrast out of the CT first, the face margin and the review confidence of
# dense, integral, di2in and scnet, on the same validation scans (docs/SHARED_SETTINGS.md).
python benchmarks/shared_settings.py "$RUN/validation" --write

ABLATION_MODELS=()
if [ "${ABLATION:-0}" = 1 ]; then
    # Only the identification network changes; the default model's finished localizer checkpoint is
    # picked up instead of training it again.
    for variant in baseline pretrained; do
        mkdir -p "$RUN/ablation_$variant"
        ln -sfn "$(cd "$RUN" && pwd)/drr_cache" "$RUN/ablation_$variant/drr_cache"
        cp "$RUN/localizer.ckpt" "$RUN/ablation_$variant/localizer.ckpt"
    done
    spinelab train --method multiview --data "$RUN/synth" --out "$RUN/ablation_baseline" "${TRAIN[@]}" --sequence-loss-weight 0 \
        --model-out "$RUN/ablation_baseline/model.pt"
    spinelab train --method multiview --data "$RUN/synth" --out "$RUN/ablation_pretrained" --encoder "$RUN/encoder.pt" "${TRAIN[@]}" \
        --sequence-loss-weight 0 --model-out "$RUN/ablation_pretrained/model.pt"
    ABLATION_MODELS=(--variant "multiview:baseline=$RUN/ablation_baseline/model.pt" --variant "multiview:pretrained=$RUN/ablation_pretrained/model.pt")
fi
spinelab benchmark --heldout "$RUN/heldout" --methods multiview,dense,integral,di2in,scnet "${ABLATION_MODELS[@]}" \
    --variant "integral:bilstm_head=$RUN/integral/bilstm_head.pt" --variant "integral:fc_head=$RUN/integral/fc_head.pt" \
    --out docs/BENCHMARKS.md
