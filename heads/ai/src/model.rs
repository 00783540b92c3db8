//! Classifiers built from a spec (an MLP, a CNN or a hybrid with a circuit layer), with parameters drawn from a seeded generator
//! so that a run is reproducible (candle's own CPU random numbers cannot be seeded).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{D, DType, Device, Result, Tensor, Var};
use candle_nn::{BatchNorm, Linear, Module, ModuleT};
use chimera_hybrid::Simulator;
use chimera_quantum::backend::cuda::CudaBackend;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;

use crate::cpu_layers;
use crate::spec::{Activation, MAX_PARAMETERS, ModelSpec};

enum Layer {
    Linear(Linear),
    /// A size-keeping convolution: weight [out, in, k, k], bias [out].
    Conv {
        weight: Tensor,
        bias: Tensor,
    },
    BatchNorm(BatchNorm),
    Activation(Activation),
    MaxPool(usize),
    Flatten,
    Dropout(f32),
    /// A parameterised circuit: expectation values, differentiated by the adjoint method.
    Quantum(chimera_hybrid::QuantumLayer),
}

pub struct Classifier {
    /// The shape of one sample: `[features]`, or `[channels, height, width]` for images.
    input: Vec<usize>,
    layers: Vec<Layer>,
    /// Trained parameters with their names in the stored weights (`layers.3.weight`, …).
    params: Vec<(String, Var)>,
    /// Batch-norm running statistics: stored with the weights, updated in training, not trained.
    buffers: Vec<(String, Var)>,
    /// Values per sample of the widest layer output (the input included).
    widest: usize,
}

/// A uniform f32 in [0, 1) from 24 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// Most values one layer's output may hold for a whole training batch (1 GiB of f32; training
/// keeps several such outputs for the backward pass).
pub const MAX_BATCH_ACTIVATIONS: usize = 1 << 28;

fn invalid(message: String) -> candle_core::Error {
    candle_core::Error::Msg(message)
}

/// Builds the layers in order, naming each parameter by its layer's index.
struct Builder<'a> {
    rng: &'a mut ChaCha8Rng,
    device: &'a Device,
    simulator: &'a Simulator,
    layers: Vec<Layer>,
    params: Vec<(String, Var)>,
    buffers: Vec<(String, Var)>,
    /// Trained parameters so far.
    parameters: usize,
    /// Values per sample of the widest layer output so far (the input included).
    widest: usize,
}

impl Builder<'_> {
    fn var(
        &mut self,
        name: &str,
        values: Vec<f32>,
        shape: &[usize],
        trained: bool,
    ) -> Result<Tensor> {
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, self.device)?)?;
        let tensor = var.as_tensor().clone();
        let entry = (format!("layers.{}.{name}", self.layers.len()), var);
        if trained {
            self.params.push(entry);
        } else {
            self.buffers.push(entry);
        }
        Ok(tensor)
    }

    /// Weights and biases uniform in ±1/√fan_in, as PyTorch starts `nn.Linear` and `nn.Conv2d`.
    fn uniform(&mut self, name: &str, shape: &[usize], fan_in: usize) -> Result<Tensor> {
        // Counted before anything is allocated.
        let count = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= MAX_PARAMETERS - self.parameters)
            .ok_or_else(|| {
                invalid(format!(
                    "the model would have more than {MAX_PARAMETERS} trained parameters (layer {} \
                     alone is {shape:?}): use fewer or narrower layers (model.hidden, \
                     model.channels)",
                    self.layers.len()
                ))
            })?;
        self.parameters += count;
        let bound = 1.0 / (fan_in as f32).sqrt();
        let values = (0..count)
            .map(|_| (2.0 * unit(self.rng) - 1.0) * bound)
            .collect();
        self.var(name, values, shape, true)
    }

    fn linear(&mut self, fan_in: usize, fan_out: usize) -> Result<()> {
        self.widest = self.widest.max(fan_out);
        let weight = self.uniform("weight", &[fan_out, fan_in], fan_in)?;
        let bias = self.uniform("bias", &[fan_out], fan_in)?;
        self.layers
            .push(Layer::Linear(Linear::new(weight, Some(bias))));
        Ok(())
    }

    fn conv(&mut self, c_in: usize, c_out: usize, kernel: usize) -> Result<()> {
        let fan_in = c_in * kernel * kernel;
        let weight = self.uniform("weight", &[c_out, c_in, kernel, kernel], fan_in)?;
        let bias = self.uniform("bias", &[c_out], fan_in)?;
        self.layers.push(Layer::Conv { weight, bias });
        Ok(())
    }

    /// Scale 1, shift 0, running mean 0 and variance 1, as PyTorch's `nn.BatchNorm2d`.
    fn batch_norm(&mut self, channels: usize) -> Result<()> {
        let weight = self.var("weight", vec![1.0; channels], &[channels], true)?;
        let bias = self.var("bias", vec![0.0; channels], &[channels], true)?;
        let mean = self.var("running_mean", vec![0.0; channels], &[channels], false)?;
        let var = self.var("running_var", vec![1.0; channels], &[channels], false)?;
        let norm = BatchNorm::new(channels, mean, var, weight, bias, 1e-5)?;
        self.layers.push(Layer::BatchNorm(norm));
        Ok(())
    }

    /// The circuit, its weights uniform in [0, 2π) as PennyLane's TorchLayer starts them.
    fn quantum(&mut self, circuit: chimera_circuit::layer::QuantumLayer) -> Result<()> {
        let values = (0..circuit.weights())
            .map(|_| unit(self.rng) * std::f32::consts::TAU)
            .collect();
        let weights = self.var("weights", values, &[circuit.weights()], true)?;
        let layer = chimera_hybrid::QuantumLayer::new(circuit, weights, self.simulator.clone())?;
        self.layers.push(Layer::Quantum(layer));
        Ok(())
    }

    /// Activation and dropout after a hidden layer.
    fn after_hidden(&mut self, activation: Activation, dropout: f64) {
        self.layers.push(Layer::Activation(activation));
        self.dropout(dropout);
    }

    fn dropout(&mut self, dropout: f64) {
        if dropout > 0.0 {
            self.layers.push(Layer::Dropout(dropout as f32));
        }
    }
}

