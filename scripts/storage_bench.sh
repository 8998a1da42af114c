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
echo "storage bench: nagare (io_uring backend) in $dir" >&2
build/release/bench/nagare_micro_bench \
  --benchmark_filter='AppendFsyncUring|AppendNone16KiB|ReadBack1GiB|Reopen1GiB|Dedup' \
  --benchmark_format=json --benchmark_out="$out/storage.json" >/dev/null

write_bytes=$(python3 -c "
import json
b=[x for x in json.load(open('$out/storage.json'))['benchmarks'] if x['name'].startswith('BM_AppendFsyncUring')][0]
print(int(round(b['write_bytes'])))")

fio_job() {  # name, extra fio args...
  local name=$1; shift
  fio --name="$name" --directory="$dir" --output-format=json --output="$out/fio-$name.json" \
      --ioengine=psync --rw=write "$@" >/dev/null
  rm -f "$dir/$name".*
}
echo "storage bench: fio, write of ${write_bytes} B + fdatasync" >&2
fio_job fsync --bs="$write_bytes" --size=$((write_bytes * 2000)) --fdatasync=1
aligned=$(( (write_bytes + 4095) / 4096 * 4096 ))
echo "storage bench: fio, page cache vs O_DIRECT for ${aligned} B + fdatasync" >&2
fio_job cached --bs="$aligned" --size=$((aligned * 2000)) --fdatasync=1
fio_job direct --bs="$aligned" --size=$((aligned * 2000)) --fdatasync=1 --direct=1
echo "storage bench: fio, buffered sequential write of 1 GiB" >&2
fio_job buffered --bs=1m --size=1g

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
bench = {b['name'].split('/')[0]: b for b in json.load(open(f'{out}/storage.json'))['benchmarks']}
def fio_bw(name):
    return json.load(open(f'{out}/fio-{name}.json'))['jobs'][0]['write']['bw_bytes']
def ms(b):  # real time per iteration in ms
    scale = {'ns': 1e-6, 'us': 1e-3, 'ms': 1.0, 's': 1e3}[b['time_unit']]
    return b['real_time'] * scale
rows = []
a = bench['BM_AppendFsyncUring128x256']; f = fio_bw('fsync')
rows.append(('append 128 B × 256 per batch, durability=fsync, io_uring',
             f"{a['bytes_per_second']/1e6:.1f} MB/s ({a['items_per_second']/1e3:.0f} k records/s)",
             f"fio write {int(a['write_bytes'])} B + fdatasync: {f/1e6:.1f} MB/s",
             a['bytes_per_second'] / f, '≥ 0.80'))
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
