//! The process allocator for the `ipintel` binary.
//!
//! [`Allocator`] is mimalloc: per-thread pages serve a request's many
//! small, short-lived allocations with less work per call than the system
//! allocator. By default mimalloc holds pages that were freed for a while
//! and returns them to the system only when the thread that owns them
//! allocates again. A snapshot build frees hundreds of megabytes on threads
//! that then exit or sleep (the file readers, the merge thread, the reload
//! thread), so that memory would stay resident for the life of the process:
//! measured, 936 MiB resident after the first load and 960 MiB after three
//! reloads, against 416 and 447 MiB once freed pages are returned at once.
//! [`return_freed_memory_at_once`] sets that.
#![warn(missing_docs)]

/// mimalloc, to be installed with `#[global_allocator]`.
pub use mimalloc::MiMalloc as Allocator;

/// mimalloc's `mi_option_purge_delay` in the mimalloc sources that
/// `libmimalloc-sys` 0.1.49 bundles (version 3): the milliseconds freed
/// pages wait before they are returned to the system; 0 means at once.
/// The Rust bindings do not name this option, hence the pinned version.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc return pages to the system as soon as they are free,
/// whichever thread owned them. Call it first thing in `main`; it affects
/// only how soon freed memory is given back, never what is allocated.
pub fn return_freed_memory_at_once() {
    // SAFETY: `mi_option_set` stores one integer in mimalloc's option table
    // (an atomic store); it reads no pointers and is safe to call at any
    // time from any thread. `PURGE_DELAY` is a valid option index for the
    // pinned sources, and 0 is a documented value for it.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

/// The current value of the purge delay, in milliseconds.
pub fn purge_delay_ms() -> i64 {
    // SAFETY: `mi_option_get` reads one integer from the option table, as
    // for `mi_option_set` above.
    #[allow(unsafe_code)]
    let value = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
    // `c_long` is 64 bits here but 32 on some targets.
    #[allow(clippy::useless_conversion)]
    i64::from(value)
}
