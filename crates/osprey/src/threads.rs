/// candle sizes its matrix multiplies by `RAYON_NUM_THREADS`; without it, it reads
/// `/proc/cpuinfo` on every multiply and counts physical cores, which is 1 on many
/// virtual machines, so inference runs on one core. Pin it to the replica's thread
/// count. Must run before any other thread starts.
#[allow(unsafe_code)]
pub fn pin_compute_threads(threads: usize) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: called from `main`'s thread before the runtime, the model or any
        // other thread exists, so nothing reads the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string()) };
    }
}
