//! Keeping the server on one CPU when its database is SQLite (`sqlite_one_cpu`).
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement to it
//! and every row back through channels, so a statement costs two thread wake-ups. Between
//! two CPUs each wake-up is an inter-processor interrupt (on a virtual machine, an exit to
//! the hypervisor), and SQLite's one writer holds the write lock through all of them: on
//! the project's 2-core machine that, not SQLite, was the ceiling for writes. With the
//! tokio workers and the SQLite threads on one CPU a wake-up is a plain context switch, and
//! SCIM creates ran 2.1 times as fast (docs/performance.md).
//!
//! [`pin_to_one_cpu`] runs on the main thread before the runtime starts, so every thread
//! started afterwards (tokio's workers, which then number one, and each connection's
//! thread) inherits it. Deliberately slow work on the blocking pool (password hashing)
//! calls [`widen_current_thread`] first, so it never competes with the requests' CPU.

#[cfg(target_os = "linux")]
mod imp {
    use std::{mem, sync::OnceLock};

    /// The CPUs the process was given before it was pinned.
    static GIVEN: OnceLock<libc::cpu_set_t> = OnceLock::new();

    fn current() -> Option<libc::cpu_set_t> {
        // SAFETY: cpu_set_t is plain data, and the kernel writes at most its size.
        unsafe {
            let mut set: libc::cpu_set_t = mem::zeroed();
            (libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) == 0)
                .then_some(set)
        }
    }

    fn apply(set: &libc::cpu_set_t) -> bool {
        // SAFETY: pid 0 is the calling thread; the set is a valid cpu_set_t.
        unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), set) == 0 }
    }

    pub fn pin_to_one_cpu() -> Option<usize> {
        let given = current()?;
        let first = (0..libc::CPU_SETSIZE as usize).find(|&cpu| {
            // SAFETY: cpu is below CPU_SETSIZE.
            unsafe { libc::CPU_ISSET(cpu, &given) }
        })?;
        // SAFETY: cpu_set_t is plain data; first is below CPU_SETSIZE.
        let one = unsafe {
            let mut one: libc::cpu_set_t = mem::zeroed();
            libc::CPU_SET(first, &mut one);
            one
        };
        if !apply(&one) {
            return None;
        }
        let _ = GIVEN.set(given);
        Some(first)
    }

    pub fn widen_current_thread() {
        if let Some(given) = GIVEN.get() {
            apply(given);
        }
    }

    pub fn allowed_cpus() -> usize {
        // SAFETY: the set came from the kernel.
        current().map_or(0, |set| unsafe { libc::CPU_COUNT(&set) } as usize)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn pin_to_one_cpu() -> Option<usize> {
        None
    }
    pub fn widen_current_thread() {}
    pub fn allowed_cpus() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}

/// Pins the calling thread, and every thread it starts from now on, to the first CPU it
/// may run on. Returns that CPU, or `None` where the system does not let it (then nothing
/// changed). Call it before any other thread exists.
pub fn pin_to_one_cpu() -> Option<usize> {
    imp::pin_to_one_cpu()
}

/// Lets the calling thread run on every CPU the process was given again, after
/// [`pin_to_one_cpu`]; without a pin it does nothing.
pub fn widen_current_thread() {
    imp::widen_current_thread()
}

/// How many CPUs the calling thread may run on now.
pub fn allowed_cpus() -> usize {
    imp::allowed_cpus()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a thread of its own, as pins are per thread: pinned to one CPU, then given every
    /// CPU back.
    #[test]
    fn a_pinned_thread_runs_on_one_cpu_until_widened() {
        std::thread::spawn(|| {
            let before = allowed_cpus();
            assert!(before >= 1);
            let cpu = pin_to_one_cpu().expect("Linux lets a thread pin itself");
            assert_eq!(allowed_cpus(), 1, "pinned to CPU {cpu}");
            // Threads started from a pinned thread inherit the pin.
            let inherited = std::thread::spawn(allowed_cpus).join().unwrap();
            assert_eq!(inherited, 1);
            widen_current_thread();
            assert_eq!(allowed_cpus(), before);
        })
        .join()
        .unwrap();
    }
}
