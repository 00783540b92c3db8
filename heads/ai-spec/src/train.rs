//! The training job spec: the YAML of a `chimera-train` code block.
//!
//! ```yaml
//! dataset: digits
//! model:
//!   kind: mlp            # or cnn: see `ModelSpec::Cnn`
//!   hidden: [128, 64]
//!   activation: relu
//!   dropout: 0.1
//! loss: cross_entropy
//! optimizer:
//!   name: adamw          # or sgd, with momentum
//!   learning_rate: 0.003
//!   weight_decay: 0.0001
//! schedule:
//!   kind: cosine         # constant | cosine | step (with every and gamma)
//! epochs: 40
//! batch_size: 64
//! validation_split: 0.2
//! seed: 7
//! checkpoint_every: 100  # steps; none when not given
//! ```
//!
//! A hybrid model's middle layer is a parameterised circuit: see `ModelSpec::Hybrid`.
//!
//! Every setting but `dataset` and `model` has a default; an unknown key, a value of the wrong type
//! or settings that contradict each other are refused with a message that names them.

use chimera_circuit::layer::{self, Observable};
use chimera_circuit::pauli::PauliSum;
use chimera_circuit::qasm::parse_parameterised;
use chimera_maml::{BlockKind, CodeBlock, Job};
use serde::{Deserialize, Serialize};

use crate::{SpecError, invalid, yaml_error};

const TRAINING: &str = "training";

/// Most trained parameters a model may have: 400 MB of weights, and as much again for each of
/// their gradients and AdamW's two moments. A spec past it would take the head down.
pub const MAX_PARAMETERS: usize = 100_000_000;

mod settings;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    pub dataset: String,
    pub model: ModelSpec,
    #[serde(default)]
    pub loss: Loss,
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default = "defaults::epochs")]
    pub epochs: usize,
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    #[serde(default = "defaults::validation_split")]
    pub validation_split: f64,
    #[serde(default)]
    pub seed: u64,
    /// Save a checkpoint (weights, optimizer state, progress) every this many steps.
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// The YAML this spec was read from, stored beside checkpoints and models.
    #[serde(skip)]
    pub source: String,
}

mod defaults {
    pub fn epochs() -> usize {
        20
    }
    pub fn batch_size() -> usize {
        64
    }
    pub fn validation_split() -> f64 {
        0.2
    }
    pub fn learning_rate() -> f64 {
        1e-3
    }
    pub fn beta1() -> f64 {
        0.9
    }
    pub fn beta2() -> f64 {
        0.999
    }
    pub fn kernel_size() -> usize {
        3
    }
    pub fn pool() -> usize {
        2
    }
    pub fn batch_norm() -> bool {
        true
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "settings::Model")]
pub enum ModelSpec {
    /// Fully connected layers of the given widths between the (flattened) input and the classes.
    Mlp {
        hidden: Vec<usize>,
        activation: Activation,
        dropout: f64,
    },
    /// Convolution blocks, one per entry of `channels`: a `kernel_size` convolution that keeps the
    /// image size, batch norm (unless `batch_norm: false`), the activation, and `pool`x`pool` max
    /// pooling; then fully connected layers of the `hidden` widths to the classes, with dropout
    /// before each.
    ///
    /// ```yaml
    /// model:
    ///   kind: cnn
    ///   channels: [32, 64]
    ///   kernel_size: 3     # odd; default 3
    ///   pool: 2            # default 2
    ///   batch_norm: true   # default true
    ///   hidden: [128]      # default none
    ///   activation: relu
    ///   dropout: 0.25
    /// ```
    Cnn {
        channels: Vec<usize>,
        kernel_size: usize,
        pool: usize,
        batch_norm: bool,
        hidden: Vec<usize>,
        activation: Activation,
        dropout: f64,
    },
    /// A linear layer from the (flattened) input to the circuit's inputs, the circuit (a
    /// parameterised OpenQASM 3 program: `chimera_circuit::qasm::parse_parameterised`) read out
    /// as the expectation values of `observables`, and a linear layer from those to the classes,
    /// as in PennyLane's TorchLayer demo. The circuit's other inputs are trained weights, starting
    /// uniform in [0, 2π).
    ///
    /// ```yaml
    /// model:
    ///   kind: hybrid
    ///   circuit: 1            # the job's first qasm3 block; or the program itself (`circuit: |`)
    ///   inputs: [x]           # the circuit's inputs that the first linear layer feeds
    ///   observables: [Z0, Z1] # default: Z of each qubit
    /// ```
    Hybrid {
        circuit: CircuitSource,
        inputs: Vec<String>,
        observables: Vec<String>,
    },
}

