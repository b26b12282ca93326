#!/usr/bin/env python3
"""Golden vectors for int8 BATCH_MATMUL, MEAN, QUANTIZE and DEQUANTIZE from TFLite-Micro's own
interpreter (the tiny-ViT ops of the core; the same method as tflm_graph_ops.py).

Builds one-op .tflite models in memory, runs them with `tflite_micro.runtime.Interpreter`
(TFLM's reference kernels) and writes core/tests/golden/tflm_vit_ops.txt, which
core/tests/kernels_vit_ops.rs reads. One case per line, whitespace-separated:

  batch_matmul  adj_y b m k n  s_a zp_a s_b zp_b s_out zp_out  a[b*m*k] b[b*k*n] y[b*m*n]
      (b stored [b][n][k] when adj_y, else [b][k][n])
  mean  outer len inner  s_in zp_in s_out zp_out  x[outer*len*inner] y[outer*inner]
      (the mean over the middle axis of [outer, len, inner], keep_dims false)
  quantize  scale zp n  x[n] (f32, float.hex) y[n]
  dequantize  scale zp  y[256] (f32, float.hex; the inputs are the codes −128 … 127 in order)

Scales are written with float.hex() (exact f32 values).

Setup (PyPI): python3 -m venv /tmp/tflm && /tmp/tflm/bin/pip install tflite-micro numpy flatbuffers
Run: /tmp/tflm/bin/python core/tests/golden/tflm_vit_ops.py
"""
import os
import struct

import flatbuffers
import numpy as np
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tflm_vit_ops.txt")
rng = np.random.default_rng(20250613)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def tensor(shape, ttype, buffer, scale=None, zp=None):
    t = fb.TensorT()
    t.shape = list(shape)
    t.type = ttype
    t.buffer = buffer
    if scale is not None:
        q = fb.QuantizationParametersT()
        q.scale = [scale]
        q.zeroPoint = [zp]
        t.quantization = q
    return t


def model(op_code, options_type, options, tensors, inputs, outputs, op_inputs=None, buffers=()):
    m = fb.ModelT()
    m.version = 3
    oc = fb.OperatorCodeT()
    oc.builtinCode = op_code
    oc.deprecatedBuiltinCode = min(op_code, 127)
    oc.version = 1
    m.operatorCodes = [oc]
    sg = fb.SubGraphT()
    sg.tensors = tensors
    sg.inputs = inputs
    sg.outputs = outputs
    op = fb.OperatorT()
    op.opcodeIndex = 0
    op.inputs = op_inputs if op_inputs is not None else inputs
    op.outputs = outputs
    op.builtinOptionsType = options_type
    op.builtinOptions = options
    sg.operators = [op]
    m.subgraphs = [sg]
    m.buffers = [fb.BufferT()]
    for data in buffers:
        b = fb.BufferT()
        b.data = list(data)
        m.buffers.append(b)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run(model_bytes, inputs):
    interp = runtime.Interpreter.from_bytes(model_bytes, arena_size=1 << 20)
    for i, x in enumerate(inputs):
        interp.set_input(x, i)
    interp.invoke()
    return interp.get_output(0)


def rand_scale(lo=-9, hi=1):
    return f32(float(2.0 ** rng.uniform(lo, hi)))


def rand_zp():
    return int(rng.integers(-128, 128))


def fmt(xs):
    return " ".join(str(int(v)) for v in np.asarray(xs).reshape(-1))


def fmt_f(xs):
    return " ".join(float(np.float32(v)).hex() for v in np.asarray(xs, dtype=np.float32).reshape(-1))


I8 = fb.TensorType.INT8
lines = []

