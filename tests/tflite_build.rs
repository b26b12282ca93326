//! Small int8 `.tflite` flatbuffers built in the tests with the schema's owned types
//! (`denoiserep-tflite-schema`, planus): activations, int8 weights (per-tensor or per-channel),
//! int32 biases, operators. Random values come from a seeded [`Rng`].

use denoiserep_tflite_schema::tflite::{
    self, ActivationFunctionType as Act, BuiltinOperator, BuiltinOptions, Padding, TensorType,
};
use denoiserep_tflite_schema::SCHEMA_VERSION;
use denoiserep_trainer::rng::Rng;

/// A TFLite model under construction (one subgraph).
pub struct TfliteBuilder {
    pub tensors: Vec<tflite::Tensor>,
    pub buffers: Vec<tflite::Buffer>,
    pub codes: Vec<tflite::OperatorCode>,
    pub ops: Vec<tflite::Operator>,
    pub rng: Rng,
}

/// An int8 activation: its tensor index and quantization.
#[derive(Debug, Clone, Copy)]
pub struct Act8 {
    pub index: i32,
    pub scale: f32,
    pub zero_point: i64,
}

fn quant(
    scales: Vec<f32>,
    zero_points: Vec<i64>,
    dim: i32,
) -> Option<Box<tflite::QuantizationParameters>> {
    Some(Box::new(tflite::QuantizationParameters {
        scale: Some(scales),
        zero_point: Some(zero_points),
        quantized_dimension: dim,
        ..Default::default()
    }))
}

impl TfliteBuilder {
    /// An empty model (buffer 0 is the empty sentinel, as TFLite writes it).
    pub fn new(seed: u64) -> Self {
        Self {
            tensors: Vec::new(),
            buffers: vec![tflite::Buffer::default()],
            codes: Vec::new(),
            ops: Vec::new(),
            rng: Rng::new(seed),
        }
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.rng.uniform()
    }

