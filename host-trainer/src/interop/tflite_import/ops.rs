//! One lowering per TFLite operator: each reads its TFLite tensors and options, checks them, and
//! appends core ops to the [`Importer`]'s model.

use anyhow::{anyhow, bail, Result};
use denoiserep_core::{Activation, QuantParams};
use denoiserep_tflite_schema::tflite::{self, BuiltinOptionsRef};

use super::geometry::window;
use super::quant::{
    activation_quant, biases, fused_activation, multipliers, weight_scales, ProductPrecision,
};
use super::reader::{fb, TensorMeta, TflModel};
use super::{Importer, Layout, PendingPad, Value};
use crate::model_file::{i32_bytes, i8_bytes, OwnedOp, OwnedWeights};

/// Operator `index` as the lowerings read it.
pub(super) struct OpRef<'a> {
    /// Index of the operator in the subgraph.
    pub index: usize,
    /// `operator 3 (CONV_2D)`.
    pub ctx: String,
    /// Input tensor indices; `None` for an omitted optional input (−1).
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<usize>,
    pub options: Option<BuiltinOptionsRef<'a>>,
}

impl<'a> OpRef<'a> {
    pub fn read(tfl: &TflModel<'a>, k: usize, ctx: &str) -> Result<Self> {
        let op = tfl.operator(k)?;
        let what = || ctx.to_string();
        let list = |v: Option<planus_vec::V<'a>>| -> Result<Vec<Option<usize>>> {
            v.map(|v| {
                v.iter()
                    .map(|i| match i {
                        -1 => Ok(None),
                        i => usize::try_from(i)
                            .map(Some)
                            .map_err(|_| anyhow!("{ctx}: tensor index {i}")),
                    })
                    .collect()
            })
            .unwrap_or(Ok(Vec::new()))
        };
        let inputs = list(fb(op.inputs(), what)?)?;
        let outputs = list(fb(op.outputs(), what)?)?
            .into_iter()
            .map(|o| o.ok_or_else(|| anyhow!("{ctx}: an omitted output")))
            .collect::<Result<_>>()?;
        Ok(Self {
            index: k,
            ctx: ctx.to_string(),
            inputs,
            outputs,
            options: fb(op.builtin_options(), what)?,
        })
    }

    /// Checks `n_in` inputs (of which the last `optional` may be omitted) and one output.
    fn arity(&self, n_in: usize, optional: usize) -> Result<()> {
        let n = self.inputs.len();
        if n > n_in || n + optional < n_in || self.outputs.len() != 1 {
            bail!(
                "{}: {n} inputs and {} outputs; {} inputs and 1 output expected",
                self.ctx,
                self.outputs.len(),
                if optional == 0 {
                    n_in.to_string()
                } else {
                    format!("{}–{n_in}", n_in - optional)
                }
            );
        }
        Ok(())
    }

    /// Input `i`, required.
    fn input(&self, i: usize) -> Result<usize> {
        self.inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| anyhow!("{}: input {i} is missing", self.ctx))
    }

    fn output(&self) -> usize {
        self.outputs.first().copied().unwrap_or(usize::MAX)
    }

    /// The options, or an error naming the variant expected.
    fn options<T>(
        &self,
        pick: impl FnOnce(BuiltinOptionsRef<'a>) -> Option<T>,
        what: &str,
    ) -> Result<T> {
        self.options
            .and_then(pick)
            .ok_or_else(|| anyhow!("{}: no {what}", self.ctx))
    }
}

/// `planus::Vector<i32>` under a short name.
mod planus_vec {
    pub type V<'a> = denoiserep_tflite_schema::planus::Vector<'a, i32>;
}

/// Converts an options table to its owned form (small, no vectors).
macro_rules! owned {
    ($op:expr, $variant:ident, $ty:ty) => {{
        let r = $op.options(
            |o| match o {
                BuiltinOptionsRef::$variant(r) => Some(r),
                _ => None,
            },
            stringify!($variant),
        )?;
        <$ty>::try_from(r)
            .map_err(|e| anyhow!("{}: malformed {}: {e}", $op.ctx, stringify!($variant)))?
    }};
}

