#!/usr/bin/env python3
"""Markdown tables from the criterion results of tests/benches/latency.rs (stdlib only).

Reads <criterion dir>/latency[_noguard]_<model>_r<round>/<engine>/new/estimates.json, takes
criterion's median time per round and reports the median over rounds, the ratios core / peer
(times: below 1 the core is faster) and the issue's targets.

    python3 bench/latency_table.py target/criterion
"""
import json
import re
import statistics
import sys
from pathlib import Path

ENGINES = [("core_f32", "core f32"), ("core_int8", "core int8"), ("tract", "tract (ONNX, f32)"),
           ("tch", "tch (libtorch CPU, f32)")]
MODELS = {"mlp": "`mlp:256,128`", "cnn": "`cnn:32,64/128`", "resnet8": "`resnet8`"}
GROUP = re.compile(r"^(latency|latency_noguard)_([a-z0-9]+)_r(\d+)$")


def load(root: Path):
    """{(prefix, model): {engine: [µs per round, in round order]}}"""
    found = {}
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        m = GROUP.match(d.name)
        if not m:
            continue
        prefix, model, rnd = m.group(1), m.group(2), int(m.group(3))
        for engine, _ in ENGINES:
            est = d / engine / "new" / "estimates.json"
            if est.is_file():
                ns = json.loads(est.read_text())["median"]["point_estimate"]
                found.setdefault((prefix, model), {}).setdefault(engine, []).append((rnd, ns / 1e3))
    return {k: {e: [v for _, v in sorted(r)] for e, r in v.items()} for k, v in found.items()}


def fmt(us: float) -> str:
    return f"{us:,.1f}" if us < 1000 else f"{us:,.0f}"


def factor(x: float) -> str:
    """A speed factor with at least two significant digits."""
    return f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"


def table(model: str, rounds: dict, guard: bool):
    med = {e: statistics.median(v) for e, v in rounds.items()}
    n = max(len(v) for v in rounds.values())
    print(f"#### {MODELS.get(model, model)}, vzeroupper guard {'on' if guard else 'off'}"
          f" (median of {n} rounds)")
    print()
    print("| engine | µs / inference | per round (µs) | core f32 / engine | core int8 / engine |")
    print("|---|---:|---|---:|---:|")
    for e, name in ENGINES:
        if e not in med:
            continue
        per = ", ".join(fmt(v) for v in rounds[e])
        r32 = f"{med['core_f32'] / med[e]:.2f}" if "core_f32" in med else "–"
        r8 = f"{med['core_int8'] / med[e]:.2f}" if "core_int8" in med else "–"
        print(f"| {name} | **{fmt(med[e])}** | {per} | {r32} | {r8} |")
    print()
    if {"core_f32", "core_int8", "tract"} <= med.keys():
        s8 = med["tract"] / med["core_int8"]
        s32 = med["tract"] / med["core_f32"]
        met = lambda ok: "**met**" if ok else "**not met**"
        print(f"- core int8 is {factor(s8)}× as fast as tract f32 (target ≥ 1.5×): {met(s8 >= 1.5)}")
        print(f"- core f32 is {factor(s32)}× as fast as tract f32 (target ≥ 1×): {met(s32 >= 1.0)}")
    if {"core_f32", "core_int8", "tch"} <= med.keys():
        print(f"- time core f32 / tch = {med['core_f32'] / med['tch']:.2f}, "
              f"core int8 / tch = {med['core_int8'] / med['tch']:.2f}")
    print()
    return med


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    results = load(root)
    if not results:
        sys.exit(f"no latency results under {root} (run bench/latency.sh)")
    print("Time ratios core / engine: below 1 the core is faster.")
    print()
    meds = {}
    for (prefix, model) in sorted(results, key=lambda k: (k[1] != "mlp", k[1], k[0])):
        meds[(prefix, model)] = table(model, results[(prefix, model)], prefix == "latency")
    for model in sorted({m for _, m in meds}, key=lambda m: m != "mlp"):
        on, off = meds.get(("latency", model)), meds.get(("latency_noguard", model))
        if not (on and off):
            continue
        print(f"#### The vzeroupper guard, {MODELS.get(model, model)}")
        print()
        print("| engine | guard on (µs) | guard off (µs) | off / on |")
        print("|---|---:|---:|---:|")
        for e, name in ENGINES:
            if e in on and e in off:
                print(f"| {name} | {fmt(on[e])} | {fmt(off[e])} | {off[e] / on[e]:.2f} |")
        print()


if __name__ == "__main__":
    main()
