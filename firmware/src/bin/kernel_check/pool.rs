//! int8 average pools: the engine's `kernels::avg_pool2d_s8` (whole-row windows sum with the
//! `USADA8` word loop, `core/src/kernels/sum_s8.rs`) and `kernels::global_avg_pool_s8` against
//! a plain loop written here from TFLite's definition (the i32 sum of the in-bounds taps,
//! `acc > 0 ? (acc + n/2) / n : (acc − n/2) / n`, clamp), bit for bit, on random planes, windows,
//! strides, paddings and unaligned starts (global windows in one case of two); then timed on
//! DS-CNN's global pool (64 × 25 × 5).

use crate::Rng;
use denoiserep_core::kernels::params::{PoolParams, Window};
use denoiserep_core::kernels::{avg_pool2d_s8, global_avg_pool_s8, Chw};
use denoiserep_firmware::{exit, ExitCode, InstructionCounter};

/// Random pools.
const CASES: u32 = 2000;

/// TFLite's int8 average pool, one output at a time (independent of the core's code).
fn reference(p: &PoolParams, x: &[i8], oh: usize, ow: usize, y: &mut [i8]) {
    let win = p.window;
    let taps = |o: usize, s: usize, pad: usize, k: usize, len: usize| {
        let start = (o * s) as isize - pad as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + k as isize).max(0) as usize).min(len);
        (lo.min(len), hi.max(lo.min(len)))
    };
    let mut out = y.iter_mut();
    for plane in x.chunks_exact(p.h * p.w) {
        for oy in 0..oh {
            let (y0, y1) = taps(oy, win.sh, win.pad_top, win.kh, p.h);
            for ox in 0..ow {
                let (x0, x1) = taps(ox, win.sw, win.pad_left, win.kw, p.w);
                let mut acc = 0i32;
                for yy in y0..y1 {
                    for xx in x0..x1 {
                        acc += i32::from(plane[yy * p.w + xx]);
                    }
                }
                let n = ((y1 - y0) * (x1 - x0)).max(1) as i32;
                let avg = if acc > 0 {
                    (acc + n / 2) / n
                } else {
                    (acc - n / 2) / n
                };
                if let Some(o) = out.next() {
                    *o = avg.clamp(-128, 127) as i8;
                }
            }
        }
    }
}

fn mismatch(p: &PoolParams, at: usize, got: i8, want: i8) -> ! {
    let w = p.window;
    defmt::error!(
        "kernel_check MISMATCH avg_pool c={=usize} h={=usize} w={=usize} k={=usize}x{=usize} s={=usize}x{=usize} pad={=usize},{=usize},{=usize},{=usize} at={=usize} got={=i8} want={=i8}",
        p.channels, p.h, p.w, w.kh, w.kw, w.sh, w.sw, w.pad_top, w.pad_bottom, w.pad_left,
        w.pad_right, at, got, want
    );
    exit(ExitCode::RunFailed)
}

/// The random cases, then the timing; exits on the first mismatch.
pub fn run(counter: &InstructionCounter, buf: &mut [u8]) {
    const X: usize = 8192;
    if buf.len() < 3 * X + 4 {
        exit(ExitCode::ModelDoesNotFit)
    }
    // SAFETY: i8 and u8 have the same size, alignment and valid bit patterns.
    let all = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<i8>(), buf.len()) };
    let (x_all, rest) = all.split_at_mut(X + 4);
    let (y, rest) = rest.split_at_mut(X);
    let (y_ref, _) = rest.split_at_mut(X);
    let mut rng = Rng(0x9001_A5E5);
    let (mut cases, mut outputs) = (0u32, 0usize);
    for case in 0..CASES {
        let c = 1 + rng.below(4) as usize;
        let h = 1 + rng.below(30) as usize;
        let w = 1 + rng.below(30) as usize;
        let window = if case % 2 == 0 {
            Window {
                kh: h,
                kw: w,
                sh: 1 + rng.below(2) as usize,
                sw: 1 + rng.below(2) as usize,
                pad_top: 0,
                pad_bottom: 0,
                pad_left: 0,
                pad_right: 0,
            }
        } else {
            let (kh, kw) = (
                1 + rng.below(h as u32) as usize,
                1 + rng.below(w as u32) as usize,
            );
            let pad = |rng: &mut Rng, k: usize| rng.below(k as u32) as usize;
            Window {
                kh,
                kw,
                sh: 1 + rng.below(3) as usize,
                sw: 1 + rng.below(3) as usize,
                pad_top: pad(&mut rng, kh),
                pad_bottom: pad(&mut rng, kh),
                pad_left: pad(&mut rng, kw),
                pad_right: pad(&mut rng, kw),
            }
        };
        let Some((oh, ow)) = window.out_dims(h, w) else {
            continue;
        };
        let (n_in, n_out) = (c * h * w, c * oh * ow);
        if n_in > X || n_out > X {
            continue;
        }
        let start = rng.below(4) as usize; // unaligned planes
        let x = &mut x_all[start..start + n_in];
        let extreme = [-128i8, 127, -1, 0];
        let fill = rng.below(4);
        for v in x.iter_mut() {
            *v = if fill == 0 {
                rng.i8_from(&extreme[..2])
            } else {
                rng.i8()
            };
        }
        let p = PoolParams {
            channels: c,
            h,
            w,
            window,
        };
        let (y, y_ref) = (&mut y[..n_out], &mut y_ref[..n_out]);
        y.fill(0x55);
        reference(&p, x, oh, ow, y_ref);
        if avg_pool2d_s8(&p, x, y).is_err() {
            exit(ExitCode::RunFailed)
        }
        for (i, (&got, &want)) in y.iter().zip(y_ref.iter()).enumerate() {
            if got != want {
                mismatch(&p, i, got, want);
            }
        }
        // The Mean op's kernel on the same planes when the window is global.
        if case % 2 == 0 && oh == 1 && ow == 1 {
            y.fill(0x55);
            if global_avg_pool_s8(x, Chw { c, h, w }, y).is_err() || y != y_ref {
                mismatch(&p, 0, y[0], y_ref[0]);
            }
        }
        cases += 1;
        outputs += n_out;
    }
    // Timed: DS-CNN's global average pool, 64 channels of 25 × 5.
    let (c, h, w) = (64usize, 25usize, 5usize);
    let p = PoolParams {
        channels: c,
        h,
        w,
        window: Window {
            kh: h,
            kw: w,
            sh: 1,
            sw: 1,
            pad_top: 0,
            pad_bottom: 0,
            pad_left: 0,
            pad_right: 0,
        },
    };
    let x = &mut x_all[..c * h * w];
    for v in x.iter_mut() {
        *v = rng.i8();
    }
    let (y, y_ref) = (&mut y[..c], &mut y_ref[..c]);
    reference(&p, x, 1, 1, y_ref);
    let t0 = counter.count();
    let r = avg_pool2d_s8(&p, x, y);
    let t1 = counter.count();
    if r.is_err() || y != y_ref {
        exit(ExitCode::RunFailed)
    }
    defmt::info!(
        "avg_pool cases={=u32} outputs={=usize} mismatches=0 timed=64x25x5 instructions={=u64}",
        cases,
        outputs,
        t1 - t0
    );
}
