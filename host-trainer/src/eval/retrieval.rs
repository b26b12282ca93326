//! Retrieval mAP and Rank-1 on embeddings (person re-identification protocol).
//!
//! Each query ranks the whole gallery by cosine similarity `q̂ · ĝ` (`v̂ = v / max(‖v‖, 1e-12)`),
//! descending, ties broken by ascending gallery index. With the relevant (same-label) gallery items
//! at ranks `r_1 < … < r_R` (1-based), `AP = (1/R) Σ_k k / r_k`; `mAP` is the mean AP over queries
//! with `R > 0` (the others are skipped) and Rank-1 the fraction of those queries whose rank-1
//! item is relevant.
//!
//! The fast path ([`retrieval`]) computes similarities for blocks of [`QUERY_BLOCK`] queries
//! (each gallery vector is loaded once per block; dot products use 8 partial sums), then ranks
//! each query's gallery with a stable LSD radix sort on the 32-bit order-preserving image of the
//! similarity (3 passes of 11/11/10 bits). Stability keeps gallery-index order among equal
//! similarities, so the ranking rule is exactly the reference's; only the dot-product summation
//! order differs (≤ a few ulp).

use super::Retrieval;

/// Queries whose similarities are computed together.
pub const QUERY_BLOCK: usize = 32;

/// Retrieval mAP and Rank-1 of `query` (`n_q × dim`, labels `query_labels`) against `gallery`
/// (`n_g × dim`, labels `gallery_labels`); see the module doc. Cost `O(n_q · n_g · dim)` for the
/// similarities plus `O(n_q · n_g)` for the ranking, spread over the available cores (the result
/// does not depend on the thread count). Panics when the lengths disagree with `dim`.
pub fn retrieval(
    query: &[f32],
    query_labels: &[u32],
    gallery: &[f32],
    gallery_labels: &[u32],
    dim: usize,
) -> Retrieval {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    retrieval_threads(query, query_labels, gallery, gallery_labels, dim, threads)
}

/// [`retrieval`] on at most `threads` threads (contiguous ranges of query blocks). Per-query APs
/// are summed in query order afterwards, so every thread count gives bit-identical results.
pub fn retrieval_threads(
    query: &[f32],
    query_labels: &[u32],
    gallery: &[f32],
    gallery_labels: &[u32],
    dim: usize,
    threads: usize,
) -> Retrieval {
    check_shapes(query, query_labels, gallery, gallery_labels, dim);
    let (q, g) = (normalized(query, dim), normalized(gallery, dim));
    let n_q = query_labels.len();
    let blocks = n_q.div_ceil(QUERY_BLOCK);
    let per_thread = blocks.div_ceil(threads.clamp(1, blocks.max(1))).max(1) * QUERY_BLOCK;
    // Per query: None = no relevant gallery item (skipped), Some((AP, rank-1 hit)).
    let mut results: Vec<Option<(f64, bool)>> = vec![None; n_q];
    std::thread::scope(|scope| {
        for ((out, labels), qs) in results
            .chunks_mut(per_thread)
            .zip(query_labels.chunks(per_thread))
            .zip(q.chunks(per_thread * dim))
        {
            let g = &g;
            scope.spawn(move || rank_queries(qs, labels, g, gallery_labels, dim, out));
        }
    });
    let (mut ap_sum, mut rank1, mut counted) = (0.0f64, 0usize, 0usize);
    for (ap, hit) in results.into_iter().flatten() {
        counted += 1;
        ap_sum += ap;
        rank1 += hit as usize;
    }
    let n = counted.max(1) as f64;
    Retrieval {
        map: ap_sum / n,
        rank1: rank1 as f64 / n,
    }
}

