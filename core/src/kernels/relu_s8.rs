//! ReLU, int8, in place.

/// `q = max(q, zero_point)` for every element: real ReLU when input and output share the
/// quantization `(scale, zero_point)`.
pub fn relu_s8(data: &mut [i8], zero_point: i8) {
    for q in data {
        *q = (*q).max(zero_point);
    }
}
