#!/usr/bin/env bash
# Consume figures for docs/benchmarks.md (issue 5, "Subscriptions"):
# nagare-bench consume --start-broker, 4 producers x 1,000 projects, 128-byte
# payloads with msg_ids, MESSAGES in all; each run fills the stream (the
# publish rate) and then reads every message back with explicit acks (the
# consume rate), so the ratio consume / publish comes from one run. ROUNDS
# runs of each configuration, then a markdown table of every run and the
# spread, with issue 5's goal (ratio >= 0.50) judged per run.
#   scripts/consume_bench.sh [data dir on the disk to measure]   (default build/bench-data)
#   MESSAGES=2000000  ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/bench-data}
messages=${MESSAGES:-2000000}
rounds=${ROUNDS:-3}
out=build/bench
mkdir -p "$dir" "$out"

echo "consume bench: release build" >&2
cmake --preset release >/dev/null
cmake --build --preset release -j 2 --target nagare-bench nagared >/dev/null

# name | durability | subscriber options
configs=(
  "fsync-ephemeral|fsync|--consumers 1"
  "none-ephemeral|none|--consumers 1"
  "fsync-durable-2|fsync|--consumers 2 --durable"
)
status=0
names=()
for r in $(seq 1 "$rounds"); do
  for c in "${configs[@]}"; do
    IFS='|' read -r name mode subs <<<"$c"
    echo "consume bench: round $r, $name" >&2
    # shellcheck disable=SC2086
    timeout 300 build/release/bench/nagare-bench consume --start-broker --data "$dir" \
      --producers 4 --projects 1000 --message-bytes 128 --messages "$messages" \
      --durability "$mode" --ack explicit $subs \
      --json "$out/consume-$name-$r.json" >&2 || status=$?
    names+=("$name-$r")
  done
done

python3 scripts/subscriptions_report.py consume "$out" "$messages" "${names[@]}" || status=$?
exit $status