/// AP and rank-1 hit of each query in `q` (normalized, `labels.len() × dim`) into `out`.
fn rank_queries(
    q: &[f32],
    labels: &[u32],
    g: &[f32],
    gallery_labels: &[u32],
    dim: usize,
    out: &mut [Option<(f64, bool)>],
) {
    let n_g = gallery_labels.len();
    let mut sims = vec![0f32; QUERY_BLOCK * n_g];
    let mut ranker = Ranker::new(n_g);
    for ((block, labels), out) in q
        .chunks(QUERY_BLOCK * dim)
        .zip(labels.chunks(QUERY_BLOCK))
        .zip(out.chunks_mut(QUERY_BLOCK))
    {
        for (gi, gv) in g.chunks_exact(dim).enumerate() {
            let mut quads = block.chunks_exact(4 * dim);
            for (k, quad) in quads.by_ref().enumerate() {
                let (q01, q23) = quad.split_at(2 * dim);
                let (q0, q1) = q01.split_at(dim);
                let (q2, q3) = q23.split_at(dim);
                for (j, s) in dot4([q0, q1, q2, q3], gv).into_iter().enumerate() {
                    sims[(4 * k + j) * n_g + gi] = s;
                }
            }
            let done = (block.len() / dim) & !3;
            for (qj, qv) in quads.remainder().chunks_exact(dim).enumerate() {
                sims[(done + qj) * n_g + gi] = dot(qv, gv);
            }
        }
        for (qj, (&ql, slot)) in labels.iter().zip(out).enumerate() {
            let relevant = gallery_labels.iter().filter(|&&l| l == ql).count();
            if relevant == 0 {
                continue;
            }
            let order = ranker.rank(&sims[qj * n_g..(qj + 1) * n_g]);
            let (mut hits, mut ap) = (0usize, 0.0f64);
            for (rank, &gi) in order.iter().enumerate() {
                if gallery_labels[gi as usize] == ql {
                    hits += 1;
                    ap += hits as f64 / (rank + 1) as f64;
                    if hits == relevant {
                        break;
                    }
                }
            }
            *slot = Some((
                ap / relevant as f64,
                gallery_labels[order[0] as usize] == ql,
            ));
        }
    }
}

/// The straightforward reference: a full comparison sort of the gallery per query. Same
/// definition as [`retrieval`]; kept to verify it (about 10× slower).
pub fn retrieval_naive(
    query: &[f32],
    query_labels: &[u32],
    gallery: &[f32],
    gallery_labels: &[u32],
    dim: usize,
) -> Retrieval {
    check_shapes(query, query_labels, gallery, gallery_labels, dim);
    let (q, g) = (normalized(query, dim), normalized(gallery, dim));
    let (mut ap_sum, mut rank1, mut counted) = (0.0f64, 0usize, 0usize);
    let mut order: Vec<(f32, usize)> = Vec::with_capacity(gallery_labels.len());
    for (qi, &ql) in query_labels.iter().enumerate() {
        let qv = &q[qi * dim..(qi + 1) * dim];
        order.clear();
        order.extend(g.chunks(dim).enumerate().map(|(gi, gv)| {
            let s: f32 = qv.iter().zip(gv).map(|(a, b)| a * b).sum();
            (s, gi)
        }));
        order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let (mut hits, mut ap) = (0usize, 0.0f64);
        for (rank, &(_, gi)) in order.iter().enumerate() {
            if gallery_labels[gi] == ql {
                hits += 1;
                ap += hits as f64 / (rank + 1) as f64;
            }
        }
        if hits == 0 {
            continue;
        }
        counted += 1;
        ap_sum += ap / hits as f64;
        if gallery_labels[order[0].1] == ql {
            rank1 += 1;
        }
    }
    let n = counted.max(1) as f64;
    Retrieval {
        map: ap_sum / n,
        rank1: rank1 as f64 / n,
    }
}

fn check_shapes(
    query: &[f32],
    query_labels: &[u32],
    gallery: &[f32],
    gallery_labels: &[u32],
    dim: usize,
) {
    assert!(dim > 0, "retrieval: embedding dim must be positive");
    assert_eq!(
        query.len(),
        query_labels.len() * dim,
        "retrieval: query is not n_q × dim"
    );
    assert_eq!(
        gallery.len(),
        gallery_labels.len() * dim,
        "retrieval: gallery is not n_g × dim"
    );
    assert!(
        gallery_labels.len() < u32::MAX as usize,
        "retrieval: gallery too large"
    );
}

/// Rows scaled to unit L2 norm (`‖v‖` clamped below at 1e-12).
fn normalized(v: &[f32], dim: usize) -> Vec<f32> {
    v.chunks(dim)
        .flat_map(|r| {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            r.iter().map(move |x| x / n)
        })
        .collect()
}

/// Dot product with 8 partial sums (vectorizes without reassociation), fixed order.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7])) + tail
}

