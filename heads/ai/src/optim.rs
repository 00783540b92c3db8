//! The optimizers, with their state open to checkpoints (candle-nn keeps AdamW's moments private,
//! and its SGD has no momentum): both follow PyTorch's definitions.
//!
//! - SGD: g ← ∇ + λ·p; v ← μ·v + g (v = g at the first step); p ← p − lr·v.
//! - AdamW: m ← β₁m + (1−β₁)∇; v ← β₂v + (1−β₂)∇²; p ← p·(1 − lr·λ) − lr·m̂/(√v̂ + ε), with m̂, v̂
//!   the bias-corrected moments.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};

use crate::spec::OptimizerSpec;

pub struct Optimizer {
    kind: OptimizerSpec,
    learning_rate: f64,
    vars: Vec<Var>,
    /// Per var: SGD's velocity, or AdamW's first and second moments.
    slots: Vec<Vec<Var>>,
    steps: u64,
}

const EPSILON: f64 = 1e-8;

impl Optimizer {
    pub fn new(kind: &OptimizerSpec, vars: Vec<Var>) -> Self {
        Self {
            learning_rate: kind.learning_rate(),
            kind: kind.clone(),
            slots: vec![Vec::new(); vars.len()],
            vars,
            steps: 0,
        }
    }

    pub fn set_learning_rate(&mut self, rate: f64) {
        self.learning_rate = rate;
    }

    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        self.step(&loss.backward()?)
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let lr = self.learning_rate;
        for (var, slots) in self.vars.iter().zip(&mut self.slots) {
            let Some(grad) = grads.get(var) else { continue };
            let p = var.as_tensor();
            let next = match self.kind {
                OptimizerSpec::Sgd {
                    momentum,
                    weight_decay,
                    ..
                } => {
                    let grad = if weight_decay == 0.0 {
                        grad.clone()
                    } else {
                        (grad + (p * weight_decay)?)?
                    };
                    let update = match slots.first() {
                        _ if momentum == 0.0 => grad,
                        Some(velocity) => {
                            let next = ((velocity.as_tensor() * momentum)? + grad)?;
                            velocity.set(&next)?;
                            next
                        }
                        None => {
                            slots.push(Var::from_tensor(&grad)?);
                            grad
                        }
                    };
                    (p - (update * lr)?)?
                }
                OptimizerSpec::Adamw {
                    weight_decay,
                    beta1,
                    beta2,
                    ..
                } => {
                    if slots.is_empty() {
                        slots.push(Var::zeros(p.shape(), p.dtype(), p.device())?);
                        slots.push(Var::zeros(p.shape(), p.dtype(), p.device())?);
                    }
                    let (m, v) = (&slots[0], &slots[1]);
                    let next_m = ((m.as_tensor() * beta1)? + (grad * (1.0 - beta1))?)?;
                    let next_v = ((v.as_tensor() * beta2)? + (grad.sqr()? * (1.0 - beta2))?)?;
                    let m_hat = (&next_m / (1.0 - beta1.powi(self.steps as i32)))?;
                    let v_hat = (&next_v / (1.0 - beta2.powi(self.steps as i32)))?;
                    let step = (m_hat / (v_hat.sqrt()? + EPSILON)?)?;
                    m.set(&next_m)?;
                    v.set(&next_v)?;
                    ((p * (1.0 - lr * weight_decay))? - (step * lr)?)?
                }
            };
            var.set(&next)?;
        }
        Ok(())
    }

    /// The state a resumed run needs, as named tensors.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut state = HashMap::new();
        for (i, slots) in self.slots.iter().enumerate() {
            for (j, slot) in slots.iter().enumerate() {
                state.insert(format!("slot.{i}.{j}"), slot.as_tensor().copy()?);
            }
        }
        let device = self
            .vars
            .first()
            .map_or(Device::Cpu, |v| v.device().clone());
        state.insert("steps".into(), Tensor::new(&[self.steps as i64], &device)?);
        Ok(state)
    }

    pub fn restore(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let missing =
            |name: &str| candle_core::Error::Msg(format!("optimizer state has no {name}"));
        self.steps = state
            .get("steps")
            .ok_or_else(|| missing("steps"))?
            .to_vec1::<i64>()?[0] as u64;
        for (i, slots) in self.slots.iter_mut().enumerate() {
            slots.clear();
            for j in 0.. {
                let Some(tensor) = state.get(&format!("slot.{i}.{j}")) else {
                    break;
                };
                slots.push(Var::from_tensor(tensor)?);
            }
        }
        Ok(())
    }
}
