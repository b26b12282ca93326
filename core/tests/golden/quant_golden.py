#!/usr/bin/env python3
"""Golden vectors for QuantizeMultiplier and MultiplyByQuantizedMultiplier.

An independent transcription of tflite-micro / gemmlowp (see /docs/quantization.md) in Python's
arbitrary-precision integers; prints the Rust arrays used in core/tests/quant_golden.rs.
Run: python3 core/tests/golden/quant_golden.py
"""
import math

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def round_away(x: float) -> int:
    # C's std::round: half away from zero (x is an exact binary fraction here).
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def quantize_multiplier(m: float):
    if m == 0.0 or math.isnan(m) or math.isinf(m):
        return (0, 0)
    q, shift = math.frexp(m)
    q_fixed = round_away(q * 2**31)
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return (0, 0)
    if shift > 30:
        return (I32_MAX if m > 0 else -I32_MAX, 30)
    return (q_fixed, shift)


def wrap32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - 2**32 if v >= 2**31 else v


def srdhm(a: int, b: int) -> int:
    if a == I32_MIN and b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = 2**30 if ab >= 0 else 1 - 2**30
    num = ab + nudge
    # C++ integer division truncates toward zero.
    quot = abs(num) // 2**31
    return quot if num >= 0 else -quot


def rdivpot(x: int, e: int) -> int:
    mask = 2**e - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def mbqm(x: int, m: int, shift: int) -> int:
    left = max(shift, 0)
    right = max(-shift, 0)
    return rdivpot(srdhm(wrap32(x << left), m), right)


QM_CASES = [
    0.0, 1.0, 0.5, 0.75, 0.5 + 2**-32, 0.5 + 3 * 2**-33, 1.0 - 2**-33, 2**-32, 2**-33, 2**-40,
    2.0**29, 2.0**30, 2.0**31, 1e10, -0.75, 0.1, 0.003921568859368563, 1.0 / 3.0, 123.456,
    float("nan"), float("inf"),
]

MBQM_CASES = [
    (100, 2**30, 0), (3, 2**30, 0), (-3, 2**30, 0), (5, 2**30, 0), (-5, 2**30, 0),
    (3, 2**30, -1), (-3, 2**30, -1), (1, 2**30, -1), (-1, 2**30, -1), (2, 2**30, -2), (-2, 2**30, -2),
    (6, 2**30, -2), (-6, 2**30, -2), (1000, 1610612736, 3), (-1000, 1610612736, 3),
    (I32_MIN, I32_MIN, 0), (I32_MIN, I32_MAX, 0), (I32_MAX, I32_MAX, 0), (I32_MIN, 2**30, 0),
    (I32_MIN, 2**30, -31), (I32_MAX, 2**30, -31), (I32_MAX, I32_MAX, -31),
    (12345, 1518500250, -7), (-12345, 1518500250, -7), (7, 1518500250, 30), (0, I32_MAX, 30),
    (123456, 0, 0), (65536, 2**30, 1), (-65536, 2**30, 1), (2**30, 2**30, 1),
]

if __name__ == "__main__":
    print("// (real, multiplier, shift)")
    for m in QM_CASES:
        qm, sh = quantize_multiplier(m)
        print(f"    ({m!r}, {qm}, {sh}),")
    print("// (x, multiplier, shift, result)")
    for x, m, s in MBQM_CASES:
        print(f"    ({x}, {m}, {s}, {mbqm(x, m, s)}),")
