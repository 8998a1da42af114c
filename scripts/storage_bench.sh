#!/usr/bin/env bash
# Storage figures for docs/benchmarks.md: the partition-log micro-benchmarks
# and fio on the same disk, in one run, printed as a markdown table of ratios.
#   scripts/storage_bench.sh [data dir on the disk to measure]   (default build/bench-data)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/bench-data}
mkdir -p "$dir" build/bench
export NAGARE_BENCH_DIR=$dir
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target nagare_micro_bench >/dev/null

out=build/bench
rounds=${NAGARE_BENCH_ROUNDS:-5}
fio_job() {  # name, extra fio args...
  local name=$1; shift
  fio --name="$name" --directory="$dir" --output-format=json --output="$out/fio-$name.json" \
      --ioengine=psync --rw=write "$@" >/dev/null
  rm -f "$dir/$name".*
}
# The disk's fdatasync latency drifts by 3x within a minute on a shared
# machine, so the fsync append and fio's write+fdatasync alternate, round by
# round, and the ratio is taken per round (median reported).
echo "storage bench: $rounds rounds of nagare fsync append (io_uring) and fio write+fdatasync, alternating" >&2
for r in $(seq 1 "$rounds"); do
  build/release/bench/nagare_micro_bench --benchmark_filter='AppendFsyncUring' \
    --benchmark_format=json --benchmark_out="$out/fsync-$r.json" >/dev/null
  write_bytes=$(python3 -c "
import json
b=json.load(open('$out/fsync-$r.json'))['benchmarks'][0]
print(int(round(b['write_bytes'])))")
  fio_job "fsync-$r" --bs="$write_bytes" --size=$((write_bytes * 2000)) --fdatasync=1
done
echo "storage bench: the other storage benchmarks" >&2
build/release/bench/nagare_micro_bench \
  --benchmark_filter='AppendFsyncVsRawInterleaved|AppendNone16KiB|ReadBack1GiB|Reopen1GiB|Dedup' \
  --benchmark_format=json --benchmark_out="$out/storage.json" >/dev/null
aligned=$(( (write_bytes + 4095) / 4096 * 4096 ))
echo "storage bench: fio, page cache vs O_DIRECT for ${aligned} B + fdatasync" >&2
fio_job cached --bs="$aligned" --size=$((aligned * 2000)) --fdatasync=1
fio_job direct --bs="$aligned" --size=$((aligned * 2000)) --fdatasync=1 --direct=1
echo "storage bench: fio, buffered sequential write of 1 GiB" >&2
fio_job buffered --bs=1m --size=1g

python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
bench = {b['name'].split('/')[0]: b for b in json.load(open(f'{out}/storage.json'))['benchmarks']}
def fio_bw(name):
    return json.load(open(f'{out}/fio-{name}.json'))['jobs'][0]['write']['bw_bytes']
def ms(b):  # real time per iteration in ms
    scale = {'ns': 1e-6, 'us': 1e-3, 'ms': 1.0, 's': 1e3}[b['time_unit']]
    return b['real_time'] * scale
rows = []
pairs = []
for r in range(1, rounds + 1):
    a = json.load(open(f'{out}/fsync-{r}.json'))['benchmarks'][0]
    pairs.append((a['bytes_per_second'], fio_bw(f'fsync-{r}'), a['items_per_second'], a['write_bytes']))
ratios = [ours / ref for ours, ref, _, _ in pairs]
mid = sorted(range(rounds), key=lambda i: ratios[i])[rounds // 2]
ours, ref, items, wb = pairs[mid]
rows.append((f'append 128 B × 256 per batch, durability=fsync, io_uring (median of {rounds} alternating rounds; ratios {", ".join(f"{x:.2f}" for x in ratios)})',
             f"{ours/1e6:.1f} MB/s ({items/1e3:.0f} k records/s)",
             f"fio write {int(wb)} B + fdatasync: {ref/1e6:.1f} MB/s",
             statistics.median(ratios), '≥ 0.80'))
i = bench['BM_AppendFsyncVsRawInterleaved']
rows.append(('the same, interleaved op by op with pwrite + fdatasync of the same bytes in the same process (drift removed)',
             f"{i['log_us_per_batch']:.0f} µs per batch", f"pwrite + fdatasync: {i['raw_us_per_write']:.0f} µs",
             i['ratio'], '≥ 0.80'))
a = bench['BM_AppendNone16KiB']; f = fio_bw('buffered')
rows.append(('append 16 KiB records, durability=none',
             f"{a['bytes_per_second']/1e6:.0f} MB/s", f"fio buffered sequential write: {f/1e6:.0f} MB/s",
             a['bytes_per_second'] / f, '≥ 0.80'))
r = bench['BM_ReadBack1GiB']
rows.append(('read 1 GiB back from the page cache, checksums verified',
             f"{r['bytes_per_second']/1e9:.2f} GB/s", 'target 1 GB/s', r['bytes_per_second'] / 1e9, '≥ 1.0'))
o = bench['BM_Reopen1GiB']
rows.append((f"reopen 1 GiB in 64 MiB segments ({int(o['segments'])} segments)",
             f"{ms(o):.1f} ms", 'target 200 ms', 200.0 / ms(o), '≥ 1.0'))
c, d = fio_bw('cached'), fio_bw('direct')
rows.append(('fio: O_DIRECT vs page cache, 4 KiB-aligned write + fdatasync',
             f"O_DIRECT {d/1e6:.1f} MB/s", f"page cache {c/1e6:.1f} MB/s", d / c, 'decides the I/O mode'))
for name in ('BM_DedupInsert', 'BM_DedupLookupHit', 'BM_DedupLookupMiss'):
    d = next((b for k, b in bench.items() if k.startswith(name)), None)
    if d:
        ns = 1e9 / d['items_per_second']
        rows.append((f"{name[3:]} at 1,000,000 entries", f"{ns:.0f} ns", 'target 100 ns', 100.0 / ns, '≥ 1.0'))
print('| what | nagare | reference (same run) | ratio | goal |')
print('| --- | --- | --- | --- | --- |')
for what, ours, ref, ratio, goal in rows:
    print(f'| {what} | {ours} | {ref} | {ratio:.2f} | {goal} |')
PY
