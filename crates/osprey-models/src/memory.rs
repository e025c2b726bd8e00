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

/// Largest allocation glibc serves from its heaps with the `memory` profile;
/// larger ones get pages of their own that go back to the system when freed.
const MMAP_THRESHOLD: usize = 256 * 1024;

/// The same by default: onnxruntime's arena regions (1 MiB and up) get pages of
/// their own, and the small allocations of serving stay on the heaps.
const ARENA_MMAP_THRESHOLD: usize = 1024 * 1024;

static LEAN: AtomicBool = AtomicBool::new(false);

/// Trades some throughput for memory, for the whole process: a batch's large,
/// short-lived buffers (its activations) go back to the system when it ends.
///
/// - onnxruntime sessions built afterwards allocate without their arena, which
///   otherwise keeps the largest batch's activations reserved;
/// - glibc gets a fixed mmap threshold (see [`return_large_blocks`]).
///
/// Measured under load: about 90 MB less RSS, 10-25% fewer inputs per second
/// (BENCHMARKS.md). Call it once, before other threads start.
pub fn prefer_low_memory() {
    LEAN.store(true, Ordering::Relaxed);
    fix_mmap_threshold(MMAP_THRESHOLD);
}

/// Makes the blocks an onnxruntime arena frees when it shrinks go back to the
/// system. glibc raises its mmap threshold each time such a block is freed, up
/// to 32 MiB, after which they come from the heap and stay there; a fixed
/// threshold keeps them apart. A no-op with the `memory` profile, which sets a
/// lower one.
pub fn return_large_blocks() {
    if !low_memory() {
        fix_mmap_threshold(ARENA_MMAP_THRESHOLD);
    }
}

/// `MALLOC_MMAP_THRESHOLD_` set by the user wins.
fn fix_mmap_threshold(bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
        #[allow(unsafe_code)]
        // SAFETY: mallopt only changes the allocator's tuning parameters.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
}

/// Whether [`prefer_low_memory`] was called.
pub fn low_memory() -> bool {
    LEAN.load(Ordering::Relaxed)
}
