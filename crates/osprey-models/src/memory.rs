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
