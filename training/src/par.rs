//! Per-device work split over the machine's cores, results in device order
//! (so output never depends on thread timing).

use std::thread;

/// Applies `f` to every item, using up to `available_parallelism` threads,
/// and returns the results in input order.
pub(crate) fn map_devices<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len().max(1));
    if threads <= 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                // A panic in `f` is a bug; surface it where it happened.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}