/// Where a hybrid model's circuit is.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum CircuitSource {
    /// The n-th `qasm3` block (1-based) of the MAML job holding the spec.
    Block(usize),
    /// The program's text.
    Program(String),
}

impl ModelSpec {
    pub fn hidden(&self) -> &[usize] {
        match self {
            Self::Mlp { hidden, .. } | Self::Cnn { hidden, .. } => hidden,
            Self::Hybrid { .. } => &[],
        }
    }

    pub fn dropout(&self) -> f64 {
        match self {
            Self::Mlp { dropout, .. } | Self::Cnn { dropout, .. } => *dropout,
            Self::Hybrid { .. } => 0.0,
        }
    }

    pub fn activation(&self) -> Activation {
        match self {
            Self::Mlp { activation, .. } | Self::Cnn { activation, .. } => *activation,
            Self::Hybrid { .. } => Activation::default(),
        }
    }

    /// The circuit of a hybrid model as a layer; `None` for other models.
    pub fn quantum_layer(&self) -> Result<Option<layer::QuantumLayer>, SpecError> {
        let Self::Hybrid {
            circuit,
            inputs,
            observables,
        } = self
        else {
            return Ok(None);
        };
        let program = match circuit {
            CircuitSource::Program(program) => program,
            CircuitSource::Block(n) => {
                return Err(invalid(
                    "model.circuit",
                    format!(
                        "is {n}, the number of a qasm3 block of a MAML job: this spec is not in \
                         one, so give the OpenQASM 3 program itself (`circuit: |`)"
                    ),
                ));
            }
        };
        let circuit = parse_parameterised(program).map_err(|e| {
            invalid(
                "model.circuit",
                format!("is not a parameterised circuit: {e}"),
            )
        })?;
        let observables: Vec<Observable> = if observables.is_empty() {
            (0..circuit.qubits).map(Observable::Z).collect()
        } else {
            observables
                .iter()
                .map(|text| PauliSum::parse(text).map(Observable::Sum))
                .collect::<Result<_, _>>()
                .map_err(|e| invalid("model.observables", format!("has {e}")))?
        };
        if inputs.is_empty() {
            return Err(invalid(
                "model.inputs",
                "must name the circuit's inputs that the layer before feeds, such as [x]",
            ));
        }
        let layer = circuit.layer(inputs, &observables).map_err(|e| match e {
            chimera_circuit::qasm::CircuitLayerError::Layer(e) => {
                invalid("model.observables", format!("do not fit the circuit: {e}"))
            }
            other => invalid("model.inputs", format!("do not fit the circuit: {other}")),
        })?;
        Ok(Some(layer))
    }

    pub fn is_hybrid(&self) -> bool {
        matches!(self, Self::Hybrid { .. })
    }

