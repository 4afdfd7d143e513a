//! The persistent worker that runs the second shard of a run's batch, handed its work by a
//! spin-then-park handshake.
//!
//! Steps come back to back (a depth-8 step takes ~0.4 ms), so the worker is needed again
//! within microseconds of finishing. A sleeping thread costs a futex wake to start, and on a
//! virtual machine that is an inter-processor interrupt through the hypervisor: with rayon's
//! pool (whose workers sleep after a few yields) waking the worker and being woken back took
//! ~15 % of a depth-8 run's trainer thread in a perf profile. Here each side spins for up to
//! [`SPIN`] before it parks, so a run that steps continuously never sleeps between steps,
//! and an idle run (paused, finished) costs nothing after it.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock, TryLockError};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Longest either side busy-waits for the other before it parks.
pub const SPIN: Duration = Duration::from_micros(500);

/// How long a wait spins without giving up its core (see `wait_for`).
pub const SPIN_ALONE: Duration = Duration::from_micros(50);

/// The slot holds nothing to run.
const IDLE: u8 = 0;
/// The caller has posted a job.
const POSTED: u8 = 1;
/// The worker has finished the job (its panic, if any, is in the slot).
const DONE: u8 = 2;

/// A job borrowed from the caller's stack, with its lifetime erased: the caller does not
/// return before the worker has marked it done, so the borrow outlives every use.
struct Job {
    run: *mut (dyn FnMut() + Send),
    caller: Thread,
}

/// What the caller and the worker share.
struct Slot {
    state: AtomicU8,
    /// Written by the caller before POSTED and by the worker before DONE; read by the
    /// other side only after seeing that state (Acquire), so never at the same time.
    job: UnsafeCell<Option<Job>>,
    panic: UnsafeCell<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `job` and `panic` are accessed only by the side that owns the slot in the current
// state (see `Slot`), with Release/Acquire on `state` ordering the accesses; the job's
// closure is Send.
unsafe impl Sync for Slot {}
unsafe impl Send for Job {}

/// The worker thread and its slot; one caller at a time holds `user`.
pub struct Handoff {
    slot: &'static Slot,
    worker: Thread,
    user: Mutex<()>,
}

impl Handoff {
    /// The process's worker (thread `gradlab-shard-0`), started on first use; None when no
    /// thread can be started.
    pub fn shared() -> Option<&'static Handoff> {
        static HANDOFF: OnceLock<Option<Handoff>> = OnceLock::new();
        HANDOFF.get_or_init(Handoff::start).as_ref()
    }

    fn start() -> Option<Handoff> {
        let slot: &'static Slot = Box::leak(Box::new(Slot {
            state: AtomicU8::new(IDLE),
            job: UnsafeCell::new(None),
            panic: UnsafeCell::new(None),
        }));
        let handle = std::thread::Builder::new()
            .name("gradlab-shard-0".into())
            .spawn(move || serve(slot))
            .ok()?;
        Some(Handoff {
            slot,
            worker: handle.thread().clone(),
            user: Mutex::new(()),
        })
    }

    /// Runs `theirs` on the worker while `ours` runs here; returns when both have ended,
    /// raising a panic of either here. When another caller holds the worker, both run here,
    /// one after the other (results never depend on which thread ran a piece). Returns
    /// whether the worker took part.
    pub fn join(&self, ours: impl FnOnce(), theirs: &mut (dyn FnMut() + Send)) -> bool {
        // The lock only takes turns: nothing is left half-done under it, so a poisoned one
        // is as good.
        let user = match self.user.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                ours();
                theirs();
                return false;
            }
        };
        // SAFETY: the closure is only used until the worker marks the job DONE, and this
        // function does not return (or unwind) before it has seen DONE.
        let run: *mut (dyn FnMut() + Send + 'static) = unsafe { std::mem::transmute(theirs) };
        // SAFETY: the state is IDLE, so the worker does not touch the slot.
        unsafe {
            *self.slot.job.get() = Some(Job {
                run,
                caller: std::thread::current(),
            });
        }
        self.slot.state.store(POSTED, Ordering::Release);
        self.worker.unpark();
        let ours = catch_unwind(AssertUnwindSafe(ours));
        wait_for(&self.slot.state, DONE);
        // SAFETY: the state is DONE: the worker has finished with the slot.
        let theirs = unsafe { (*self.slot.panic.get()).take() };
        self.slot.state.store(IDLE, Ordering::Release);
        drop(user);
        if let Err(panic) = ours {
            resume_unwind(panic);
        }
        if let Some(panic) = theirs {
            resume_unwind(panic);
        }
        true
    }
}