impl Classifier {
    /// A classifier of samples shaped `input` into `classes` logits, as `spec` describes, its
    /// tensors on `device` and its circuit, if any, simulated by `simulator`.
    pub fn new(
        spec: &ModelSpec,
        input: &[usize],
        classes: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
        simulator: &Simulator,
    ) -> Result<Self> {
        let mut b = Builder {
            rng,
            device,
            simulator,
            layers: Vec::new(),
            params: Vec::new(),
            buffers: Vec::new(),
            parameters: 0,
            widest: input.iter().product(),
        };
        let (activation, dropout) = (spec.activation(), spec.dropout());
        let mut width = b.widest;
        if let ModelSpec::Cnn {
            channels,
            kernel_size,
            pool,
            batch_norm,
            ..
        } = spec
        {
            let [mut c, mut h, mut w] = match *input {
                [c, h, w] => [c, h, w],
                [h, w] => [1, h, w],
                _ => {
                    return Err(invalid(format!(
                        "a CNN takes images, [channels, height, width] or [height, width]; \
                         this dataset's samples are {input:?}: use `kind: mlp`"
                    )));
                }
            };
            for (block, &c_out) in channels.iter().enumerate() {
                b.widest = b.widest.max(c_out.saturating_mul(h * w));
                b.conv(c, c_out, *kernel_size)?;
                if *batch_norm {
                    b.batch_norm(c_out)?;
                }
                // A non-decreasing activation commutes with max pooling: applied after it, it
                // touches a quarter of the values (2x2 pooling). Same result, same parameter names.
                let pool_first = activation.is_monotonic() && *pool > 1;
                if !pool_first {
                    b.layers.push(Layer::Activation(activation));
                }
                if *pool > 1 {
                    if h < *pool || w < *pool {
                        return Err(invalid(format!(
                            "convolution block {} gets {h}x{w} images, too small to pool \
                             {pool}x{pool}: use fewer blocks or a smaller `pool`",
                            block + 1
                        )));
                    }
                    b.layers.push(Layer::MaxPool(*pool));
                    (h, w) = (h / pool, w / pool);
                }
                if pool_first {
                    b.layers.push(Layer::Activation(activation));
                }
                c = c_out;
            }
            width = c * h * w;
            b.layers.push(Layer::Flatten);
            b.dropout(dropout);
        } else {
            b.layers.push(Layer::Flatten);
        }
        for &hidden in spec.hidden() {
            b.linear(width, hidden)?;
            b.after_hidden(activation, dropout);
            width = hidden;
        }
        let circuit = spec.quantum_layer().map_err(|e| invalid(e.to_string()))?;
        if let Some(circuit) = circuit {
            b.linear(width, circuit.inputs())?;
            width = circuit.outputs();
            b.quantum(circuit)?;
        }
        b.linear(width, classes)?;
        Ok(Self {
            input: input.to_vec(),
            layers: b.layers,
            params: b.params,
            buffers: b.buffers,
            widest: b.widest,
        })
    }

