//! CHIMERA's AI heads: classifiers trained with candle from a job spec (the YAML of a
//! `chimera-train` block), on the CPU, or on a GPU with the `cuda` feature; inference with those
//! and with a pretrained sentence encoder (MiniLM-L6).

mod bert;
pub mod checkpoint;
mod cpu_layers;
pub mod dataset;
pub mod encoder;
pub mod infer;
pub mod model;
pub mod optim;
mod parallel;
/// The job specs, in a crate of their own so that the engine can check them at submission.
pub use chimera_ai_spec as spec;
pub mod train;

/// Keeps memory that training or inference frees in the process for its next step. Each step
/// allocates and frees the same large tensors; by default glibc returns blocks of a few MB to the
/// kernel and takes them back zero-filled, page fault by page fault: with this, a CNN epoch or a
/// MiniLM batch takes a tenth of the page faults or fewer, and runs faster (benches/RESULTS.md).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; called before the model allocates.
    unsafe {
        // 32 MiB is the largest threshold glibc takes for 64-bit; larger blocks are still mapped.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