# BATCH_MATMUL, int8, rank 3 (batch first), both operands runtime inputs, no adj_x.
for case in range(60):
    adj_y = case % 2
    b = int(rng.integers(1, 4))
    m_, k, n = int(rng.integers(1, 6)), int(rng.integers(1, 40)), int(rng.integers(1, 6))
    sa, sb = rand_scale(-8, 0), rand_scale(-8, 0)
    # An output scale near the product's natural range (k·127²·sa·sb), so outputs spread.
    so = f32(float(sa * sb * np.sqrt(k) * 127 * 2.0 ** rng.uniform(-1, 3) / 4))
    za, zb, zo = rand_zp(), rand_zp(), rand_zp()
    b_shape = [b, n, k] if adj_y else [b, k, n]
    opts = fb.BatchMatMulOptionsT()
    opts.adjX = False
    opts.adjY = bool(adj_y)
    opts.asymmetricQuantizeInputs = False
    ts = [
        tensor([b, m_, k], I8, 0, sa, za),
        tensor(b_shape, I8, 0, sb, zb),
        tensor([b, m_, n], I8, 0, so, zo),
    ]
    mb = model(fb.BuiltinOperator.BATCH_MATMUL, fb.BuiltinOptions.BatchMatMulOptions, opts, ts, [0, 1], [2])
    x = rng.integers(-128, 128, size=(b, m_, k), dtype=np.int8)
    y_in = rng.integers(-128, 128, size=b_shape, dtype=np.int8)
    y = run(mb, [x, y_in])
    lines.append(
        f"batch_matmul {adj_y} {b} {m_} {k} {n} {sa.hex()} {za} {sb.hex()} {zb} {so.hex()} {zo} "
        f"{fmt(x)} {fmt(y_in)} {fmt(y)}"
    )

# MEAN, int8, over the middle axis of [outer, len, inner] (rank 3; a 1 for a missing side).
for case in range(60):
    outer, length, inner = int(rng.integers(1, 5)), int([1, 2, 3, 4, 5, 7, 8, 16, 49, 100][case % 10]), int(rng.integers(1, 5))
    s_in = rand_scale()
    s_out = f32(float(s_in * 2.0 ** rng.uniform(-3, 3))) if case % 3 else s_in
    z_in = rand_zp()
    z_out = rand_zp() if case % 3 else z_in
    opts = fb.ReducerOptionsT()
    opts.keepDims = False
    axis = np.array([1], dtype=np.int32).tobytes()
    ts = [
        tensor([outer, length, inner], I8, 0, s_in, z_in),
        tensor([1], fb.TensorType.INT32, 1),
        tensor([outer, inner], I8, 0, s_out, z_out),
    ]
    mb = model(fb.BuiltinOperator.MEAN, fb.BuiltinOptions.ReducerOptions, opts, ts, [0], [2],
               op_inputs=[0, 1], buffers=[axis])
    x = rng.integers(-128, 128, size=(outer, length, inner), dtype=np.int8)
    y = run(mb, [x])
    lines.append(
        f"mean {outer} {length} {inner} {s_in.hex()} {z_in} {s_out.hex()} {z_out} {fmt(x)} {fmt(y)}"
    )

# QUANTIZE f32 → int8: ordinary values, exact ties (k + 0.5 steps), saturation, ±0.
for case in range(24):
    s, z = rand_scale(), rand_zp()
    n = 64
    x = (rng.uniform(-300, 300, size=n) * s).astype(np.float32)
    ties = (rng.integers(-130, 130, size=16) + 0.5).astype(np.float32) * np.float32(s)
    x[:16] = ties
    x[16], x[17] = np.float32(0.0), np.float32(-0.0)
    ts = [tensor([n], fb.TensorType.FLOAT32, 0), tensor([n], I8, 0, s, z)]
    mb = model(fb.BuiltinOperator.QUANTIZE, fb.BuiltinOptions.QuantizeOptions, fb.QuantizeOptionsT(), ts, [0], [1])
    y = run(mb, [x])
    lines.append(f"quantize {s.hex()} {z} {n} {fmt_f(x)} {fmt(y)}")

# DEQUANTIZE int8 → f32: every code.
for case in range(8):
    s, z = rand_scale(-20, 20), rand_zp()
    x = np.arange(-128, 128, dtype=np.int8)
    ts = [tensor([256], I8, 0, s, z), tensor([256], fb.TensorType.FLOAT32, 0)]
    mb = model(fb.BuiltinOperator.DEQUANTIZE, fb.BuiltinOptions.DequantizeOptions, fb.DequantizeOptionsT(), ts, [0], [1])
    y = run(mb, [x])
    lines.append(f"dequantize {s.hex()} {z} {fmt_f(y)}")

with open(OUT, "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"wrote {len(lines)} cases to {OUT}")
