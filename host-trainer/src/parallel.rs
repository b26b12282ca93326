//! Work spread over threads with results in input order (tch-free: the data loaders use it too).

use anyhow::Result;

/// Runs `work` over the items `0..n` split into at most `threads` contiguous ranges of equal
/// size (the last one shorter), one scoped thread each, and returns the ranges' results in item
/// order, or the error of the first range (in item order) that failed. Results never depend on
/// the thread count as long as `work` on a range depends only on that range (callers give each
/// range its own scratch, e.g. an arena).
pub fn par_chunks<R: Send>(
    n: usize,
    threads: usize,
    work: impl Fn(std::ops::Range<usize>) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let per_range = n.div_ceil(threads.max(1)).max(1);
    let work = &work;
    let parts: Vec<Result<R>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(per_range)
            .map(|start| scope.spawn(move || work(start..(start + per_range).min(n))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    });
    parts.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_item_once_in_order_for_any_thread_count() {
        for threads in [1, 2, 3, 7, 20] {
            let parts = par_chunks(10, threads, |r| Ok(r.collect::<Vec<_>>())).unwrap();
            assert!(parts.len() <= threads);
            assert_eq!(parts.concat(), (0..10).collect::<Vec<_>>(), "{threads}");
        }
        assert!(par_chunks(0, 4, |_| Ok(())).unwrap().is_empty());
        let e = par_chunks(10, 5, |r| {
            if r.contains(&3) || r.contains(&8) {
                anyhow::bail!("range {r:?}")
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "range 2..4",
            "the first failing range in item order"
        );
    }
}
