#!/usr/bin/env python3
"""The side-by-side device table of issue 14: our instructions against CMSIS-NN's (stdlib only).

Inputs:
  --kernel-log FILE  the decoded log of the firmware's `kernel-check` binary (QEMU mps2-an386,
                     -icount shift=0): lines `fc in=… out=… macs=… … dsp_instructions=…`,
                     `conv name=… macs=… … dsp_instructions=…`, `depthwise name=… …`
  --models FILE      the `JSON {…}` lines of tests/tests/device_bench.rs
                     `whole_model_instruction_counts` (whole models, per inference)
  --cmsis FILE       bench/cmsis-nn/counts.txt (CMSIS-NN v7.0.0 per layer, bench/cmsis-nn/run.sh)
  --json FILE        also write the rows as JSON lines:
                     {"layer": …, "macs": …, "instructions": …, "cmsis_nn_instructions": … or null}

Layer rows are the FACTS §7 shapes, named as there (`fc 784->256`, `conv3x3 s1 16->16 @32x32`,
…). A whole model's CMSIS-NN count is the sum of its layers in counts.txt (`resnet8/…`), which
covers every op with work (convolutions, depthwise, fully connected, residual adds, average
pools / means), not TFLite-Micro's interpreter; f32 models have no CMSIS-NN counterpart (null).

    python3 bench/device_table.py --kernel-log k.log --models m.log --cmsis bench/cmsis-nn/counts.txt
"""
import argparse
import json
import re
import sys

FIELD = re.compile(r"(\w+)=(\S+)")

# Whole models: the prefix of their layers in counts.txt.
MODEL_PREFIX = {"resnet8": "resnet8/", "ds-cnn": "ds-cnn/", "mobilenet-v1:0.25": "mobilenet/",
                "mlp:256,128": "mlp/"}


def cmsis_counts(path):
    """layer name -> CMSIS-NN instructions (the smaller of its two runs)."""
    counts = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("R|"):
                continue
            parts = line.rstrip("\n").split("|")
            counts[parts[1]] = min(int(parts[4]), int(parts[5]))
    return counts


def kernel_rows(path, cmsis):
    """Rows from kernel-check's timed lines (the fast kernel's count; the reference's too)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            kind = line.split(" ", 1)[0]
            if kind not in ("fc", "conv", "depthwise"):
                continue
            fields = dict(FIELD.findall(line))
            if "macs" not in fields or "dsp_instructions" not in fields:
                continue
            if kind == "fc":
                layer = f"fc {fields['in']}->{fields['out']}"
            else:
                layer = fields["name"].replace("_", " ")
            if layer not in cmsis:
                sys.exit(f"device_table.py: {path}: {layer!r} is not a layer of the CMSIS-NN "
                         f"counts (name it as in bench/cmsis-nn/harness.c)")
            rows.append({"layer": layer, "macs": int(fields["macs"]),
                         "instructions": int(fields["dsp_instructions"]),
                         "cmsis_nn_instructions": cmsis[layer],
                         "reference_instructions": int(fields["reference_instructions"])})
    return rows


def model_rows(path, cmsis):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("JSON "):
                continue
            row = json.loads(line[5:])
            spec, precision = row["layer"].split(" ")[:2]
            if precision == "int8" and spec in MODEL_PREFIX:
                prefix = MODEL_PREFIX[spec]
                layers = [v for k, v in cmsis.items() if k.startswith(prefix)]
                row["cmsis_nn_instructions"] = sum(layers) if layers else None
            rows.append(row)
    return rows


def ratio(row):
    c = row.get("cmsis_nn_instructions")
    return f"{row['instructions'] / c:.2f}×" if c else "–"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel-log", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--cmsis", required=True)
    ap.add_argument("--json")
    a = ap.parse_args()
    cmsis = cmsis_counts(a.cmsis)
    layers = kernel_rows(a.kernel_log, cmsis)
    models = model_rows(a.models, cmsis)

    print("| layer (int8, FACTS §7) | MACs | ours: reference loop | ours: DSP kernel | ours / MAC "
          "| CMSIS-NN | CMSIS-NN / MAC | ours / CMSIS-NN |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in layers:
        print(f"| {r['layer']} | {r['macs']:,} | {r['reference_instructions']:,} | "
              f"{r['instructions']:,} | {r['instructions'] / r['macs']:.2f} | "
              f"{r['cmsis_nn_instructions']:,} | {r['cmsis_nn_instructions'] / r['macs']:.2f} | "
              f"**{ratio(r)}** |")
    if layers:
        ours = sum(r["instructions"] for r in layers)
        theirs = sum(r["cmsis_nn_instructions"] for r in layers)
        print(f"| **all {len(layers)} shapes** | | | {ours:,} | | {theirs:,} | | "
              f"**{ours / theirs:.2f}×** |")
    print()
    print("| whole model (input), per inference | MACs | instructions | instructions / MAC "
          "| CMSIS-NN (sum of its layers) | ours / CMSIS-NN |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in models:
        c = r["cmsis_nn_instructions"]
        print(f"| {r['layer']} | {r['macs']:,} | {r['instructions']:,} | "
              f"{r['instructions'] / r['macs']:.2f} | {f'{c:,}' if c else '–'} | **{ratio(r)}** |")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            for r in layers + models:
                f.write(json.dumps({k: r[k] for k in ("layer", "macs", "instructions",
                                                      "cmsis_nn_instructions")}) + "\n")


if __name__ == "__main__":
    main()
