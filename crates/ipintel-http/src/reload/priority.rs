//! A low CPU priority for the reload thread.
//!
//! A rebuild takes seconds of CPU, and the HTTP workers use every core
//! under load: at the same priority the rebuild would take a share of each
//! core from the requests for as long as it runs. At the lowest priority it
//! gets the CPU the requests leave over, and takes longer when they leave
//! little. The threads that the build starts inherit the priority.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the first failure to lower a priority has been logged as a
/// warning; later ones are logged at debug level.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Lowers the calling thread's CPU priority to the lowest of its platform:
/// on Linux `SCHED_BATCH` at nice 19, on macOS and Windows the lowest
/// priority of the thread API. Where that fails or is not supported, the
/// thread keeps its priority and the reload runs all the same.
pub(super) fn lower_current_thread() {
    let Err(error) = lower() else {
        tracing::debug!(policy = POLICY, "reload thread runs at a low CPU priority");
        return;
    };
    if WARNED.swap(true, Ordering::Relaxed) {
        tracing::debug!(%error, "cannot lower the reload thread's CPU priority");
    } else {
        tracing::warn!(
            %error,
            "cannot lower the reload thread's CPU priority; reloads compete with requests for the CPU"
        );
    }
}

#[cfg(target_os = "linux")]
const POLICY: &str = "SCHED_BATCH, nice 19";

/// `SCHED_BATCH` at nice 19 rather than `SCHED_IDLE`: measured under load,
/// the idle policy kept no more of the requests' throughput and made the
/// reloads longer, and it leaves a thread even less CPU (a weight of 3
/// against 15) while it holds something the request threads may wait for,
/// such as the lock of the process's memory map while it maps or unmaps.
#[cfg(target_os = "linux")]
fn lower() -> Result<(), String> {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    use thread_priority::ThreadPriority;

    // Both calls act on the calling thread: the policy through its
    // pthread, the nice value (per thread on Linux) through setpriority.
    let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, batch)
        .map_err(|e| e.to_string())
}

#[cfg(any(target_os = "macos", windows))]
const POLICY: &str = "lowest thread priority";

#[cfg(any(target_os = "macos", windows))]
fn lower() -> Result<(), String> {
    thread_priority::ThreadPriority::Min
        .set_for_current()
        .map_err(|e| e.to_string())
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
const POLICY: &str = "unchanged";

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn lower() -> Result<(), String> {
    Err("not supported on this operating system".to_owned())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use thread_priority::unix::{
        thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
    };

    /// The calling thread's policy and nice value (the 19th field of its
    /// `stat`, counted from 1).
    fn policy_and_nice() -> (Option<ThreadSchedulePolicy>, Option<i32>) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let nice = after_name
            .split_whitespace()
            .nth(16)
            .and_then(|n| n.parse().ok());
        (thread_schedule_policy().ok(), nice)
    }

    #[test]
    fn a_lowered_thread_and_the_threads_it_starts_run_as_batch_at_nice_19() {
        let (own, child) = std::thread::spawn(|| {
            super::lower_current_thread();
            (
                policy_and_nice(),
                std::thread::spawn(policy_and_nice).join(),
            )
        })
        .join()
        .expect("the test thread ran");
        let lowered = (
            Some(ThreadSchedulePolicy::Normal(
                NormalThreadSchedulePolicy::Batch,
            )),
            Some(19),
        );
        assert_eq!(own, lowered);
        assert_eq!(child.expect("the child thread ran"), lowered);
        assert_ne!(
            policy_and_nice(),
            lowered,
            "only the lowered thread changes"
        );
    }
}
