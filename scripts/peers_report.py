#!/usr/bin/env python3
"""The markdown table of scripts/peers_bench.sh: per round, nagare's figure,
the peer's, their ratio and the issue's goal (docs/benchmarks.md).

  peers_report.py OUT_DIR ROUNDS

Reads OUT_DIR/<name>.json written by nagare-bench --json. A run that is
missing or had errors is shown as such, and the exit status is then 1.
"""
import json
import os
import sys

out, rounds = sys.argv[1], int(sys.argv[2])
status = 0


def load(name):
    global status
    path = os.path.join(out, name + ".json")
    try:
        with open(path) as f:
            run = json.load(f)
    except (OSError, ValueError):
        status = 1
        return None
    if run.get("errors") or run.get("lost"):
        status = 1
    return run


def rate(run):
    return run["msgs_per_s"] if run else None


def p99(run):
    return run["latency_us"]["p99"] if run and run.get("latency_us") else None


def fmt_rate(v):
    return "missing" if v is None else f"{v:,.0f} msgs/s"


def fmt_us(v):
    if v is None:
        return "missing"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


# (label, nagare run, peer run, figure, goal: ratio nagare/peer must be >= goal, or for latency peer/nagare)
checks = [
    ("publish 4×128 B: nagare `interval` ÷ JetStream", "publish-nagare-interval", "publish-nats-interval", rate, 5.0),
    ("publish 4×128 B: nagare `fsync` ÷ Redis `appendfsync always`", "publish-nagare-fsync", "publish-redis-fsync", rate, 3.0),
    ("publish 4×128 B: nagare `fsync` ÷ JetStream", "publish-nagare-fsync", "publish-nats-interval", rate, 3.0),
    ("consume, explicit acks: nagare ÷ JetStream pull", "consume-nagare", "consume-nats", rate, 5.0),
    ("e2e 10,000 msgs/s `interval`: JetStream p99 ÷ nagare p99", "e2e-nagare", "e2e-nats", p99, 10.0),
]

print("| check | round | nagare | peer | ratio | goal | |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for label, mine, peer, figure, goal in checks:
    for r in range(1, rounds + 1):
        a, b = figure(load(f"{mine}-{r}")), figure(load(f"{peer}-{r}"))
        fmt = fmt_us if figure is p99 else fmt_rate
        if a is None or b is None or a == 0 or b == 0:
            ratio, verdict = "-", "no figure"
        else:
            x = b / a if figure is p99 else a / b
            ratio, verdict = f"{x:.1f}×", "met" if x >= goal else "**missed**"
        print(f"| {label} | {r} | {fmt(a)} | {fmt(b)} | {ratio} | ≥ {goal:g}× | {verdict} |")

print()
print("| target | round | consume msgs/s | e2e p50 | e2e p99 | e2e max |")
print("| --- | --- | --- | --- | --- | --- |")
for t in ("nagare", "nats", "redis"):
    for r in range(1, rounds + 1):
        c, e = load(f"consume-{t}-{r}"), load(f"e2e-{t}-{r}")
        lat = e["latency_us"] if e and e.get("latency_us") else {}
        print(f"| {t} | {r} | {fmt_rate(rate(c))} | {fmt_us(lat.get('p50'))} | {fmt_us(lat.get('p99'))} | {fmt_us(lat.get('max'))} |")
sys.exit(status)