/// Four dot products against one gallery vector, each bit-identical to [`dot`] (same partial
/// sums, same final order); the gallery vector is loaded once for the four.
fn dot4(q: [&[f32]; 4], g: &[f32]) -> [f32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = ([0f32; 8], [0f32; 8], [0f32; 8], [0f32; 8]);
    let n = g.len();
    for ((((gc, c0), c1), c2), c3) in g
        .chunks_exact(8)
        .zip(q[0][..n].chunks_exact(8))
        .zip(q[1][..n].chunks_exact(8))
        .zip(q[2][..n].chunks_exact(8))
        .zip(q[3][..n].chunks_exact(8))
    {
        for k in 0..8 {
            a0[k] += c0[k] * gc[k];
            a1[k] += c1[k] * gc[k];
            a2[k] += c2[k] * gc[k];
            a3[k] += c3[k] * gc[k];
        }
    }
    let n8 = g.len() / 8 * 8;
    let mut out = [0f32; 4];
    for ((o, a), qv) in out.iter_mut().zip([a0, a1, a2, a3]).zip(q) {
        let tail: f32 = qv[n8..].iter().zip(&g[n8..]).map(|(x, y)| x * y).sum();
        *o = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7])) + tail;
    }
    out
}

/// Key whose ascending `u32` order is descending `f32::total_cmp` order.
fn descending_key(s: f32) -> u32 {
    let b = s.to_bits();
    let ascending = if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    };
    !ascending
}

/// Stable LSD radix sort of gallery indices by descending similarity; reuses its buffers.
struct Ranker {
    keys: Vec<u32>,
    a: Vec<u32>,
    b: Vec<u32>,
}

impl Ranker {
    const PASSES: [(u32, usize); 3] = [(0, 11), (11, 11), (22, 10)];

    fn new(n: usize) -> Self {
        Self {
            keys: vec![0; n],
            a: vec![0; n],
            b: vec![0; n],
        }
    }

    /// Gallery indices, most similar first; equal similarities in ascending index order.
    fn rank(&mut self, sims: &[f32]) -> &[u32] {
        let mut counts = [[0u32; 2048]; 3];
        for (k, &s) in self.keys.iter_mut().zip(sims) {
            *k = descending_key(s);
            for (c, &(shift, bits)) in counts.iter_mut().zip(&Self::PASSES) {
                c[((*k >> shift) as usize) & ((1 << bits) - 1)] += 1;
            }
        }
        for (i, v) in self.a.iter_mut().enumerate() {
            *v = i as u32;
        }
        for (c, &(shift, bits)) in counts.iter_mut().zip(&Self::PASSES) {
            let mut sum = 0;
            for slot in c.iter_mut() {
                let n = *slot;
                *slot = sum;
                sum += n;
            }
            let mask = (1u32 << bits) - 1;
            for &i in &self.a {
                let bucket = ((self.keys[i as usize] >> shift) & mask) as usize;
                self.b[c[bucket] as usize] = i;
                c[bucket] += 1;
            }
            std::mem::swap(&mut self.a, &mut self.b);
        }
        &self.a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_matches_total_cmp_descending() {
        let v = [
            1.0f32,
            -0.0,
            0.0,
            -1.0,
            0.5,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            0.25,
            -0.5,
        ];
        for &a in &v {
            for &b in &v {
                assert_eq!(
                    descending_key(a).cmp(&descending_key(b)),
                    b.total_cmp(&a),
                    "{a} {b}"
                );
            }
        }
    }

    #[test]
    fn dot4_equals_dot_bitwise() {
        for dim in [1, 7, 8, 13, 128, 131] {
            let v: Vec<f32> = (0..5 * dim)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let q: Vec<&[f32]> = v.chunks(dim).collect();
            let four = dot4([q[0], q[1], q[2], q[3]], q[4]);
            for j in 0..4 {
                assert_eq!(
                    four[j].to_bits(),
                    dot(q[j], q[4]).to_bits(),
                    "dim {dim} query {j}"
                );
            }
        }
    }

    #[test]
    fn ranker_is_stable_descending() {
        let sims = [0.1f32, 0.9, 0.1, -0.3, 0.9, 0.5];
        let mut r = Ranker::new(sims.len());
        assert_eq!(r.rank(&sims), &[1, 4, 5, 0, 2, 3]);
    }

    #[test]
    fn hand_computed_ap() {
        // One query along x; gallery similarities 1, 0.8 (other label), 0.6, -1 (other label).
        let q = [1.0, 0.0];
        let g = [2.0, 0.0, 0.8, 0.6, 0.6, 0.8, -1.0, 0.0];
        let r = retrieval(&q, &[1], &g, &[1, 0, 1, 0], 2);
        // Relevant at ranks 1 and 3: AP = (1/1 + 2/3) / 2.
        assert!((r.map - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(r.rank1, 1.0);
        assert_eq!(r, retrieval_naive(&q, &[1], &g, &[1, 0, 1, 0], 2));
    }
}
