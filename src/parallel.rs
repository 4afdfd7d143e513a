//! Dealing independent pieces of work (runs of a comparison, jobs of a sweep) over threads.

use anyhow::{Result, bail};
use std::sync::mpsc::channel;
use std::sync::{Mutex, PoisonError};

/// Runs `work` on every item on up to `threads` scoped threads named `gradlab-{name}-{t}`,
/// calling `collect(index, result)` on the calling thread as each item ends (in the order they
/// end, not index order).
///
/// Items are handed out in index order, each to whichever thread is free next, so long and
/// short items balance out. `work` sees only its own item (a trainer with its own state and
/// seed), so an item's result is bit-identical whichever thread runs it and whatever
/// `threads` is. A thread that cannot be started only costs parallelism (the others take its
/// items; with none started the calling thread does the work). Fails when a thread panicked;
/// the items the other threads ran are still collected.
pub fn for_each_dealt<T: Send, R: Send>(
    name: &str,
    items: &mut [T],
    threads: usize,
    work: impl Fn(&mut T) -> R + Sync,
    mut collect: impl FnMut(usize, R),
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let workers = threads.clamp(1, items.len());
    let queue = Mutex::new(items.iter_mut().enumerate());
    // Nothing panics while the lock is held, so a poisoned lock still holds a sound iterator.
    let next = || queue.lock().unwrap_or_else(PoisonError::into_inner).next();
    std::thread::scope(|scope| {
        let (tx, rx) = channel();
        let mut handles = Vec::with_capacity(workers);
        for t in 0..workers {
            let tx = tx.clone();
            let (next, work) = (&next, &work);
            let spawned = std::thread::Builder::new()
                .name(format!("gradlab-{name}-{t}"))
                .spawn_scoped(scope, move || {
                    while let Some((index, item)) = next() {
                        if tx.send((index, work(item))).is_err() {
                            break;
                        }
                    }
                });
            if let Ok(handle) = spawned {
                handles.push(handle);
            }
        }
        // The workers hold the only senders left, so the loop ends when the last one exits.
        drop(tx);
        if handles.is_empty() {
            while let Some((index, item)) = next() {
                collect(index, work(item));
            }
            return Ok(());
        }
        for (index, result) in rx {
            collect(index, result);
        }
        let panicked = handles
            .into_iter()
            .map(|handle| handle.join())
            .filter(Result::is_err)
            .count();
        if panicked > 0 {
            bail!("{panicked} {name} thread(s) panicked");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_runs_once_and_results_do_not_depend_on_threads() {
        let expected: Vec<u64> = (0..23u64).map(|i| i * i + 1).collect();
        for threads in [0, 1, 2, 5, 64] {
            let mut items: Vec<u64> = (0..23).collect();
            let mut seen = vec![None; items.len()];
            for_each_dealt(
                "test",
                &mut items,
                threads,
                |x| {
                    *x = *x * *x + 1;
                    *x
                },
                |index, result| {
                    assert!(seen[index].is_none(), "index {index} collected twice");
                    seen[index] = Some(result);
                },
            )
            .expect("no worker panics");
            assert_eq!(items, expected, "threads = {threads}");
            let seen: Vec<u64> = seen.into_iter().map(|s| s.expect("collected")).collect();
            assert_eq!(seen, expected, "threads = {threads}");
        }
    }

    #[test]
    fn no_items_is_no_work() {
        let mut items: Vec<u8> = Vec::new();
        let mut calls = 0;
        for_each_dealt("test", &mut items, 4, |_| (), |_, ()| calls += 1).expect("nothing to do");
        assert_eq!(calls, 0);
    }

    #[test]
    fn a_panicking_item_is_an_error_and_the_others_still_finish() {
        let mut items: Vec<u32> = (0..8).collect();
        let mut collected = Vec::new();
        let outcome = for_each_dealt(
            "test",
            &mut items,
            2,
            |x| {
                assert_ne!(*x, 3, "item 3 fails on purpose");
                *x += 100;
            },
            |index, ()| collected.push(index),
        );
        assert!(outcome.is_err());
        collected.sort_unstable();
        assert_eq!(collected, [0, 1, 2, 4, 5, 6, 7]);
        assert_eq!(items[3], 3);
    }
}
