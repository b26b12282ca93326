//! ReLU, f32, in place.

/// `x = if x < 0 { 0 } else { x }` for every element (NaN and −0.0 pass through unchanged, the same
/// rule as the fused activation of Linear and Conv2d).
pub fn relu_f32(data: &mut [f32]) {
    for x in data {
        *x = super::activate_f32(*x, crate::tensor::Activation::Relu);
    }
}
