//! Dealing independent pieces of work over threads: runs of a comparison and jobs of a sweep
//! ([`for_each_dealt`]), and the shards of one run's batch ([`run_shards`]) on a persistent
//! worker; and how many threads each run gets ([`threads_per_run`]).

pub mod handoff;

use anyhow::{Result, bail};
use std::sync::mpsc::channel;
use std::sync::{Mutex, PoisonError};

/// Most threads one run uses: its batch is cut into at most this many shards.
pub const RUN_THREADS: usize = 2;

/// The machine's cores as the OS reports them (1 when it cannot say).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Threads each of `runs` runs gets when they share `budget` threads: a lone run takes up to
/// [`RUN_THREADS`]; runs that share the machine (a comparison, forks, a sweep's jobs) get the
/// budget divided, at least 1 each, so no run's shards compete with another run for a core.
/// Results never depend on it (a run's shards are fixed; threads only run them side by side).
pub fn threads_per_run(budget: usize, runs: usize) -> usize {
    (budget / runs.max(1)).clamp(1, RUN_THREADS)
}

/// Runs `work` on every shard: with `threads` > 1 the first on the calling thread and the
/// others on the persistent shard worker ([`handoff::Handoff`]; no thread is started per
/// call), else one after the other here. Each shard's result depends on the shard alone, so
/// which thread ran it never shows. A panic in a shard is raised again here once every shard
/// has ended. Returns the threads the shards ran on.
pub fn run_shards<T: Send>(
    shards: &mut [T],
    threads: usize,
    work: impl Fn(&mut T) + Sync,
) -> usize {
    let handoff = handoff::Handoff::shared().filter(|_| threads > 1 && shards.len() > 1);
    let (Some(handoff), Some((first, rest))) = (handoff, shards.split_first_mut()) else {
        shards.iter_mut().for_each(work);
        return 1;
    };
    let work = &work;
    let mut theirs = || rest.iter_mut().for_each(work);
    if handoff.join(|| work(first), &mut theirs) {
        RUN_THREADS
    } else {
        1
    }
}

/// The first index where the running total of `sizes` reaches half of their sum: cutting
/// there gives two runs of about equal work.
pub fn balanced_split(sizes: impl Iterator<Item = usize> + Clone) -> usize {
    let total: usize = sizes.clone().sum();
    let (mut running, mut count) = (0, 0);
    for (index, size) in sizes.enumerate() {
        if index > 0 && 2 * running >= total {
            return index;
        }
        running += size;
        count = index + 1;
    }
    count
}

/// `f` of every item, in item order, the items cut into up to `threads` contiguous parts run
/// as shards ([`run_shards`]: the calling thread and the persistent shard worker). Each result
/// depends on its item alone, so the output is the same on any number of threads.
pub fn map_in_order<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let parts = threads.clamp(1, RUN_THREADS);
    let chunk = items.len().div_ceil(parts).max(1);
    let mut work: Vec<(&[T], Vec<R>)> = items.chunks(chunk).map(|c| (c, Vec::new())).collect();
    run_shards(&mut work, threads, |(part, out)| {
        *out = part.iter().map(&f).collect();
    });
    work.into_iter().flat_map(|(_, out)| out).collect()
}

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
    fn shards_run_once_each_on_any_thread_count_and_panics_come_back() {
        for threads in [1, 2, 3] {
            let mut shards: Vec<u64> = (0..5).collect();
            let used = run_shards(&mut shards, threads, |x| *x = *x * 10 + 1);
            assert_eq!(shards, [1, 11, 21, 31, 41], "threads = {threads}");
            assert!((1..=RUN_THREADS).contains(&used));
        }
        let mut shards = [0u8, 1];
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_shards(&mut shards, 2, |x| {
                assert_eq!(*x, 0, "shard 1 fails on purpose")
            });
        }));
        assert!(outcome.is_err());
    }

    #[test]
    fn a_balanced_split_halves_the_work() {
        assert_eq!(balanced_split([4, 4, 4, 4].into_iter()), 2);
        assert_eq!(balanced_split([1, 100, 1].into_iter()), 2);
        assert_eq!(balanced_split([100, 1, 1].into_iter()), 1);
        assert_eq!(balanced_split([7].into_iter()), 1);
        assert_eq!(balanced_split(std::iter::empty()), 0);
    }

    #[test]
    fn a_lone_run_gets_two_threads_and_runs_sharing_get_one_each() {
        assert_eq!(threads_per_run(2, 1), 2);
        assert_eq!(threads_per_run(16, 1), RUN_THREADS);
        assert_eq!(threads_per_run(2, 2), 1);
        assert_eq!(threads_per_run(2, 4), 1);
        assert_eq!(threads_per_run(1, 1), 1);
        assert_eq!(threads_per_run(0, 0), 1);
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