/// Spins until `state` holds `wanted`, for up to [`SPIN`], then parks until it does: the other
/// side unparks this thread after storing it, and an unpark that comes before the park is
/// kept, so none is lost. A stale wake-up only makes the loop check once more. Past
/// [`SPIN_ALONE`] the spin yields the core at each check: when more threads want the cores
/// than there are (several runs, a test suite), the thread this one waits for may be the one
/// waiting for a core.
fn wait_for(state: &AtomicU8, wanted: u8) {
    let start = Instant::now();
    let mut spins = 0u32;
    while state.load(Ordering::Acquire) != wanted {
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) {
            std::hint::spin_loop();
            continue;
        }
        let waited = start.elapsed();
        if waited < SPIN_ALONE {
            std::hint::spin_loop();
        } else if waited < SPIN {
            std::thread::yield_now();
        } else {
            std::thread::park();
        }
    }
}

/// The worker's loop: wait for a job, run it, hand the slot back.
fn serve(slot: &'static Slot) {
    loop {
        wait_for(&slot.state, POSTED);
        // SAFETY: the state is POSTED: the caller has finished writing the job and waits.
        let Some(job) = (unsafe { (*slot.job.get()).take() }) else {
            continue;
        };
        // SAFETY: the caller keeps the closure alive until it sees DONE (see `Job`).
        let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { (&mut *job.run)() }));
        // SAFETY: still POSTED: the caller reads the panic only after DONE.
        unsafe {
            *slot.panic.get() = outcome.err();
        }
        slot.state.store(DONE, Ordering::Release);
        job.caller.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn handoff() -> &'static Handoff {
        Handoff::shared().expect("the test machine can start a thread")
    }

    #[test]
    fn the_worker_runs_its_part_on_its_own_thread() {
        // Other tests may hold the worker; retry until this call gets it.
        for _ in 0..1000 {
            let mut name = None;
            let mut theirs = || name = std::thread::current().name().map(str::to_string);
            if handoff().join(|| (), &mut theirs) {
                assert_eq!(name.as_deref(), Some("gradlab-shard-0"));
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the worker was never free");
    }

    #[test]
    fn a_panic_on_either_side_comes_back_and_the_worker_serves_on() {
        for side in ["ours", "theirs"] {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let mut theirs = || assert_ne!(side, "theirs", "the worker's part fails");
                handoff().join(|| assert_ne!(side, "ours", "our part fails"), &mut theirs);
            }));
            assert!(outcome.is_err(), "{side}");
        }
        let mut ran = false;
        let mut theirs = || ran = true;
        handoff().join(|| (), &mut theirs);
        assert!(ran);
    }

    #[test]
    fn callers_on_many_threads_and_nested_calls_all_finish_exactly_once() {
        let count = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        let mut theirs = || {
                            // A call from inside the worker's part runs here, in turn.
                            let mut inner = || {
                                count.fetch_add(1, Ordering::Relaxed);
                            };
                            handoff().join(|| (), &mut inner);
                            count.fetch_add(1, Ordering::Relaxed);
                        };
                        handoff().join(
                            || {
                                count.fetch_add(1, Ordering::Relaxed);
                            },
                            &mut theirs,
                        );
                    }
                });
            }
        });
        assert_eq!(count.load(Ordering::Relaxed), 4 * 200 * 3);
    }
}
