//! SGD with momentum and weight decay, as PyTorch's `torch.optim.SGD` defines them (candle-nn's
//! SGD has neither): g ← ∇ + λ·p; v ← μ·v + g (v = g at the first step); p ← p − lr·v.

use candle_core::backprop::GradStore;
use candle_core::{Result, Var};
use candle_nn::Optimizer;

#[derive(Debug, Clone, Copy)]
pub struct SgdParams {
    pub learning_rate: f64,
    pub momentum: f64,
    pub weight_decay: f64,
}

pub struct Sgd {
    vars: Vec<(Var, Option<Var>)>,
    params: SgdParams,
}

impl Optimizer for Sgd {
    type Config = SgdParams;

    fn new(vars: Vec<Var>, params: SgdParams) -> Result<Self> {
        let vars = vars
            .into_iter()
            .filter(|v| v.dtype().is_float())
            .map(|v| (v, None))
            .collect();
        Ok(Self { vars, params })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let SgdParams {
            learning_rate,
            momentum,
            weight_decay,
        } = self.params;
        for (var, velocity) in &mut self.vars {
            let Some(grad) = grads.get(var) else { continue };
            let grad = if weight_decay == 0.0 {
                grad.clone()
            } else {
                (grad + (var.as_tensor() * weight_decay)?)?
            };
            let update = if momentum == 0.0 {
                grad
            } else {
                match velocity {
                    Some(v) => {
                        let next = ((v.as_tensor() * momentum)? + grad)?;
                        v.set(&next)?;
                        next
                    }
                    None => {
                        *velocity = Some(Var::from_tensor(&grad)?);
                        grad
                    }
                }
            };
            var.set(&var.sub(&(update * learning_rate)?)?)?;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.params.learning_rate
    }

    fn set_learning_rate(&mut self, learning_rate: f64) {
        self.params.learning_rate = learning_rate;
    }
}