    /// The trained parameters between the layers the spec itself sizes, which the model has at
    /// least whatever its data (saturating): the products of consecutive hidden widths, and a
    /// CNN's convolutions between its channels.
    fn parameters_at_least(&self) -> usize {
        let between = |widths: &[usize], per_pair: usize| {
            widths.windows(2).fold(0usize, |sum, pair| {
                sum.saturating_add(pair[0].saturating_mul(pair[1]).saturating_mul(per_pair))
            })
        };
        match self {
            Self::Mlp { hidden, .. } => between(hidden, 1),
            Self::Cnn {
                channels,
                kernel_size,
                hidden,
                ..
            } => {
                let window = kernel_size.saturating_mul(*kernel_size);
                // Each image channel in feeds the first convolution: at least one.
                let first = channels.first().map_or(0, |c| c.saturating_mul(window));
                first
                    .saturating_add(between(channels, window))
                    .saturating_add(between(hidden, 1))
            }
            Self::Hybrid { .. } => 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Relu,
    Gelu,
    Tanh,
    Sigmoid,
}

impl Activation {
    /// Whether the activation never decreases (GELU dips below zero for negative inputs).
    pub fn is_monotonic(self) -> bool {
        !matches!(self, Activation::Gelu)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    #[default]
    CrossEntropy,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(
    tag = "name",
    rename_all = "snake_case",
    try_from = "settings::Optimizer"
)]
pub enum OptimizerSpec {
    Adamw {
        learning_rate: f64,
        weight_decay: f64,
        beta1: f64,
        beta2: f64,
    },
    Sgd {
        learning_rate: f64,
        momentum: f64,
        weight_decay: f64,
    },
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        Self::Adamw {
            learning_rate: defaults::learning_rate(),
            weight_decay: 0.0,
            beta1: defaults::beta1(),
            beta2: defaults::beta2(),
        }
    }
}

impl OptimizerSpec {
    pub fn learning_rate(&self) -> f64 {
        match self {
            Self::Adamw { learning_rate, .. } | Self::Sgd { learning_rate, .. } => *learning_rate,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    try_from = "settings::Schedule"
)]
pub enum Schedule {
    #[default]
    Constant,
    /// From the learning rate down to zero over the run, along half a cosine.
    Cosine,
    /// The learning rate times `gamma` every `every` epochs.
    Step { every: usize, gamma: f64 },
}

impl Schedule {
    /// The learning rate for `epoch` (0-based) of `epochs`.
    pub fn learning_rate(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match self {
            Self::Constant => base,
            Self::Cosine => {
                base * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos())
            }
            Self::Step { every, gamma } => base * gamma.powi((epoch / every) as i32),
        }
    }
}

impl TrainSpec {
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        let mut spec: Self =
            serde_saphyr::from_str(text).map_err(|e| yaml_error(TRAINING, text, e))?;
        spec.validate()?;
        spec.source = text.to_owned();
        Ok(spec)
    }

    /// The spec of a job's `chimera-train` block, with a hybrid model's `circuit: N` read from
    /// the job's N-th `qasm3` block.
    pub fn of_block(job: &Job, block: &CodeBlock) -> Result<Self, SpecError> {
        let circuits: Vec<&str> = job
            .code_blocks
            .iter()
            .filter(|b| b.kind == BlockKind::OpenQasm3)
            .map(|b| b.code.as_str())
            .collect();
        Self::from_yaml(&block.code)?.with_circuit_from(&circuits)
    }

    /// The spec with a hybrid model's `circuit: N` replaced by the text of `qasm3_blocks[N - 1]`,
    /// checked, and its source rewritten to hold that text, so that checkpoints and the stored
    /// model carry the whole circuit.
    pub fn with_circuit_from(mut self, qasm3_blocks: &[&str]) -> Result<Self, SpecError> {
        let ModelSpec::Hybrid { circuit, .. } = &mut self.model else {
            return Ok(self);
        };
        let CircuitSource::Block(n) = *circuit else {
            return Ok(self);
        };
        let program = qasm3_blocks.get(n.wrapping_sub(1)).ok_or_else(|| {
            invalid(
                "model.circuit",
                format!(
                    "is {n}, but the job has {} qasm3 block(s)",
                    qasm3_blocks.len()
                ),
            )
        })?;
        *circuit = CircuitSource::Program((*program).to_owned());
        self.validate()?;
        self.source = serde_saphyr::to_string(&self).map_err(|e| SpecError::Yaml {
            spec: TRAINING,
            at: None,
            message: format!("cannot write the resolved spec: {e}"),
        })?;
        Ok(self)
    }

    fn validate(&self) -> Result<(), SpecError> {
        if self.epochs == 0 {
            return Err(invalid("epochs", "must be at least 1"));
        }
        if self.checkpoint_every == Some(0) {
            return Err(invalid("checkpoint_every", "must be at least 1 step"));
        }
        if self.batch_size == 0 {
            return Err(invalid("batch_size", "must be at least 1"));
        }
        if !(self.validation_split > 0.0 && self.validation_split < 1.0) {
            return Err(invalid(
                "validation_split",
                "must be a fraction between 0 and 1 (exclusive), such as 0.2",
            ));
        }
        if self.model.hidden().contains(&0) {
            return Err(invalid("model.hidden", "widths must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.model.dropout()) {
            return Err(invalid("model.dropout", "must be at least 0 and below 1"));
        }
        if self.model.parameters_at_least() > MAX_PARAMETERS {
            return Err(invalid(
                "model",
                format!(
                    "would have more than {MAX_PARAMETERS} trained parameters: use fewer or \
                     narrower layers (model.hidden, model.channels, model.kernel_size)"
                ),
            ));
        }
        if let ModelSpec::Cnn {
            channels,
            kernel_size,
            pool,
            ..
        } = &self.model
        {
            if channels.is_empty() || channels.contains(&0) {
                return Err(invalid(
                    "model.channels",
                    "must list at least one convolution block, each of at least 1 channel",
                ));
            }
            if kernel_size % 2 == 0 {
                return Err(invalid(
                    "model.kernel_size",
                    "must be odd (1, 3, 5, ...) so that a convolution keeps the image size",
                ));
            }
            if *pool == 0 {
                return Err(invalid("model.pool", "must be at least 1 (1: no pooling)"));
            }
        }
        match &self.model {
            ModelSpec::Hybrid {
                circuit: CircuitSource::Program(_),
                ..
            } => {
                self.model.quantum_layer()?;
            }
            ModelSpec::Hybrid {
                circuit: CircuitSource::Block(0),
                ..
            } => return Err(invalid("model.circuit", "counts qasm3 blocks from 1")),
            _ => {}
        }
        let rate = self.optimizer.learning_rate();
        if !(rate.is_finite() && rate > 0.0) {
            return Err(invalid(
                "optimizer.learning_rate",
                "must be a positive number",
            ));
        }
        match self.optimizer {
            OptimizerSpec::Sgd {
                momentum,
                weight_decay,
                ..
            } => {
                if !(0.0..1.0).contains(&momentum) {
                    return Err(invalid(
                        "optimizer.momentum",
                        "must be at least 0 and below 1",
                    ));
                }
                if weight_decay < 0.0 {
                    return Err(invalid("optimizer.weight_decay", "must not be negative"));
                }
            }
            OptimizerSpec::Adamw {
                weight_decay,
                beta1,
                beta2,
                ..
            } => {
                if weight_decay < 0.0 {
                    return Err(invalid("optimizer.weight_decay", "must not be negative"));
                }
                if !((0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2)) {
                    return Err(invalid(
                        "optimizer.beta1/beta2",
                        "must be at least 0 and below 1",
                    ));
                }
            }
        }
        if let Schedule::Step { every, gamma } = self.schedule {
            if every == 0 {
                return Err(invalid("schedule.every", "must be at least 1 epoch"));
            }
            if !(gamma > 0.0 && gamma <= 1.0) {
                return Err(invalid("schedule.gamma", "must be above 0 and at most 1"));
            }
        }
        Ok(())
    }
}
