//! Standalone int8 activation (ReLU / ReLU6 after a layer without a fused activation), in place.

/// `x[i] = clamp(x[i], lo, hi)` in place, with `(lo, hi)` from
/// [`crate::quant::activation_range`] for the tensor's quantization: real ReLU/ReLU6 when input
/// and output share `(scale, zero_point)`, exactly TFLite's int8 RELU/RELU6 in that case.
/// Total: `lo > hi` gives `hi`, and bounds outside `[−128, 127]` act as the int8 limits.
pub fn clamp_s8(x: &mut [i8], lo: i32, hi: i32) {
    for q in x {
        *q = i32::from(*q).max(lo).min(hi).clamp(-128, 127) as i8;
    }
}
