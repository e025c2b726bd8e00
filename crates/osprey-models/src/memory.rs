//! Giving memory back after a model loads. Loading copies, transposes and fuses
//! weight tensors, and glibc's allocator keeps the freed copies in its arenas, so
//! each model would hold on to tens of megabytes it no longer uses.

/// Returns the allocator's free memory to the operating system (glibc only; a
/// no-op elsewhere). Costs a few milliseconds: call it after a model loads.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no
    // pointer and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

use std::sync::atomic::{AtomicBool, Ordering};

/// Largest allocation glibc serves from its heaps; larger ones get pages of their
/// own that go back to the system when freed.
const MMAP_THRESHOLD: i32 = 256 * 1024;

static LEAN: AtomicBool = AtomicBool::new(false);

/// Trades some throughput for memory, for the whole process: a batch's large,
/// short-lived buffers (its activations) go back to the system when it ends.
///
/// - onnxruntime sessions built afterwards allocate without their arena, which
///   otherwise keeps the largest batch's activations reserved;
/// - glibc gets a fixed mmap threshold. It raises its own each time such a buffer
///   is freed, up to 32 MiB, after which they come from the heap and stay there.
///
/// Measured under load: about 90 MB less RSS, 10-25% fewer inputs per second
/// (BENCHMARKS.md). Call it once, before other threads start;
/// `MALLOC_MMAP_THRESHOLD_` set by the user wins.
pub fn prefer_low_memory() {
    LEAN.store(true, Ordering::Relaxed);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        #[allow(unsafe_code)]
        // SAFETY: mallopt only changes the allocator's tuning parameters.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

/// Whether [`prefer_low_memory`] was called.
pub fn low_memory() -> bool {
    LEAN.load(Ordering::Relaxed)
}
