//! denoiserep-core: see issue 2 (being written).
#![no_std]
