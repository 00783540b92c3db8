//! Models built from a spec, with parameters drawn from a seeded generator so that a run is
//! reproducible (candle's own CPU random numbers cannot be seeded).

use std::collections::HashMap;

use candle_core::{D, DType, Device, Result, Tensor, Var};
use candle_nn::{Linear, Module};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;

use crate::spec::{Activation, ModelSpec};

pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
    dropout: f32,
    vars: Vec<Var>,
}

/// Layers hold a weight then a bias, in order.
fn parameter_name(index: usize) -> String {
    let what = if index.is_multiple_of(2) {
        "weight"
    } else {
        "bias"
    };
    format!("layers.{}.{what}", index / 2)
}

/// A uniform f32 in [0, 1) from 24 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

impl Mlp {
    /// `inputs` features to `classes` logits through the spec's hidden widths. Weights and biases
    /// are uniform in ±1/√fan_in, as PyTorch's `nn.Linear` starts them.
    pub fn new(
        spec: &ModelSpec,
        inputs: usize,
        classes: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<Self> {
        let ModelSpec::Mlp {
            hidden,
            activation,
            dropout,
        } = spec;
        let widths: Vec<usize> = std::iter::once(inputs)
            .chain(hidden.iter().copied())
            .chain(std::iter::once(classes))
            .collect();
        let mut layers = Vec::new();
        let mut vars = Vec::new();
        for pair in widths.windows(2) {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let bound = 1.0 / (fan_in as f32).sqrt();
            let mut uniform = |n: usize| -> Vec<f32> {
                (0..n).map(|_| (2.0 * unit(rng) - 1.0) * bound).collect()
            };
            let weight = Var::from_tensor(&Tensor::from_vec(
                uniform(fan_in * fan_out),
                (fan_out, fan_in),
                device,
            )?)?;
            let bias = Var::from_tensor(&Tensor::from_vec(uniform(fan_out), fan_out, device)?)?;
            layers.push(Linear::new(
                weight.as_tensor().clone(),
                Some(bias.as_tensor().clone()),
            ));
            vars.extend([weight, bias]);
        }
        Ok(Self {
            layers,
            activation: *activation,
            dropout: *dropout as f32,
            vars,
        })
    }

    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The parameters by name (`layers.0.weight`, `layers.0.bias`, …), as stored in safetensors.
    pub fn named_tensors(&self) -> Result<HashMap<String, Tensor>> {
        (0..self.vars.len())
            .map(|i| Ok((parameter_name(i), self.vars[i].as_tensor().copy()?)))
            .collect()
    }

    /// Sets every parameter from `tensors`, which must hold each one with its shape.
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (i, var) in self.vars.iter().enumerate() {
            let name = parameter_name(i);
            let stored = tensors
                .get(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("the weights have no `{name}`")))?;
            if stored.shape() != var.shape() {
                return Err(candle_core::Error::Msg(format!(
                    "`{name}` is {:?} in the weights but {:?} in the model",
                    stored.dims(),
                    var.dims()
                )));
            }
            var.set(&stored.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    /// Logits for a batch `[n, inputs]`. With `dropout_rng`, hidden units are dropped (training);
    /// without, the full network runs (evaluation).
    pub fn forward(&self, x: &Tensor, mut dropout_rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let mut x = x.clone();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            if i == last {
                break;
            }
            x = match self.activation {
                Activation::Relu => x.relu()?,
                Activation::Gelu => x.gelu_erf()?,
                Activation::Tanh => x.tanh()?,
                Activation::Sigmoid => candle_nn::ops::sigmoid(&x)?,
            };
            if let Some(rng) = dropout_rng.as_deref_mut()
                && self.dropout > 0.0
            {
                x = self.drop(&x, rng)?;
            }
        }
        Ok(x)
    }

    /// Inverted dropout with a mask from our generator.
    fn drop(&self, x: &Tensor, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let keep = 1.0 - self.dropout;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| if unit(rng) < keep { 1.0 / keep } else { 0.0 })
            .collect();
        x * Tensor::from_vec(mask, x.shape(), x.device())?
    }
}

/// Index of the largest logit of each row.
pub fn predictions(logits: &Tensor) -> Result<Vec<u32>> {
    logits.argmax(D::Minus1)?.to_dtype(DType::U32)?.to_vec1()
}
