//! A parameterised circuit ([`QuantumLayer`], read by `chimera-circuit`) as a differentiable
//! layer: expectation values over a batch of inputs, and their gradients with respect to the
//! inputs and the shared weights by adjoint differentiation (Jones and Gacon, arXiv:2009.02823),
//! with parameter-shift as the reference.
//!
//! The layer maps (x, θ) to ⟨ψ(x, θ)|O_k|ψ(x, θ)⟩ for each observable O_k, with ψ = U_L…U_1|0…0⟩.
//! Backward is a vector-Jacobian product: given dL/d⟨O_k⟩ = g_k, one forward sweep makes ψ and
//! λ = Σ g_k O_k ψ, and one backward sweep undoes each gate on both; a rotation exp(-i s A/2)
//! about axis A with angle s adds Im⟨λ|A|φ⟩ to dL/ds, φ being the state just after it. Two
//! statevectors, and no third: A acts on φ inside the inner product.
//!
//! Double precision, on the CPU (`backend::cpu::layer`: samples of a batch in parallel) or on a
//! GPU (`backend::cuda::layer`: the batch's statevectors side by side in its memory);
//! [`Simulator`] picks.

use std::sync::Arc;

use chimera_circuit::layer::{Gradients, LayerError, QuantumLayer};

use crate::backend::cpu::layer as cpu;
use crate::backend::cuda::CudaBackend;

/// Where a layer's batch is simulated.
#[derive(Clone, Default)]
pub enum Simulator {
    /// The CPU, samples in parallel.
    #[default]
    Cpu,
    /// A GPU, with CHIMERA's CUDA kernels.
    Cuda(Arc<CudaBackend>),
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(gpu) => f.write_str(&crate::backend::Backend::describe(gpu.as_ref())),
        }
    }
}

impl Simulator {
    /// ⟨O_k⟩ for each sample (samples × outputs), here.
    pub fn forward(
        &self,
        layer: &QuantumLayer,
        inputs: &[f64],
        weights: &[f64],
    ) -> Result<Vec<f64>, LayerError> {
        match self {
            Self::Cpu => cpu::forward(layer, inputs, weights),
            Self::Cuda(gpu) => gpu.layer_forward(layer, inputs, weights),
        }
    }

    /// The outputs, and the gradients of a loss whose gradient with respect to the outputs is
    /// `upstream` (samples × outputs), here.
    pub fn backward(
        &self,
        layer: &QuantumLayer,
        inputs: &[f64],
        weights: &[f64],
        upstream: &[f64],
    ) -> Result<(Vec<f64>, Gradients), LayerError> {
        match self {
            Self::Cpu => cpu::backward(layer, inputs, weights, upstream),
            Self::Cuda(gpu) => gpu.layer_backward(layer, inputs, weights, upstream),
        }
    }
}
