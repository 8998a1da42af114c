#!/usr/bin/env bash
# Builds the AFL++ targets (afl-g++, classic instrumentation: the gcc plugin of Debian's afl++ does not load) and fuzzes each for $1 seconds
# (default 300). Findings land in build/fuzz/findings/<target>/.
set -euo pipefail
seconds=${1:-300}
cd "$(dirname "$0")/.."
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)" --target fuzz_frame_decoder fuzz_subject
out=build/fuzz/findings
mkdir -p "$out" build/fuzz/seeds/frame build/fuzz/seeds/subject
# Seeds: valid frames written by the test helper, and a few subject lines.
build/fuzz/tests/fuzz/fuzz_frame_decoder --write-seeds build/fuzz/seeds/frame
printf 'task.*\ntask.updated' > build/fuzz/seeds/subject/1
printf 'order.>\norder.tasks.reordered' > build/fuzz/seeds/subject/2
printf '*.*.>\na.b' > build/fuzz/seeds/subject/3
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
status=0
for target in frame_decoder subject; do
  seeds=build/fuzz/seeds/${target/frame_decoder/frame}
  echo "fuzz: $target for ${seconds}s"
  afl-fuzz -V "$seconds" -i "$seeds" -o "$out/$target" -- "build/fuzz/tests/fuzz/fuzz_$target" >"$out/$target.log" 2>&1 || true
  crashes=$(find "$out/$target/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
  execs=$(grep -E '^execs_done' "$out/$target/default/fuzzer_stats" 2>/dev/null | awk '{print $3}')
  echo "fuzz: $target: ${execs:-0} executions, $crashes crashes"
  [ "$crashes" -eq 0 ] || status=1
done
exit $status
