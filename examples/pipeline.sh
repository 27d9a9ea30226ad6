#!/usr/bin/env bash
# LEMA data from the example problems: sample wrong solutions, correct them, keep good corrections.
# Needs an OpenAI-compatible endpoint: OPENAI_BASE_URL (and OPENAI_API_KEY for hosted APIs).
set -euo pipefail
cd "$(dirname "$0")"
REASONER=${REASONER:-gpt-4o-mini}
CORRECTOR=${CORRECTOR:-gpt-4o}
OUT=${OUT:-out}
mkdir -p "$OUT"
for task in gsm8k math; do
  lemagen sample "$task.jsonl" -m "$REASONER" -n 4 --rejects "$OUT/$task.sample-rejects.jsonl" \
    | lemagen correct -m "$CORRECTOR" \
    | lemagen filter --rejects "$OUT/$task.dropped.jsonl" > "$OUT/$task.lema.jsonl"
done
wc -l "$OUT"/*.lema.jsonl >&2
