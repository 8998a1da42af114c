#!/usr/bin/env python3
"""Markdown tables for docs/benchmarks.md ("Subscriptions") from the JSON of
nagare-bench consume / e2e runs (scripts/consume_bench.sh, scripts/e2e_bench.sh).

  subscriptions_report.py consume OUT_DIR MESSAGES NAME-ROUND...
  subscriptions_report.py e2e OUT_DIR RATE NAME-ROUND...
  subscriptions_report.py fanout OUT_DIR RATE NAME-ROUND...   (scripts/fanout_bench.sh)

Reads OUT_DIR/<scenario>-<NAME-ROUND>.json; prints one row per run, then the
spread (min / median / max) per configuration. Exit status 1 when a run had
errors (failed publishes, lost messages), else 0. Verdicts come from the
runs' JSON (nagare-bench computes them), never from this script.
"""
import json
import statistics
import sys
from collections import defaultdict


def us(v):
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def spread(values, fmt):
    return f"{fmt(min(values))} / {fmt(statistics.median(values))} / {fmt(max(values))}"


def load(out, scenario, names):
    runs = []
    for name in names:
        config, _, rnd = name.rpartition('-')
        with open(f"{out}/{scenario}-{name}.json") as f:
            runs.append((config, rnd, json.load(f)))
    return runs


def consume(out, messages, names):
    runs = load(out, 'consume', names)
    print(f"{int(messages):,} messages of 128 B per run, 4 producers × 1,000 projects, explicit acks\n")
    print('| configuration | round | durability | fill (publish) msgs/s | consume msgs/s | consume MB/s '
          '| consume ÷ publish | goal ≥ 0.50 | lost | dups | errors | srv CPU s (consume) | cli CPU s (consume) |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    by_config = defaultdict(list)
    for config, rnd, r in runs:
        fill = r['phases'][0]
        ratio = r['figures']['consume_to_publish']
        cpu = r['server_cpu_s']
        print(f"| {config} | {rnd} | {r['parameters']['durability']} | {fill['msgs_per_s']:,.0f} "
              f"| {r['msgs_per_s']:,.0f} | {r['mb_per_s']:.1f} | {ratio['value']:.2f} "
              f"| {ratio['verdict'] or 'n/a'} | {r['lost']} | {r['duplicates']} | {r['errors']} "
              f"| {'-' if cpu is None else f'{cpu:.2f}'} | {r['client_cpu_s']:.2f} |")
        by_config[config].append(r)
    print('\n| configuration | fill msgs/s min / median / max | consume msgs/s min / median / max '
          '| ratio min / median / max | goal met in |')
    print('| --- | --- | --- | --- | --- |')
    for config, rs in by_config.items():
        ratios = [r['figures']['consume_to_publish'] for r in rs]
        met = sum(1 for f in ratios if f['verdict'] == 'met')
        print(f"| {config} | {spread([r['phases'][0]['msgs_per_s'] for r in rs], lambda v: f'{v:,.0f}')} "
              f"| {spread([r['msgs_per_s'] for r in rs], lambda v: f'{v:,.0f}')} "
              f"| {spread([f['value'] for f in ratios], lambda v: f'{v:.2f}')} "
              f"| {met} of {len(rs)} runs |")
    return any(r['errors'] for _, _, r in runs)


def e2e(out, rate, names):
    runs = load(out, 'e2e', names)
    print(f"open loop at {int(rate):,} msgs/s, 128 B, 1 producer, 1 subscriber (deliver new, explicit acks); "
          "latency from the scheduled send time to the delivery\n")
    print('| durability | round | achieved msgs/s | p50 | p90 | p99 | p99.9 | max | delivered | lost | dups '
          '| errors | srv CPU s | cli CPU s |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    by_mode = defaultdict(list)
    for mode, rnd, r in runs:
        l = r['latency_us'] or {'p50': 0, 'p90': 0, 'p99': 0, 'p999': 0, 'max': 0, 'count': 0}
        cpu = r['server_cpu_s']
        print(f"| {mode} | {rnd} | {r['msgs_per_s']:,.0f} | {us(l['p50'])} | {us(l['p90'])} | {us(l['p99'])} "
              f"| {us(l['p999'])} | {us(l['max'])} | {r['messages_total']:,} | {r['lost']} "
              f"| {r['duplicates']} | {r['errors']} | {'-' if cpu is None else f'{cpu:.2f}'} "
              f"| {r['client_cpu_s']:.2f} |")
        by_mode[mode].append(l)
    print('\n| durability | p50 min / median / max | p99 min / median / max | p99.9 min / median / max |')
    print('| --- | --- | --- | --- |')
    for mode, ls in by_mode.items():
        print(f"| {mode} | {spread([l['p50'] for l in ls], us)} | {spread([l['p99'] for l in ls], us)} "
              f"| {spread([l['p999'] for l in ls], us)} |")
    return any(r['errors'] for _, _, r in runs)


def counter(r, name):
    v = r['target_counters'].get(name)
    return '-' if v is None else f"{v:.2f}"


def fanout(out, rate, names):
    runs = load(out, 'fanout', names)
    p = runs[0][2]['parameters'] if runs else {}
    print(f"one publisher open loop at {int(rate):,} msgs/s, {p.get('message_bytes', 128)} B JSON payloads, "
          f"{p.get('subscribers', '?')} subscribers over {p.get('connections', '?')} connections "
          "(broker: ephemeral, deliver new, ack none; gateway: SSE clients); latency from the scheduled "
          "send time to the receipt\n")
    print('| via | round | delivered events/s | delivered ÷ offered | p50 | p90 | p99 | p99.9 | max '
          '| lost | dups | errors | srv CPU s | gateway CPU s | gateway RSS MiB | cli CPU s |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for via, rnd, r in runs:
        l = r['latency_us'] or {'p50': 0, 'p90': 0, 'p99': 0, 'p999': 0, 'max': 0, 'count': 0}
        cpu = r['server_cpu_s']
        ratio = r['figures']['delivered_to_offered']['value']
        print(f"| {via} | {rnd} | {r['msgs_per_s']:,.0f} | {ratio:.2f} | {us(l['p50'])} | {us(l['p90'])} "
              f"| {us(l['p99'])} | {us(l['p999'])} | {us(l['max'])} | {r['lost']} | {r['duplicates']} "
              f"| {r['errors']} | {'-' if cpu is None else f'{cpu:.2f}'} | {counter(r, 'gateway_cpu_s')} "
              f"| {counter(r, 'gateway_peak_rss_mib')} | {r['client_cpu_s']:.2f} |")
    return any(r['errors'] for _, _, r in runs)


if __name__ == '__main__':
    kind, out, figure, *names = sys.argv[1:]
    failed = {'consume': consume, 'e2e': e2e, 'fanout': fanout}[kind](out, figure, names)
    sys.exit(1 if failed else 0)
