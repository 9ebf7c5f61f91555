#!/usr/bin/env bash
# Run studies/claims_v2.toml one run at a time (every run, or the names given) on 2
# workers; after each run, a compact copy (python -m brainsleep.analysis export) replaces
# docs/results/runs/v2/<name>, so a finished part survives a fresh machine. A killed run
# resumes where it stopped when this is run again. Logs: results/claims_v2/<name>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
spec=studies/claims_v2.toml
mkdir -p results/claims_v2 docs/results/runs/v2
if [ $# -eq 0 ]; then
    mapfile -t names < <("$py" -c "
from brainsleep.experiment.study import load_study
print('\n'.join(r.name for r in load_study('$spec')))")
else
    names=("$@")
fi
for name in "${names[@]}"; do
    start=$(date +%s)
    echo "$(date -u +%FT%TZ) $name: running"
    "$py" -m brainsleep.experiment --study "$spec" --runs "$name" --workers "${WORKERS:-2}" \
        --no-progress >"results/claims_v2/$name.log" 2>&1
    "$py" -m brainsleep.analysis export "results/claims_v2/$name" --out docs/results/runs/v2 -q
    echo "$(date -u +%FT%TZ) $name: done in $(($(date +%s) - start)) s"
done
