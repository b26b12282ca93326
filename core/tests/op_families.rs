//! Op families compiled out: with the cargo features `ops-conv`, `ops-pool`, `ops-graph` and
//! `ops-attention` (all on by default), a model loads exactly when every op family it uses is
//! compiled in, and otherwise is refused at load with `OpNotCompiledIn` naming its first op of a
//! missing family (never a panic, never a failure at run time). scripts/test.sh runs this file
//! with the default features and with `--no-default-features` (and one partial set), so both
//! sides of every `cfg` are exercised; the expectation below is a table written here, not the
//! core's own `compiled_in`.

mod common;

use common::{
    dw_separable, residual_cnn, small_cnn, small_mlp, vit_model, OwnedModel, OwnedOp, VitWeights,
};
use denoiserep_core::{Error, Model};

/// The cargo feature an op needs, `None` for the always-compiled ones.
fn family(op: &OwnedOp) -> Option<&'static str> {
    match op {
        OwnedOp::Linear { .. }
        | OwnedOp::Act(_)
        | OwnedOp::Reshape
        | OwnedOp::Quantize
        | OwnedOp::Dequantize => None,
        OwnedOp::Conv2d { .. } | OwnedOp::Depthwise { .. } => Some("ops-conv"),
        OwnedOp::MaxPool(_) | OwnedOp::AvgPool(_) | OwnedOp::Mean | OwnedOp::MeanAxis { .. } => {
            Some("ops-pool")
        }
        OwnedOp::Add { .. } | OwnedOp::Concat { .. } | OwnedOp::Slice { .. } => Some("ops-graph"),
        OwnedOp::Softmax { .. }
        | OwnedOp::LayerNorm { .. }
        | OwnedOp::Gelu
        | OwnedOp::Lut
        | OwnedOp::BatchMatMul { .. }
        | OwnedOp::Transpose(_) => Some("ops-attention"),
    }
}

/// Whether this test binary's package features include `feature`.
fn enabled(feature: &str) -> bool {
    match feature {
        "ops-conv" => cfg!(feature = "ops-conv"),
        "ops-pool" => cfg!(feature = "ops-pool"),
        "ops-graph" => cfg!(feature = "ops-graph"),
        "ops-attention" => cfg!(feature = "ops-attention"),
        other => panic!("unknown op family {other}"),
    }
}

fn models() -> Vec<(&'static str, OwnedModel)> {
    // The f32 ViT as built (its int8 version needs the f32 one to run for calibration).
    let (vit, _) = vit_model(&VitWeights::new(5), None);
    vec![
        ("small_mlp", small_mlp(1)),
        ("small_cnn", small_cnn(2)),
        ("residual_cnn", residual_cnn(3)),
        ("dw_separable", dw_separable(4)),
        ("vit", vit),
    ]
}

#[test]
fn a_model_loads_exactly_when_its_op_families_are_compiled_in() {
    let mut refused = 0;
    for (name, model) in models() {
        // Unvalidated bytes: `encode` itself validates with this build's ops.
        let file = model.raw();
        let missing = model
            .nodes
            .iter()
            .position(|n| family(&n.op).is_some_and(|f| !enabled(f)));
        match (missing, Model::from_bytes(&file)) {
            (None, Ok(m)) => {
                let mut arena = vec![0u8; m.arena_size()];
                let input = vec![0.25f32; m.input_len()];
                m.run(&input, &mut arena)
                    .unwrap_or_else(|e| panic!("{name}: loads but does not run: {e:?}"));
            }
            (None, Err(e)) => panic!("{name}: every family is compiled in, yet {e:?}"),
            (Some(op), Ok(_)) => panic!("{name}: op {op} is not compiled in, yet the model loads"),
            (Some(op), Err(e)) => {
                assert_eq!(e, Error::OpNotCompiledIn { op: op as u16 }, "{name}");
                refused += 1;
            }
        }
    }
    let all = ["ops-conv", "ops-pool", "ops-graph", "ops-attention"];
    if all.iter().all(|f| enabled(f)) {
        assert_eq!(refused, 0);
    } else if !all.iter().any(|f| enabled(f)) {
        // Only the MLP is left.
        assert_eq!(refused, 4, "without any op family only the MLP loads");
    }
}
