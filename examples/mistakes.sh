#!/usr/bin/env bash
# Mistakes by type (LEMMA) and ART data from the example problems: sample, label each wrong
# sample's first erroneous step and error type, show the distribution per reasoner, have a
# teacher make more mistakes of those types, and write Asker and Truster records.
# Needs an OpenAI-compatible endpoint: OPENAI_BASE_URL (and OPENAI_API_KEY for hosted APIs).
set -euo pipefail
cd "$(dirname "$0")"
REASONER=${REASONER:-gpt-4o-mini}
ANALYSER=${ANALYSER:-gpt-4o}
OUT=${OUT:-out}
mkdir -p "$OUT"
for task in gsm8k math; do
  lemagen sample "$task.jsonl" -m "$REASONER" -n 4 --keep all
done > "$OUT/samples.jsonl"
lemagen analyze "$OUT/samples.jsonl" -m "$ANALYSER" --rejects "$OUT/analysis.rejects.jsonl" \
  > "$OUT/analysis.jsonl"
lemagen stats "$OUT/analysis.jsonl" --json --html "$OUT/report.html" > "$OUT/report.json"
lemagen inject gsm8k.jsonl -m "$ANALYSER" --types-from "$OUT/analysis.jsonl" --per-question 2 \
  --rejects "$OUT/taught.rejects.jsonl" > "$OUT/taught.jsonl"
lemagen filter "$OUT/taught.jsonl" > "$OUT/taught.lema.jsonl"
lemagen art ask "$OUT/samples.jsonl" -m "$ANALYSER" > "$OUT/asker.jsonl"
lemagen correct "$OUT/samples.jsonl" -m "$ANALYSER" | lemagen art trust > "$OUT/truster.jsonl"
wc -l "$OUT"/analysis.jsonl "$OUT"/taught.lema.jsonl "$OUT"/asker.jsonl "$OUT"/truster.jsonl >&2