    /// The trained parameters, for the optimizer.
    pub fn vars(&self) -> Vec<Var> {
        self.params.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Values one sample's widest layer output holds.
    pub fn widest_layer(&self) -> usize {
        self.widest
    }

    pub fn parameter_count(&self) -> usize {
        self.params.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Parameters and batch-norm statistics by name, as stored in safetensors.
    pub fn named_tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.params
            .iter()
            .chain(&self.buffers)
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
            .collect()
    }

    /// Sets every parameter and statistic from `tensors`, which must hold each one with its shape.
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.params.iter().chain(&self.buffers) {
            let stored = tensors
                .get(name)
                .ok_or_else(|| invalid(format!("the weights have no `{name}`")))?;
            if stored.shape() != var.shape() {
                return Err(invalid(format!(
                    "`{name}` is {:?} in the weights but {:?} in the model",
                    stored.dims(),
                    var.dims()
                )));
            }
            var.set(&stored.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    /// Logits for a batch `[n, features]` (each row a sample of the input shape, flattened). With
    /// `dropout_rng` the network trains: units are dropped and batch norm uses and updates the
    /// batch's statistics; without, it evaluates.
    pub fn forward(&self, x: &Tensor, mut dropout_rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let training = dropout_rng.is_some();
        let cpu = x.device().is_cpu();
        let n = x.dim(0)?;
        let mut x = x.reshape([&[n][..], &self.input].concat())?;
        if self.input.len() == 2 {
            x = x.unsqueeze(1)?;
        }
        for layer in &self.layers {
            x = match layer {
                Layer::Linear(l) => l.forward(&x)?,
                Layer::Conv { weight, bias } if cpu => cpu_layers::conv(&x, weight, bias)?,
                Layer::Conv { weight, bias } => conv_same(&x, weight, bias)?,
                Layer::BatchNorm(norm) if cpu => cpu_batch_norm(norm, &x, training)?,
                Layer::BatchNorm(norm) if training => norm.forward_train(&x)?,
                Layer::BatchNorm(norm) => norm.forward_t(&x, false)?,
                Layer::Activation(a) => match a {
                    Activation::Relu => x.relu()?,
                    Activation::Gelu => x.gelu_erf()?,
                    Activation::Tanh => x.tanh()?,
                    Activation::Sigmoid => candle_nn::ops::sigmoid(&x)?,
                },
                Layer::MaxPool(p) if cpu => cpu_layers::max_pool(&x, *p)?,
                Layer::MaxPool(p) => max_pool_by_reduction(&x, *p)?,
                Layer::Flatten => x.flatten_from(1)?,
                Layer::Dropout(p) => match dropout_rng.as_deref_mut() {
                    Some(rng) => drop(&x, *p, rng)?,
                    None => x,
                },
                Layer::Quantum(q) => q.forward(&x)?,
            };
        }
        Ok(x)
    }
}

/// Where a hybrid model's circuit is simulated when the model is asked to run on `device`: on the
/// GPU, by CHIMERA's CUDA kernels, for a CUDA device (the classical layers, small beside the
/// statevectors, stay on the CPU: see [`device_for`]); on the CPU otherwise.
pub fn simulator_for(spec: &ModelSpec, device: &Device) -> Result<Simulator> {
    if !(spec.is_hybrid() && device.is_cuda()) {
        return Ok(Simulator::Cpu);
    }
    let gpu = CudaBackend::new().map_err(|e| {
        invalid(format!(
            "the hybrid model's circuit cannot run on the GPU: {e} (`--device cpu` runs it on the CPU)"
        ))
    })?;
    Ok(Simulator::Cuda(Arc::new(gpu)))
}

/// Where a model of `spec` keeps its tensors, asked for `device`: a hybrid model's on the CPU, its
/// circuit simulated where [`simulator_for`] says.
pub fn device_for(spec: &ModelSpec, device: &Device) -> Device {
    if spec.is_hybrid() {
        Device::Cpu
    } else {
        device.clone()
    }
}

/// A stride-1 convolution padded to keep the image size (a cross-correlation, as PyTorch's and
/// candle's), written as one matrix product over the k x k shifted copies of the input, so that
/// its backward pass is `matmul`, `narrow` and `stack` rather than a transposed convolution. Run
/// on devices other than the CPU, which has its own (`cpu_layers::conv`).
pub fn conv_same(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (c_out, _, k, _) = weight.dims4()?;
    let p = k / 2;
    let padded = x.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)?;
    let mut shifted = Vec::with_capacity(k * k);
    for dy in 0..k {
        for dx in 0..k {
            shifted.push(padded.narrow(2, dy, h)?.narrow(3, dx, w)?);
        }
    }
    // [n, c, k*k, h, w] -> rows (n, y, x) of columns (c, dy, dx), the weight's own order.
    let columns = Tensor::stack(&shifted, 2)?
        .permute((0, 3, 4, 1, 2))?
        .reshape((n * h * w, c * k * k))?;
    let weight = weight.reshape((c_out, c * k * k))?.t()?;
    columns
        .matmul(&weight)?
        .broadcast_add(bias)?
        .reshape((n, h, w, c_out))?
        .permute((0, 3, 1, 2))?
        .contiguous()
}

/// Max pooling of x [n, c, h, w] over `size` x `size` windows, stride `size`, as maxima over
/// reshaped axes. Not candle's `max_pool2d`: its gradient (candle 0.11.1) is multiplied by the
/// share of maxima in the window, 1/size² for a unique maximum, where it should pass whole.
pub fn max_pool_by_reduction(x: &Tensor, size: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / size, w / size);
    x.narrow(2, 0, oh * size)?
        .narrow(3, 0, ow * size)?
        .contiguous()?
        .reshape((n, c, oh, size, ow, size))?
        .max(5)?
        .max(3)
}

/// Batch norm on the CPU with `cpu_layers`: in training, normalised by the batch's statistics,
/// which update the running ones as candle's `BatchNorm::forward_train` does (momentum, unbiased
/// variance); in evaluation, by the running statistics.
fn cpu_batch_norm(norm: &BatchNorm, x: &Tensor, training: bool) -> Result<Tensor> {
    let (weight, bias) = norm
        .weight_and_bias()
        .ok_or_else(|| invalid("batch norm without scale and shift".into()))?;
    let (running_mean, running_var) = (norm.running_mean(), norm.running_var());
    if !training {
        let (mean, var) = (running_mean.to_vec1()?, running_var.to_vec1::<f32>()?);
        return cpu_layers::batch_norm(x, mean, &var, norm.eps(), weight, bias);
    }
    let (mean, var) = cpu_layers::channel_statistics(x)?;
    let count = (x.elem_count() / mean.len()) as f64;
    let m = norm.momentum();
    let blend = |running: &Tensor, batch: &[f32], weight: f64| -> Result<()> {
        let batch = Tensor::from_slice(batch, batch.len(), x.device())?;
        // `running` is the tensor of a Var: `from_tensor` shares it, so `set` updates it.
        Var::from_tensor(running)?.set(&((running * (1.0 - m))? + (batch * weight)?)?)
    };
    blend(running_mean, &mean, m)?;
    blend(running_var, &var, m * count / (count - 1.0))?;
    cpu_layers::batch_norm(x, mean, &var, norm.eps(), weight, bias)
}

/// Inverted dropout: on the CPU with masks from the run's seeded generator (a run and its resumption are
/// reproducible); elsewhere with the device's own generator, so that no mask crosses to the
/// device each step.
fn drop(x: &Tensor, dropout: f32, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return candle_nn::ops::dropout(x, dropout);
    }
    let keep = 1.0 - dropout;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if unit(rng) < keep { 1.0 / keep } else { 0.0 })
        .collect();
    x * Tensor::from_vec(mask, x.shape(), x.device())?
}

/// Index of the largest logit of each row.
pub fn predictions(logits: &Tensor) -> Result<Vec<u32>> {
    logits.argmax(D::Minus1)?.to_dtype(DType::U32)?.to_vec1()
}
