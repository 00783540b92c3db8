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