    /// Uniform integer in `[lo, hi]`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.rng.next_u64() % (hi - lo + 1) as u64) as i64
    }

    /// An int8 activation of `shape` with this quantization.
    pub fn activation_q(&mut self, shape: &[i32], scale: f32, zero_point: i64) -> Act8 {
        self.tensors.push(tflite::Tensor {
            shape: Some(shape.to_vec()),
            type_: TensorType::Int8,
            buffer: 0,
            name: Some(format!("act{}", self.tensors.len())),
            quantization: quant(vec![scale], vec![zero_point], 0),
            ..Default::default()
        });
        Act8 {
            index: self.tensors.len() as i32 - 1,
            scale,
            zero_point,
        }
    }

    /// An int8 activation of `shape` with a random scale in [0.01, 0.1) and zero point in
    /// [−20, 20].
    pub fn activation(&mut self, shape: &[i32]) -> Act8 {
        let scale = self.uniform(0.01, 0.1) as f32;
        let zp = self.int(-20, 20);
        self.activation_q(shape, scale, zp)
    }

    /// A float32 activation of `shape` (a float model input or output).
    pub fn float_tensor(&mut self, shape: &[i32]) -> i32 {
        self.tensors.push(tflite::Tensor {
            shape: Some(shape.to_vec()),
            type_: TensorType::Float32,
            buffer: 0,
            name: Some(format!("float{}", self.tensors.len())),
            ..Default::default()
        });
        self.tensors.len() as i32 - 1
    }

    /// A constant tensor with raw bytes.
    pub fn constant(
        &mut self,
        shape: &[i32],
        ty: TensorType,
        bytes: Vec<u8>,
        q: Option<Box<tflite::QuantizationParameters>>,
    ) -> i32 {
        self.buffers.push(tflite::Buffer {
            data: Some(bytes),
            ..Default::default()
        });
        self.tensors.push(tflite::Tensor {
            shape: Some(shape.to_vec()),
            type_: ty,
            buffer: self.buffers.len() as u32 - 1,
            name: Some(format!("const{}", self.tensors.len())),
            quantization: q,
            ..Default::default()
        });
        self.tensors.len() as i32 - 1
    }

    /// An int32 constant (axes, paddings).
    pub fn int32s(&mut self, shape: &[i32], values: &[i32]) -> i32 {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(shape, TensorType::Int32, bytes, None)
    }

    /// Random int8 weights of `shape` quantized along `dim` (per-channel: one random scale in
    /// [0.002, 0.02) per index of `dim`; else one scale), and a random int32 bias for
    /// `input_scale` (scale `s_in · s_w[c]`). Returns (weights, bias, mean weight scale).
    pub fn weights(
        &mut self,
        shape: &[i32],
        dim: usize,
        per_channel: bool,
        input_scale: f32,
    ) -> (i32, i32, f32) {
        let n: i32 = shape.iter().product();
        let channels = shape[dim] as usize;
        let w: Vec<u8> = (0..n).map(|_| self.int(-127, 127) as i8 as u8).collect();
        let scales: Vec<f32> = if per_channel {
            (0..channels)
                .map(|_| self.uniform(0.002, 0.02) as f32)
                .collect()
        } else {
            vec![self.uniform(0.002, 0.02) as f32]
        };
        let mean = scales.iter().sum::<f32>() / scales.len() as f32;
        let zps = vec![0; scales.len()];
        let wq = quant(scales.clone(), zps, dim as i32);
        let wi = self.constant(shape, TensorType::Int8, w, wq);
        let bias: Vec<i32> = (0..channels)
            .map(|_| self.int(-3000, 3000) as i32)
            .collect();
        let bscales: Vec<f32> = (0..channels)
            .map(|c| input_scale * scales[if per_channel { c } else { 0 }])
            .collect();
        let bq = quant(bscales, vec![0; channels], 0);
        let bytes = bias.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bi = self.constant(&[channels as i32], TensorType::Int32, bytes, bq);
        (wi, bi, mean)
    }

    /// The opcode index of `code` (added once).
    pub fn code(&mut self, code: BuiltinOperator, custom: Option<&str>) -> u32 {
        let entry = tflite::OperatorCode {
            deprecated_builtin_code: (code as i32).min(127) as i8,
            custom_code: custom.map(str::to_string),
            version: 1,
            builtin_code: code,
        };
        if let Some(i) = self.codes.iter().position(|c| *c == entry) {
            return i as u32;
        }
        self.codes.push(entry);
        self.codes.len() as u32 - 1
    }

    /// Appends an operator.
    pub fn op(
        &mut self,
        code: BuiltinOperator,
        inputs: &[i32],
        output: i32,
        options: Option<BuiltinOptions>,
    ) {
        let opcode_index = self.code(code, None);
        self.ops.push(tflite::Operator {
            opcode_index,
            inputs: Some(inputs.to_vec()),
            outputs: Some(vec![output]),
            builtin_options: options,
            ..Default::default()
        });
    }

    /// Appends a custom operator named `name`.
    pub fn custom_op(&mut self, name: &str, inputs: &[i32], output: i32) {
        let opcode_index = self.code(BuiltinOperator::Custom, Some(name));
        self.ops.push(tflite::Operator {
            opcode_index,
            inputs: Some(inputs.to_vec()),
            outputs: Some(vec![output]),
            ..Default::default()
        });
    }

    /// An output scale for a layer summing `k` products of `x` (scale `s_in`) and weights of
    /// scale `s_w`: about ±3σ of the accumulator over the int8 range.
    pub fn out_scale(k: usize, s_in: f32, s_w: f32) -> f32 {
        (k as f32).sqrt() * 125.0 * s_in * s_w
    }

    /// CONV_2D of `x` (`[1, H, W, Ci]`) to `co` channels; returns the output.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        x: Act8,
        xs: [i32; 3],
        co: i32,
        k: i32,
        stride: i32,
        padding: Padding,
        act: Act,
        per_channel: bool,
    ) -> (Act8, [i32; 3]) {
        let [h, w, ci] = xs;
        let (wi, bi, sw) = self.weights(&[co, k, k, ci], 0, per_channel, x.scale);
        let (oh, ow) = out_hw(h, w, k, stride, padding);
        let scale = Self::out_scale((k * k * ci) as usize, x.scale, sw);
        let zp = self.int(-20, 20);
        let y = self.activation_q(&[1, oh, ow, co], scale, zp);
        let o = tflite::Conv2DOptions {
            padding,
            stride_w: stride,
            stride_h: stride,
            fused_activation_function: act,
            dilation_w_factor: 1,
            dilation_h_factor: 1,
            ..Default::default()
        };
        self.op(
            BuiltinOperator::Conv2d,
            &[x.index, wi, bi],
            y.index,
            Some(BuiltinOptions::Conv2DOptions(Box::new(o))),
        );
        (y, [oh, ow, co])
    }

    /// DEPTHWISE_CONV_2D (depth multiplier 1) of `x`; returns the output.
    #[allow(clippy::too_many_arguments)]
    pub fn depthwise(
        &mut self,
        x: Act8,
        xs: [i32; 3],
        k: i32,
        stride: i32,
        padding: Padding,
        act: Act,
        per_channel: bool,
    ) -> (Act8, [i32; 3]) {
        let [h, w, c] = xs;
        let (wi, bi, sw) = self.weights(&[1, k, k, c], 3, per_channel, x.scale);
        let (oh, ow) = out_hw(h, w, k, stride, padding);
        let scale = Self::out_scale((k * k) as usize, x.scale, sw);
        let zp = self.int(-20, 20);
        let y = self.activation_q(&[1, oh, ow, c], scale, zp);
        let o = tflite::DepthwiseConv2DOptions {
            padding,
            stride_w: stride,
            stride_h: stride,
            depth_multiplier: 1,
            fused_activation_function: act,
            dilation_w_factor: 1,
            dilation_h_factor: 1,
        };
        self.op(
            BuiltinOperator::DepthwiseConv2d,
            &[x.index, wi, bi],
            y.index,
            Some(BuiltinOptions::DepthwiseConv2DOptions(Box::new(o))),
        );
        (y, [oh, ow, c])
    }

    /// MAX_POOL_2D or AVERAGE_POOL_2D of `x`, same quantization out.
    #[allow(clippy::too_many_arguments)]
    pub fn pool(
        &mut self,
        max: bool,
        x: Act8,
        xs: [i32; 3],
        k: i32,
        stride: i32,
        padding: Padding,
        act: Act,
    ) -> (Act8, [i32; 3]) {
        let [h, w, c] = xs;
        let (oh, ow) = out_hw(h, w, k, stride, padding);
        let y = self.activation_q(&[1, oh, ow, c], x.scale, x.zero_point);
        let o = tflite::Pool2DOptions {
            padding,
            stride_w: stride,
            stride_h: stride,
            filter_width: k,
            filter_height: k,
            fused_activation_function: act,
        };
        let code = if max {
            BuiltinOperator::MaxPool2d
        } else {
            BuiltinOperator::AveragePool2d
        };
        self.op(
            code,
            &[x.index],
            y.index,
            Some(BuiltinOptions::Pool2DOptions(Box::new(o))),
        );
        (y, [oh, ow, c])
    }

    /// FULLY_CONNECTED of a `[1, n_in]` (or any shape of `n_in` values) to `[1, n_out]`.
    pub fn fc(&mut self, x: Act8, n_in: i32, n_out: i32, act: Act, per_channel: bool) -> Act8 {
        let (wi, bi, sw) = self.weights(&[n_out, n_in], 0, per_channel, x.scale);
        let scale = Self::out_scale(n_in as usize, x.scale, sw);
        let zp = self.int(-20, 20);
        let y = self.activation_q(&[1, n_out], scale, zp);
        let o = tflite::FullyConnectedOptions {
            fused_activation_function: act,
            ..Default::default()
        };
        self.op(
            BuiltinOperator::FullyConnected,
            &[x.index, wi, bi],
            y.index,
            Some(BuiltinOptions::FullyConnectedOptions(Box::new(o))),
        );
        y
    }

    /// RESHAPE of `x` to `shape` (same quantization), with the shape as a constant input.
    pub fn reshape(&mut self, x: Act8, shape: &[i32]) -> Act8 {
        let s = self.int32s(&[shape.len() as i32], shape);
        let y = self.activation_q(shape, x.scale, x.zero_point);
        let o = tflite::ReshapeOptions {
            new_shape: Some(shape.to_vec()),
        };
        self.op(
            BuiltinOperator::Reshape,
            &[x.index, s],
            y.index,
            Some(BuiltinOptions::ReshapeOptions(Box::new(o))),
        );
        y
    }

    /// SOFTMAX of `x` (output scale 1/256, zero point −128).
    pub fn softmax(&mut self, x: Act8, shape: &[i32], beta: f32) -> Act8 {
        let y = self.activation_q(shape, 1.0 / 256.0, -128);
        let o = tflite::SoftmaxOptions { beta };
        self.op(
            BuiltinOperator::Softmax,
            &[x.index],
            y.index,
            Some(BuiltinOptions::SoftmaxOptions(Box::new(o))),
        );
        y
    }

    /// The flatbuffer bytes, `TFL3` identifier, schema version 3.
    pub fn finish(self, inputs: &[i32], outputs: &[i32]) -> Vec<u8> {
        let model = tflite::Model {
            version: SCHEMA_VERSION,
            operator_codes: Some(self.codes),
            subgraphs: Some(vec![tflite::SubGraph {
                tensors: Some(self.tensors),
                inputs: Some(inputs.to_vec()),
                outputs: Some(outputs.to_vec()),
                operators: Some(self.ops),
                name: Some("main".into()),
                ..Default::default()
            }]),
            description: Some("denoiserep test model".into()),
            buffers: Some(self.buffers),
            ..Default::default()
        };
        denoiserep_tflite_schema::finish_model(&model)
    }
}

/// Output H and W of a window as TFLite computes them.
pub fn out_hw(h: i32, w: i32, k: i32, stride: i32, padding: Padding) -> (i32, i32) {
    let f = |n: i32| match padding {
        Padding::Same => (n + stride - 1) / stride,
        Padding::Valid => (n - k + stride) / stride,
    };
    (f(h), f(w))
}
