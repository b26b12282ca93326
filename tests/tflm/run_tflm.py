"""Runs a .tflite model through TFLite-Micro's own interpreter (the PyPI `tflite-micro` package,
reference kernels) sample by sample: the oracle of denoiserep's TFLite conformance tests.

    .venv-tflm/bin/python tests/tflm/run_tflm.py MODEL.tflite INPUTS.npy OUT_PREFIX [N_OUTPUTS]

INPUTS.npy holds N samples, batch first, each shaped and typed as the model's input 0 without its
batch dim (or with it: [N, 1, ...] works too). For each of the first N_OUTPUTS (default 1) model
outputs k, OUT_PREFIX.k.npy gets the
N outputs stacked, dtype as TFLite-Micro wrote them (int8 outputs stay int8: no dequantization).
Prints one JSON line: input/output details (shape, dtype, scale, zero point) and the number of
samples. Exit 2 with a message on any error.
"""

import json
import sys

import numpy as np
from tflite_micro.python.tflite_micro import runtime


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    model_path, inputs_path, prefix = argv[1:4]
    n_out = int(argv[4]) if len(argv) == 5 else 1
    interp = runtime.Interpreter.from_file(model_path)
    ins = interp.get_input_details(0)
    shape = tuple(int(d) for d in ins["shape"])
    x = np.load(inputs_path)
    if x.dtype != ins["dtype"]:
        raise SystemExit(f"run_tflm: {inputs_path} is {x.dtype}, the model's input 0 is {ins['dtype']}")
    n = x.shape[0]
    per = int(np.prod(shape))
    if x.size != n * per:
        raise SystemExit(f"run_tflm: {inputs_path} has shape {x.shape}; each sample must have the "
                         f"{per} values of the model's input {shape}")
    outs = [[] for _ in range(n_out)]
    for i in range(n):
        interp.reset()
        interp.set_input(x[i].reshape(shape), 0)
        interp.invoke()
        for k in range(n_out):
            outs[k].append(np.array(interp.get_output(k)).copy())
    for k in range(n_out):
        np.save(f"{prefix}.{k}.npy", np.stack(outs[k]))

    def describe(d):
        q = d.get("quantization_parameters") or {}
        return {
            "shape": [int(v) for v in d["shape"]],
            "dtype": str(np.dtype(d["dtype"])),
            "scales": [float(v) for v in np.atleast_1d(q.get("scales", []))],
            "zero_points": [int(v) for v in np.atleast_1d(q.get("zero_points", []))],
        }

    print(json.dumps({
        "samples": n,
        "input": describe(ins),
        "outputs": [describe(interp.get_output_details(k)) for k in range(n_out)],
    }))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except SystemExit:
        raise
    except Exception as e:  # the interpreter's own errors (bad model, unsupported op)
        print(f"run_tflm: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
