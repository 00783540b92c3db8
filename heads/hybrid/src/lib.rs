//! Hybrid quantum-classical models: a parameterised circuit as a candle layer.
//!
//! [`QuantumOp`] is a candle `CustomOp2(x, θ)`: its forward runs `chimera_quantum::adjoint`'s
//! batched statevector simulation (x: samples × inputs, θ: the shared weights; out: samples ×
//! observables), and its backward that module's adjoint differentiation, so gradients reach both
//! the weights and whatever layers came before. The simulation runs where its [`Simulator`] says
//! (the CPU, or a GPU through CHIMERA's CUDA kernels); the tensors it reads and writes are small
//! (samples × inputs, samples × observables) and stay on the CPU. [`QuantumLayer`] holds the weights as a candle
//! variable and is a `candle_nn::Module` like a `Linear`. [`templates`] builds the usual circuits.

pub mod moons;
pub mod templates;

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp2, DType, Error, Layout, Module, Result, Shape, Tensor, Var,
};
use chimera_circuit::layer;
pub use chimera_quantum::adjoint::Simulator;

/// The circuit as a candle op; clones share it.
#[derive(Debug, Clone)]
pub struct QuantumOp {
    layer: Arc<layer::QuantumLayer>,
    simulator: Simulator,
}

/// A tensor's values as f64, read through its layout.
fn values(storage: &CpuStorage, layout: &Layout) -> Result<Vec<f64>> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::Msg("the quantum layer takes contiguous tensors".into()))?;
    match storage {
        CpuStorage::F32(v) => Ok(v[start..end].iter().map(|&a| f64::from(a)).collect()),
        CpuStorage::F64(v) => Ok(v[start..end].to_vec()),
        other => Err(Error::UnsupportedDTypeForOp(other.dtype(), "quantum-layer")),
    }
}

fn tensor_values(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()
}

impl QuantumOp {
    pub fn new(layer: layer::QuantumLayer, simulator: Simulator) -> Self {
        Self {
            layer: Arc::new(layer),
            simulator,
        }
    }

    pub fn layer(&self) -> &layer::QuantumLayer {
        &self.layer
    }

    /// The number of samples in `x`, whose shape must be (samples, inputs).
    fn samples(&self, x: &Shape) -> Result<usize> {
        match x.dims() {
            [samples, inputs] if *inputs == self.layer.inputs() => Ok(*samples),
            dims => Err(Error::Msg(format!(
                "the quantum layer takes inputs of shape (samples, {}), not {dims:?}",
                self.layer.inputs()
            ))),
        }
    }
}

impl CustomOp2 for QuantumOp {
    fn name(&self) -> &'static str {
        "quantum-layer"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weights: &CpuStorage,
        weights_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let samples = self.samples(x_layout.shape())?;
        let out = self
            .simulator
            .forward(
                &self.layer,
                &values(x, x_layout)?,
                &values(weights, weights_layout)?,
            )
            .map_err(Error::wrap)?;
        let storage = match x {
            CpuStorage::F32(_) => CpuStorage::F32(out.iter().map(|&v| v as f32).collect()),
            _ => CpuStorage::F64(out),
        };
        Ok((storage, Shape::from((samples, self.layer.outputs()))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weights: &Tensor,
        _out: &Tensor,
        grad_out: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, gradients) = self
            .simulator
            .backward(
                &self.layer,
                &tensor_values(x)?,
                &tensor_values(weights)?,
                &tensor_values(grad_out)?,
            )
            .map_err(Error::wrap)?;
        let like = |values: Vec<f64>, t: &Tensor| {
            Tensor::from_vec(values, t.shape(), t.device())?.to_dtype(t.dtype())
        };
        Ok((
            Some(like(gradients.inputs, x)?),
            Some(like(gradients.weights, weights)?),
        ))
    }
}

/// A circuit layer with its own trainable weights.
#[derive(Debug, Clone)]
pub struct QuantumLayer {
    op: QuantumOp,
    weights: Var,
}

impl QuantumLayer {
    /// The layer with the given starting weights (as many as the circuit has), simulated by
    /// `simulator`.
    pub fn new(layer: layer::QuantumLayer, weights: Tensor, simulator: Simulator) -> Result<Self> {
        if weights.dims() != [layer.weights()] {
            return Err(Error::Msg(format!(
                "the quantum layer has {} weights, not {:?}",
                layer.weights(),
                weights.dims()
            )));
        }
        Ok(Self {
            op: QuantumOp::new(layer, simulator),
            weights: Var::from_tensor(&weights)?,
        })
    }

    pub fn weights(&self) -> &Var {
        &self.weights
    }
}

impl Module for QuantumLayer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.apply_op2(self.weights.as_tensor(), self.op.clone())
    }
}
