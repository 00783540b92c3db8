//! Data-parallel loops for the CPU ops written here (`cpu_layers`, `bert`).

use std::sync::Mutex;

/// Runs `f` on each item, spread over candle's CPU threads: the barrier pool that candle-core 0.11
/// runs its own elementwise ops on, its workers spinning for a while after each. On rayon's pool
/// instead, the two pools had twice as many busy threads as cores between them, and candle's
/// spinning took a core from ours (`perf`, a CNN training step on 2 cores).
///
/// The pool runs one loop at a time: `f` must not start parallel work itself (a candle op on a
/// large tensor included), or the calling thread waits on itself.
pub fn for_each_parallel<I: Send>(items: impl Iterator<Item = I>, f: impl Fn(I) + Sync) {
    let items: Vec<Mutex<Option<I>>> = items.map(|item| Mutex::new(Some(item))).collect();
    candle_core::utils::barrier_pool().execute_chunked(items.len(), |range| {
        for item in &items[range] {
            // Each index is handed out once, so each item is taken once, uncontended.
            if let Some(item) = item.lock().ok().and_then(|mut item| item.take()) {
                f(item);
            }
        }
    });
}

/// `[f(0), f(1), ..., f(n - 1)]`, computed as [`for_each_parallel`] does.
pub fn map_parallel<T: Send + Default + Clone>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let mut out = vec![T::default(); n];
    for_each_parallel(out.iter_mut().enumerate(), |(i, slot)| *slot = f(i));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_item_runs_once_and_each_result_lands_in_its_place() {
        let mut out = vec![0u32; 1000];
        for_each_parallel(out.chunks_mut(7).enumerate(), |(i, chunk)| {
            chunk.iter_mut().for_each(|v| *v += i as u32 + 1)
        });
        let expected: Vec<u32> = (0..1000).map(|j| j / 7 + 1).collect();
        assert_eq!(out, expected);
        assert_eq!(
            map_parallel(50, |i| i * i),
            (0..50).map(|i| i * i).collect::<Vec<_>>()
        );
        for_each_parallel(std::iter::empty::<u8>(), |_| panic!("no items, no calls"));
    }
}
