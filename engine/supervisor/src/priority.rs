//! Scheduling priority for the engine's batch work. On a busy machine, admitting and
//! acknowledging submissions is what clients wait on; running jobs and signing receipts can
//! yield to it. With spare CPU, a lower priority costs nothing. (Measured with `engine_load` on 2
//! cores: more submissions accepted per second, and sooner, with the heads at niceness 10 than
//! at 0; the numbers are in benches/RESULTS.md.)

/// The niceness a head runs at (0 is normal, 19 the lowest priority).
pub const HEAD_NICENESS: i32 = 10;

/// Lowers the calling thread's priority to `niceness`, and so that of every thread it starts
/// afterwards (Linux sets niceness per thread). Elsewhere, or if refused, nothing changes.
pub fn lower_priority(niceness: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's own id; failure only leaves the priority as it was.
    unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, niceness);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = niceness;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    fn niceness_of_this_thread() -> i32 {
        // SAFETY: getpriority of this thread's own id.
        unsafe {
            let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::getpriority(libc::PRIO_PROCESS, thread)
        }
    }

    #[test]
    fn a_thread_lowered_passes_its_priority_to_its_threads_and_no_other() {
        let before = niceness_of_this_thread();
        let (lowered, child) = std::thread::spawn(move || {
            super::lower_priority(before + 3);
            let child = std::thread::spawn(niceness_of_this_thread).join().unwrap();
            (niceness_of_this_thread(), child)
        })
        .join()
        .unwrap();
        assert_eq!((lowered, child), (before + 3, before + 3));
        assert_eq!(niceness_of_this_thread(), before);
    }
}