/// A constant's bytes, checked to hold `numel · size` bytes.
fn constant<'a>(ctx: &str, t: &TensorMeta<'a>, size: usize) -> Result<&'a [u8]> {
    let data = t
        .data
        .ok_or_else(|| anyhow!("{ctx}: {} is not a constant", t.describe()))?;
    let want = t.numel().and_then(|n| n.checked_mul(size));
    if want != Some(data.len()) {
        bail!(
            "{ctx}: {} has shape {:?} but {} bytes of data",
            t.describe(),
            t.shape,
            data.len()
        );
    }
    Ok(data)
}

/// Dilation must be 1 along both axes.
fn no_dilation(ctx: &str, h: i32, w: i32) -> Result<()> {
    if h != 1 || w != 1 {
        bail!("{ctx}: dilation {h}×{w} is not supported (1×1 only)");
    }
    Ok(())
}

impl Importer<'_> {
    /// The value of activation `index`, read by `op` (a pending PAD is an error here).
    fn value(&self, op: &OpRef<'_>, index: usize) -> Result<Value> {
        if let Some(p) = self.pads.get(&index) {
            bail!(
                "{}: reads the output of operator {} (PAD); a PAD can only be folded into a \
                 following CONV_2D or DEPTHWISE_CONV_2D",
                op.ctx,
                p.op
            );
        }
        self.values.get(&index).cloned().ok_or_else(|| {
            let name = self
                .tfl
                .tensor(index)
                .map(|t| t.describe())
                .unwrap_or_else(|_| format!("tensor {index}"));
            anyhow!(
                "{}: reads {name}, which is neither the model input nor written by an earlier \
                 operator (constant activations are not supported)",
                op.ctx
            )
        })
    }

    /// The input of a convolution: its value and the `[top, bottom, left, right]` padding of a
    /// PAD folded into it.
    fn conv_input(&mut self, op: &OpRef<'_>) -> Result<(Value, [usize; 4])> {
        let index = op.input(0)?;
        let (index, pad) = match self.pads.get(&index) {
            Some(p) => (p.source, p.pad),
            None => (index, [0; 4]),
        };
        let v = self.value(op, index)?;
        Ok((self.as_chw(&v, &op.ctx)?, pad))
    }

    /// The output of `op`, checked to have TFLite dims `want` (batch dropped).
    fn output_value(&mut self, op: &OpRef<'_>, layout: Layout, want: &[usize]) -> Result<Value> {
        let v = self.new_value(&op.ctx, op.output(), Some(layout))?;
        if v.tfl != want {
            bail!(
                "{}: the output has shape {:?} (batch dropped); the operator produces {want:?}",
                op.ctx,
                v.tfl
            );
        }
        Ok(v)
    }

    /// CONV_2D: input `[1, H, W, Ci]`, weights `[Co, kh, kw, Ci]` (OHWI → the core's OIHW),
    /// bias `[Co]`; per-channel multipliers `(double)s_in · (double)s_w[o] / (double)s_out`.
    pub(super) fn conv2d(&mut self, op: &OpRef<'_>) -> Result<()> {
        op.arity(3, 1)?;
        let o = owned!(op, Conv2DOptions, tflite::Conv2DOptions);
        no_dilation(&op.ctx, o.dilation_h_factor, o.dilation_w_factor)?;
        let act = fused_activation(&op.ctx, o.fused_activation_function)?;
        let (x, extra) = self.conv_input(op)?;
        let [h, w, ci] = x.tfl[..] else {
            bail!("{}: internal: conv input rank", op.ctx);
        };
        let wt = self.tfl.tensor(op.input(1)?)?;
        let [co, kh, kw, wci] = wt.shape[..] else {
            bail!(
                "{}: weights {} have shape {:?}; [Co, kh, kw, Ci] expected",
                op.ctx,
                wt.describe(),
                wt.shape
            );
        };
        if wci != ci {
            bail!(
                "{}: weights {} take {wci} input channels, the input has {ci} (grouped \
                 convolutions are not supported)",
                op.ctx,
                wt.describe()
            );
        }
        let data = constant(&op.ctx, &wt, 1)?;
        let (spec, [oh, ow]) = window(
            &op.ctx,
            [h, w],
            [kh, kw],
            [o.stride_h, o.stride_w],
            o.padding,
            extra,
        )?;
        let out = self.output_value(op, Layout::Chw, &[oh, ow, co])?;
        let (scales, _) = weight_scales(&op.ctx, &wt, 0, co)?;
        // OHWI → OIHW.
        let mut oihw = vec![0u8; data.len()];
        for (n, &b) in data.iter().enumerate() {
            let i = n % ci;
            let x = (n / ci) % kw;
            let y = (n / (ci * kw)) % kh;
            let oc = n / (ci * kw * kh);
            oihw[((oc * ci + i) * kh + y) * kw + x] = b;
        }
        let weights = self.s8_weights(op, oihw, 2, &x, &out, &scales, ProductPrecision::Double)?;
        let id = self.emit_into(
            op,
            OwnedOp::Conv2d {
                window: spec,
                activation: act,
                weights,
            },
            x.id,
            &out,
        )?;
        debug_assert_eq!(id, out.id);
        Ok(())
    }

    /// DEPTHWISE_CONV_2D with depth multiplier 1: weights `[1, kh, kw, C]` → the core's
    /// `[C, kh, kw]`, per-channel scales along dim 3.
    pub(super) fn depthwise(&mut self, op: &OpRef<'_>) -> Result<()> {
        op.arity(3, 1)?;
        let o = owned!(op, DepthwiseConv2DOptions, tflite::DepthwiseConv2DOptions);
        no_dilation(&op.ctx, o.dilation_h_factor, o.dilation_w_factor)?;
        let act = fused_activation(&op.ctx, o.fused_activation_function)?;
        let (x, extra) = self.conv_input(op)?;
        let [h, w, c] = x.tfl[..] else {
            bail!("{}: internal: depthwise input rank", op.ctx);
        };
        let wt = self.tfl.tensor(op.input(1)?)?;
        let [1, kh, kw, wc] = wt.shape[..] else {
            bail!(
                "{}: weights {} have shape {:?}; [1, kh, kw, C] expected",
                op.ctx,
                wt.describe(),
                wt.shape
            );
        };
        if wc != c || o.depth_multiplier > 1 {
            bail!(
                "{}: depth multiplier {} ({wc} weight channels for {c} input channels); only 1 is \
                 supported",
                op.ctx,
                o.depth_multiplier.max(1).max((wc / c.max(1)) as i32)
            );
        }
        let data = constant(&op.ctx, &wt, 1)?;
        let (spec, [oh, ow]) = window(
            &op.ctx,
            [h, w],
            [kh, kw],
            [o.stride_h, o.stride_w],
            o.padding,
            extra,
        )?;
        let out = self.output_value(op, Layout::Chw, &[oh, ow, c])?;
        let (scales, _) = weight_scales(&op.ctx, &wt, 3, c)?;
        // [kh][kw][C] → [C][kh][kw].
        let mut ckk = vec![0u8; data.len()];
        for (n, &b) in data.iter().enumerate() {
            let ch = n % c;
            let yx = n / c;
            ckk[ch * kh * kw + yx] = b;
        }
        let weights = self.s8_weights(op, ckk, 2, &x, &out, &scales, ProductPrecision::Double)?;
        self.emit_into(
            op,
            OwnedOp::DepthwiseConv2d {
                window: spec,
                activation: act,
                weights,
            },
            x.id,
            &out,
        )?;
        Ok(())
    }

    /// FULLY_CONNECTED (`keep_num_dims` false, batch 1): the input flattened in TFLite's order,
    /// weights `[out, in]`. Per-tensor weights: multiplier `(double)(s_in · s_w) / s_out` (TFLM's
    /// `GetQuantizedConvolutionMultipler`, a float product); per-channel: double products.
    pub(super) fn fully_connected(&mut self, op: &OpRef<'_>) -> Result<()> {
        op.arity(3, 1)?;
        let o = owned!(op, FullyConnectedOptions, tflite::FullyConnectedOptions);
        if o.keep_num_dims {
            bail!("{}: keep_num_dims is not supported", op.ctx);
        }
        if o.weights_format != tflite::FullyConnectedOptionsWeightsFormat::Default {
            bail!(
                "{}: weights format {:?} is not supported",
                op.ctx,
                o.weights_format
            );
        }
        let act = fused_activation(&op.ctx, o.fused_activation_function)?;
        let x = self.value(op, op.input(0)?)?;
        let x = self.flat(&x, &op.ctx)?;
        let wt = self.tfl.tensor(op.input(1)?)?;
        let [n_out, n_in] = wt.shape[..] else {
            bail!(
                "{}: weights {} have shape {:?}; [out, in] expected",
                op.ctx,
                wt.describe(),
                wt.shape
            );
        };
        if x.tfl != [n_in] {
            bail!(
                "{}: the input has {} values; the weights take {n_in} (batch 1 only)",
                op.ctx,
                x.tfl.iter().product::<usize>()
            );
        }
        let data = constant(&op.ctx, &wt, 1)?;
        let out = self.output_value(op, Layout::AsIs, &[n_out])?;
        let (scales, per_channel) = weight_scales(&op.ctx, &wt, 0, n_out)?;
        let precision = if per_channel {
            ProductPrecision::Double
        } else {
            ProductPrecision::FloatProduct
        };
        let weights = self.s8_weights(op, data.to_vec(), 2, &x, &out, &scales, precision)?;
        self.emit_into(
            op,
            OwnedOp::Linear {
                activation: act,
                weights,
            },
            x.id,
            &out,
        )?;
        Ok(())
    }

    /// The int8 weights of a layer: `data` in the core's layout, biases (input `bias_input`),
    /// multipliers.
    #[allow(clippy::too_many_arguments)]
    fn s8_weights(
        &mut self,
        op: &OpRef<'_>,
        data: Vec<u8>,
        bias_input: usize,
        x: &Value,
        out: &Value,
        scales: &[f32],
        precision: ProductPrecision,
    ) -> Result<OwnedWeights> {
        let bias = match op.inputs.get(bias_input).copied().flatten() {
            Some(i) => Some(self.tfl.tensor(i)?),
            None => None,
        };
        let b = biases(&op.ctx, bias.as_ref(), scales.len(), x.quant.scale, scales)?;
        let (m, s) = multipliers(x.quant.scale, scales, out.quant.scale, precision);
        self.count_constant(&op.ctx, data.len() + 9 * scales.len())?;
        Ok(OwnedWeights::S8 {
            weights: data,
            bias: i32_bytes(&b),
            multiplier: i32_bytes(&m),
            shift: i8_bytes(&s),
        })
    }

    /// Counts `n` bytes of imported constants against the budget.
    fn count_constant(&mut self, ctx: &str, n: usize) -> Result<()> {
        self.constant_bytes = self.constant_bytes.saturating_add(n);
        if self.constant_bytes > self.constant_budget {
            bail!(
                "{ctx}: the imported constants exceed {} bytes ({}× the file); do many tensors \
                 share one buffer?",
                self.constant_budget,
                super::CONSTANT_GROWTH
            );
        }
        Ok(())
    }

    /// Appends `op` reading `input` and writing the already created `out`.
    fn emit_into(&mut self, op: &OpRef<'_>, core: OwnedOp, input: u16, out: &Value) -> Result<u16> {
        self.emit_inputs_into(op, core, vec![input], out)
    }

    fn emit_inputs_into(
        &mut self,
        op: &OpRef<'_>,
        core: OwnedOp,
        inputs: Vec<u16>,
        out: &Value,
    ) -> Result<u16> {
        self.file.nodes.push(crate::model_file::OwnedNode {
            op: core,
            inputs,
            output: out.id,
            source: format!("tflite {}", op.ctx),
        });
        Ok(out.id)
    }

    /// `v` flattened to `[n]` in TFLite's row-major order.
    fn flat(&mut self, v: &Value, ctx: &str) -> Result<Value> {
        if v.tfl.len() == 1 {
            return Ok(v.clone());
        }
        let v = self.as_is(v, ctx)?;
        let n = v.tfl.iter().product::<usize>();
        let id = self.emit(ctx, OwnedOp::Reshape, vec![v.id], &[n], v.quant)?;
        Ok(Value {
            id,
            tfl: vec![n],
            layout: Layout::AsIs,
            quant: v.quant,
        })
    }

    /// ADD of two activations of the same shape (no broadcasting), with a fused activation.
    pub(super) fn add(&mut self, op: &OpRef<'_>) -> Result<()> {
        op.arity(2, 0)?;
        let o = owned!(op, AddOptions, tflite::AddOptions);
        let act = fused_activation(&op.ctx, o.fused_activation_function)?;
        let a = self.value(op, op.input(0)?)?;
        let b = self.value(op, op.input(1)?)?;
        if a.tfl != b.tfl {
            bail!(
                "{}: inputs of shapes {:?} and {:?}; broadcasting is not supported",
                op.ctx,
                a.tfl,
                b.tfl
            );
        }
        let (a, b) = if a.layout == Layout::Chw || b.layout == Layout::Chw {
            (self.as_chw(&a, &op.ctx)?, self.as_chw(&b, &op.ctx)?)
        } else {
            (a, b)
        };
        let out = self.output_value(op, a.layout, &a.tfl)?;
        self.emit_inputs_into(op, OwnedOp::Add { activation: act }, vec![a.id, b.id], &out)?;
        Ok(())
    }

    /// AVERAGE_POOL_2D / MAX_POOL_2D (input and output share their quantization, as the core's
    /// pools require); a fused activation becomes a clamp after the pool (TFLite-Micro clamps
    /// each pooled value the same way).
    pub(super) fn pool(&mut self, op: &OpRef<'_>, max: bool) -> Result<()> {
        op.arity(1, 0)?;
        let o = owned!(op, Pool2DOptions, tflite::Pool2DOptions);
        let act = fused_activation(&op.ctx, o.fused_activation_function)?;
        let x = self.value(op, op.input(0)?)?;
        let x = self.as_chw(&x, &op.ctx)?;
        let [h, w, c] = x.tfl[..] else {
            bail!("{}: internal: pool input rank", op.ctx);
        };
        let k = |v: i32| {
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| anyhow!("{}: filter size {v}", op.ctx))
        };
        let (kh, kw) = (k(o.filter_height)?, k(o.filter_width)?);
        let (spec, [oh, ow]) = window(
            &op.ctx,
            [h, w],
            [kh, kw],
            [o.stride_h, o.stride_w],
            o.padding,
            [0; 4],
        )?;
        let out = self.output_value(op, Layout::Chw, &[oh, ow, c])?;
        self.same_quant(op, &x, &out)?;
        let pool = if max {
            OwnedOp::MaxPool2d { window: spec }
        } else {
            OwnedOp::AvgPool2d { window: spec }
        };
        if act == Activation::None {
            self.emit_into(op, pool, x.id, &out)?;
        } else {
            let pooled = self.emit(&op.ctx, pool, vec![x.id], &out.core_dims(), out.quant)?;
            self.emit_into(op, OwnedOp::Activation { activation: act }, pooled, &out)?;
        }
        Ok(())
    }

    /// Input and output must share their quantization (ops that move int8 values unchanged).
    fn same_quant(&self, op: &OpRef<'_>, x: &Value, out: &Value) -> Result<()> {
        if x.quant != out.quant {
            bail!(
                "{}: input quantization (scale {}, zero point {}) differs from the output's \
                 (scale {}, zero point {}); the core's op keeps the quantization",
                op.ctx,
                x.quant.scale,
                x.quant.zero_point,
                out.quant.scale,
                out.quant.zero_point
            );
        }
        Ok(())
    }

    /// MEAN over axes 1 and 2 of `[1, H, W, C]`, `keep_dims` either way, any output
    /// quantization: the map viewed as `[C, H·W]` (or `[H·W, C]` when held as is; a Reshape, no
    /// data moves) and the core's MeanAxis over the `H·W` axis, which is TFLite-Micro's int8
    /// MEAN (`QuantizedMeanOrSum`: `MBQM(Σq − zp_in·n, M·2^s / n) + zp_out`, `M` from
    /// `s_in / s_out`). (The core's `Mean` op rounds like AVERAGE_POOL_2D instead, which is not
    /// TFLite-Micro's MEAN.)
    pub(super) fn mean(&mut self, op: &OpRef<'_>) -> Result<()> {
        op.arity(2, 0)?;
        let o = owned!(op, ReducerOptions, tflite::ReducerOptions);
        let x = self.value(op, op.input(0)?)?;
        let axes_t = self.tfl.tensor(op.input(1)?)?;
        if axes_t.ty != tflite::TensorType::Int32 {
            bail!(
                "{}: axes {} are {:?}; int32 expected",
                op.ctx,
                axes_t.describe(),
                axes_t.ty
            );
        }
        let data = constant(&op.ctx, &axes_t, 4)?;
        let mut axes: Vec<i32> = data
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .map(|a| if a < 0 { a + 4 } else { a })
            .collect();
        axes.sort_unstable();
        let [h, w, c] = x.tfl[..] else {
            bail!(
                "{}: a mean of a rank-{} tensor; only the mean over H and W (axes [1, 2]) of \
                 [1, H, W, C] is supported",
                op.ctx,
                x.tfl.len() + 1
            );
        };
        if axes != [1, 2] {
            bail!(
                "{}: a mean over axes {axes:?}; only the mean over H and W (axes [1, 2]) is \
                 supported",
                op.ctx
            );
        }
        let (rows, axis) = match x.layout {
            Layout::Chw => (vec![c, h * w], 1),
            Layout::AsIs => (vec![h * w, c], 0),
        };
        let out = if o.keep_dims {
            self.output_value(op, Layout::AsIs, &[1, 1, c])?
        } else {
            self.output_value(op, Layout::AsIs, &[c])?
        };
        let flat = self.emit(&op.ctx, OwnedOp::Reshape, vec![x.id], &rows, x.quant)?;
        if o.keep_dims {
            let mean = self.emit(
                &op.ctx,
                OwnedOp::MeanAxis { axis },
                vec![flat],
                &[c],
                out.quant,
            )?;
            self.emit_into(op, OwnedOp::Reshape, mean, &out)?;
        } else {
            self.emit_into(op, OwnedOp::MeanAxis { axis }, flat, &out)?;
        }
        Ok(())
    }

    /// RESHAPE: a row-major alias of the input in TFLite's order.
    pub(super) fn reshape(&mut self, op: &OpRef<'_>) -> Result<()> {
        op.arity(2, 1)?;
        let x = self.value(op, op.input(0)?)?;
        let x = self.as_is(&x, &op.ctx)?;
        let out = self.new_value(&op.ctx, op.output(), Some(Layout::AsIs))?;
        if out.tfl.iter().product::<usize>() != x.tfl.iter().product::<usize>() {
            bail!("{}: reshapes {:?} to {:?}", op.ctx, x.tfl, out.tfl);
        }
        self.same_quant(op, &x, &out)?;
        self.emit_into(op, OwnedOp::Reshape, x.id, &out)?;
        Ok(())
    }

    /// SOFTMAX over the last dim (TFLite's), β from the options; output scale 1/256, zero point
    /// −128 (what TFLite requires and the core produces).
    pub(super) fn softmax(&mut self, op: &OpRef<'_>) -> Result<()> {
        op.arity(1, 0)?;
        let o = owned!(op, SoftmaxOptions, tflite::SoftmaxOptions);
        let x = self.value(op, op.input(0)?)?;
        let x = self.as_is(&x, &op.ctx)?;
        let out = self.output_value(op, Layout::AsIs, &x.tfl.clone())?;
        let want = QuantParams {
            scale: 1.0 / 256.0,
            zero_point: -128,
        };
        if out.quant != want {
            bail!(
                "{}: output scale {} and zero point {}; int8 SOFTMAX writes scale 1/256, zero \
                 point −128",
                op.ctx,
                out.quant.scale,
                out.quant.zero_point
            );
        }
        if !(o.beta.is_finite() && o.beta > 0.0) {
            bail!("{}: beta {} (must be finite and > 0)", op.ctx, o.beta);
        }
        self.emit_into(op, OwnedOp::Softmax { beta: o.beta }, x.id, &out)?;
        Ok(())
    }

    /// Standalone RELU / RELU6 with the same quantization in and out (TFLite-Micro then
    /// requantizes by exactly 1, i.e. only clamps).
    pub(super) fn relu(&mut self, op: &OpRef<'_>, six: bool) -> Result<()> {
        op.arity(1, 0)?;
        let x = self.value(op, op.input(0)?)?;
        let out = self.output_value(op, x.layout, &x.tfl.clone())?;
        self.same_quant(op, &x, &out)?;
        let activation = if six {
            Activation::Relu6
        } else {
            Activation::Relu
        };
        self.emit_into(op, OwnedOp::Activation { activation }, x.id, &out)?;
        Ok(())
    }

    /// DEQUANTIZE of an int8 tensor to a float model output (see the module doc, "Float
    /// interface"): nothing is emitted; the model output is the int8 input, which the caller
    /// dequantizes with its scale and zero point.
    pub(super) fn dequantize_output(&mut self, op: &OpRef<'_>) -> Result<()> {
        op.arity(1, 0)?;
        let x = self.value(op, op.input(0)?)?;
        let out = op.outputs[0];
        let t = self.tfl.tensor(out)?;
        if !self.tfl.outputs.contains(&out) || t.ty != tflite::TensorType::Float32 {
            bail!(
                "{}: DEQUANTIZE is supported only as the last step to a float model output \
                 (this one writes {})",
                op.ctx,
                t.describe()
            );
        }
        if self.values.contains_key(&out) {
            bail!("{}: tensor {out} is written twice", op.ctx);
        }
        self.values.insert(out, x);
        Ok(())
    }

    /// PAD of H and W with the zero point (same quantization in and out): nothing is emitted;
    /// the padding is folded into the consuming CONV_2D / DEPTHWISE_CONV_2D, whose padded taps
    /// read the input zero point too. Any other consumer is an error then.
    pub(super) fn pad(&mut self, op: &OpRef<'_>) -> Result<()> {
        op.arity(2, 0)?;
        let src = op.input(0)?;
        // A PAD of a PAD folds into one padding.
        let (source, prior) = match self.pads.get(&src) {
            Some(p) => (p.source, p.pad),
            None => (src, [0; 4]),
        };
        let x = self.value(op, source)?;
        let pads_t = self.tfl.tensor(op.input(1)?)?;
        let pads: Vec<i64> = match pads_t.ty {
            tflite::TensorType::Int32 => constant(&op.ctx, &pads_t, 4)?
                .chunks_exact(4)
                .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            tflite::TensorType::Int64 => constant(&op.ctx, &pads_t, 8)?
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            other => bail!(
                "{}: paddings {} are {other:?}; int32 expected",
                op.ctx,
                pads_t.describe()
            ),
        };
        if x.tfl.len() != 3 || pads.len() != 8 {
            bail!("{}: only PAD of a [1, H, W, C] tensor is supported", op.ctx);
        }
        if pads[0] != 0 || pads[1] != 0 || pads[6] != 0 || pads[7] != 0 {
            bail!(
                "{}: paddings {pads:?} pad the batch or channel dim; only H and W are supported",
                op.ctx
            );
        }
        let p = |v: i64| {
            usize::try_from(v)
                .ok()
                .filter(|&v| v <= u16::MAX as usize)
                .ok_or_else(|| anyhow!("{}: padding {v}", op.ctx))
        };
        let own = [p(pads[2])?, p(pads[3])?, p(pads[4])?, p(pads[5])?];
        let pad: [usize; 4] = std::array::from_fn(|i| prior[i] + own[i]);
        let out_t = self.tfl.tensor(op.output())?;
        let quant = activation_quant(&op.ctx, &out_t)?;
        if quant != x.quant {
            bail!("{}: input and output quantization differ", op.ctx);
        }
        let want = [
            x.tfl[0] + pad[0] + pad[1],
            x.tfl[1] + pad[2] + pad[3],
            x.tfl[2],
        ];
        if out_t.shape.get(1..) != Some(&want[..]) {
            bail!(
                "{}: output shape {:?}; [1, {}, {}, {}] expected",
                op.ctx,
                out_t.shape,
                want[0],
                want[1],
                want[2]
            );
        }
        if self.values.contains_key(&op.output()) || self.pads.contains_key(&op.output()) {
            bail!("{}: tensor {} is written twice", op.ctx, op.output());
        }
        self.pads.insert(
            op.output(),
            PendingPad {
                op: op.index,
                source,
                pad,
            },
        );
        Ok(())
    }
}
