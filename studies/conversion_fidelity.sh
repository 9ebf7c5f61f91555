#!/usr/bin/env bash
# Conversion fidelity study (issue 16): does the converted spiking network classify like
# its ANN, before and after sleep? MNIST 10 %, reference and strong recipes, 3 seeds,
# 1000 test images, three conversions: the paper's preset, the searched sleep parameters,
# and plain data-based normalisation with unit thresholds (alpha_scale 1, v_thresh 1).
# Then: python studies/conversion_fidelity_report.py results/conversion_fidelity
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-results/conversion_fidelity}
WORKERS=${WORKERS:-2}
COMMON=(--fractions 0.1 --seeds 0 1 2 --snn-eval 1000 --snn-window 300
        --finetune-epochs 0 --record-spikes none --no-progress --workers "$WORKERS")
PLAIN=$(mktemp --suffix=.json)
echo '{"alpha_scale": 1.0, "v_thresh": [1.0, 1.0, 1.0]}' > "$PLAIN"
# The cheap conversions first, for both recipes; the searched ones last.
for recipe in reference strong; do
  "$PY" -m brainsleep.experiment "${COMMON[@]}" --recipe "$recipe" --out "$OUT/${recipe}_preset"
done
for recipe in reference strong; do
  "$PY" -m brainsleep.experiment "${COMMON[@]}" --recipe "$recipe" --sleep-params "$PLAIN" \
    --out "$OUT/${recipe}_plain"
done
for recipe in reference strong; do
  "$PY" -m brainsleep.experiment "${COMMON[@]}" --recipe "$recipe" --search 8 \
    --out "$OUT/${recipe}_searched"
done
rm -f "$PLAIN"
