#!/usr/bin/env python3
"""Golden vectors for int8 ADD, SOFTMAX and AVERAGE_POOL_2D from TFLite-Micro's own interpreter.

Builds one-op .tflite models in memory (the flatbuffer schema classes that ship with the
`tflite-micro` wheel), runs them with `tflite_micro.runtime.Interpreter` (TFLM's reference
kernels), and writes core/tests/golden/tflm_graph_ops.txt, which core/tests/kernels_graph_ops.rs
reads. Each case is one line of whitespace-separated tokens:

  add  s1 zp1 s2 zp2 s_out zp_out act n  x1[n] x2[n] y[n]
  softmax  beta s_in zp_in rows depth  x[rows*depth] y[rows*depth]
  avgpool  c h w kh kw sh sw same  x[c*h*w] y[c*oh*ow]      (x, y in CHW order)

Scales are written with float.hex() (exact f32 values). act: 0 none, 1 relu, 3 relu6.

Setup (PyPI): python3 -m venv /tmp/tflm && /tmp/tflm/bin/pip install tflite-micro numpy flatbuffers
Run: /tmp/tflm/bin/python core/tests/golden/tflm_graph_ops.py
"""
import os
import struct

import flatbuffers
import numpy as np
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tflm_graph_ops.txt")
rng = np.random.default_rng(20240611)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def tensor(shape, scale, zp, buffer):
    t = fb.TensorT()
    t.shape = list(shape)
    t.type = fb.TensorType.INT8
    t.buffer = buffer
    q = fb.QuantizationParametersT()
    q.scale = [scale]
    q.zeroPoint = [zp]
    t.quantization = q
    return t


def model(op_code, options_type, options, tensors, inputs, outputs):
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
    op.inputs = inputs
    op.outputs = outputs
    op.builtinOptionsType = options_type
    op.builtinOptions = options
    sg.operators = [op]
    m.subgraphs = [sg]
    m.buffers = [fb.BufferT()]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run(model_bytes, inputs):
    interp = runtime.Interpreter.from_bytes(model_bytes, arena_size=1 << 20)
    for i, x in enumerate(inputs):
        interp.set_input(x, i)
    interp.invoke()
    return interp.get_output(0)


def rand_scale():
    return f32(float(2.0 ** rng.uniform(-9, 1)))


def rand_zp():
    return int(rng.integers(-128, 128))


def fmt(xs):
    return " ".join(str(int(v)) for v in np.asarray(xs).reshape(-1))


lines = []

# ADD: equal shapes [1, n].
for case in range(60):
    n = int(rng.integers(1, 64))
    s1, s2, so = rand_scale(), rand_scale(), rand_scale()
    z1, z2, zo = rand_zp(), rand_zp(), rand_zp()
    act = [0, 1, 3][case % 3]
    opts = fb.AddOptionsT()
    opts.fusedActivationFunction = act
    ts = [tensor([1, n], s1, z1, 0), tensor([1, n], s2, z2, 0), tensor([1, n], so, zo, 0)]
    mb = model(fb.BuiltinOperator.ADD, fb.BuiltinOptions.AddOptions, opts, ts, [0, 1], [2])
    x1 = rng.integers(-128, 128, size=(1, n), dtype=np.int8)
    x2 = rng.integers(-128, 128, size=(1, n), dtype=np.int8)
    y = run(mb, [x1, x2])
    lines.append(
        f"add {s1.hex()} {z1} {s2.hex()} {z2} {so.hex()} {zo} {act} {n} {fmt(x1)} {fmt(x2)} {fmt(y)}"
    )

# SOFTMAX: [rows, depth], output scale 1/256, zero point −128.
for case in range(60):
    rows = int(rng.integers(1, 4))
    depth = int([1, 2, 3, 5, 10, 17, 64, 100, 255, 256, 300, 511][case % 12])
    beta = f32(float([1.0, 1.0, 0.5, 2.0, 1.7][case % 5]))
    s_in = f32(float(2.0 ** rng.uniform(-7, 0)))
    z_in = rand_zp()
    opts = fb.SoftmaxOptionsT()
    opts.beta = beta
    ts = [tensor([rows, depth], s_in, z_in, 0), tensor([rows, depth], 1.0 / 256.0, -128, 0)]
    mb = model(fb.BuiltinOperator.SOFTMAX, fb.BuiltinOptions.SoftmaxOptions, opts, ts, [0], [1])
    spread = int(rng.integers(1, 9))
    x = (rng.integers(-128, 128, size=(rows, depth)) >> (8 - spread)).astype(np.int8)
    y = run(mb, [x])
    lines.append(f"softmax {beta.hex()} {s_in.hex()} {z_in} {rows} {depth} {fmt(x)} {fmt(y)}")

# AVERAGE_POOL_2D: NHWC in TFLite, CHW here.
for case in range(40):
    c = int(rng.integers(1, 4))
    h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    same = case % 2
    if not same and (kh > h or kw > w):
        kh, kw = min(kh, h), min(kw, w)
    if same:
        oh, ow = -(-h // sh), -(-w // sw)
    else:
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    s, z = rand_scale(), rand_zp()
    opts = fb.Pool2DOptionsT()
    opts.padding = fb.Padding.SAME if same else fb.Padding.VALID
    opts.strideH, opts.strideW = sh, sw
    opts.filterHeight, opts.filterWidth = kh, kw
    opts.fusedActivationFunction = 0
    ts = [tensor([1, h, w, c], s, z, 0), tensor([1, oh, ow, c], s, z, 0)]
    mb = model(
        fb.BuiltinOperator.AVERAGE_POOL_2D, fb.BuiltinOptions.Pool2DOptions, opts, ts, [0], [1]
    )
    x = rng.integers(-128, 128, size=(1, h, w, c), dtype=np.int8)
    y = run(mb, [x])
    x_chw = np.transpose(x[0], (2, 0, 1))
    y_chw = np.transpose(np.asarray(y).reshape(oh, ow, c), (2, 0, 1))
    lines.append(f"avgpool {c} {h} {w} {kh} {kw} {sh} {sw} {same} {fmt(x_chw)} {fmt(y_chw)}")

with open(OUT, "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"wrote {len(lines)} cases to {OUT}")
