//! Standalone f32 activation, in place.

use super::activate_f32;
use crate::tensor::Activation;

/// `x[i] = act(x[i])` in place, with [`activate_f32`] (ReLU keeps NaN and −0.0; ReLU6 also caps
/// at 6).
pub fn activation_f32(x: &mut [f32], a: Activation) {
    if a == Activation::None {
        return;
    }
    for v in x {
        *v = activate_f32(*v, a);
    }
}
