//! Shared helpers for the cross-crate integration tests in `tests/tests/`.

pub mod device;

/// The core's test-model builders and int8 quantizer (`core/tests/common/`), shared so that the
/// device tests build exactly the models the core's own tests use.
#[path = "../core/tests/common/mod.rs"]
pub mod models;
