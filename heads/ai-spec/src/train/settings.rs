//! The spec's tagged settings (`model`, `optimizer`, `schedule`) as written: each read as one flat
//! mapping of every kind's keys, then checked against its kind. serde's internally tagged enums
//! read the whole mapping into a buffer first, which loses the places: a wrong value deep in
//! `model` was reported at the line of `model:`, naming `model` rather than the key.

use serde::{Deserialize, Deserializer};

use super::{Activation, CircuitSource, ModelSpec, OptimizerSpec, defaults};

/// Refuses the first key given that a `kind` of `section` does not take.
fn only(section: &str, kind: &str, given: &[(&str, bool)], takes: &[&str]) -> Result<(), String> {
    match given
        .iter()
        .find(|(key, present)| *present && !takes.contains(key))
    {
        Some((key, _)) => Err(format!(
            "`{section}.{key}` is not a setting of `{kind}`, which takes {}",
            match takes {
                [] => "none".to_owned(),
                _ => takes.join(", "),
            }
        )),
        None => Ok(()),
    }
}

fn required<T>(section: &str, key: &str, kind: &str, value: Option<T>) -> Result<T, String> {
    value.ok_or_else(|| format!("`{section}.{key}` is missing: `{kind}` needs it"))
}

/// The key that says which kind a section is (`kind`, or the optimizer's `name`).
fn kind<T>(section: &str, key: &str, value: Option<T>, one_of: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("`{section}.{key}` is missing: it is one of {one_of}"))
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ModelKind {
    Mlp,
    Cnn,
    Hybrid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Model {
    kind: Option<ModelKind>,
    hidden: Option<Vec<usize>>,
    activation: Option<Activation>,
    dropout: Option<f64>,
    channels: Option<Vec<usize>>,
    kernel_size: Option<usize>,
    pool: Option<usize>,
    batch_norm: Option<bool>,
    circuit: Option<CircuitSource>,
    #[serde(default, deserialize_with = "parameter_names")]
    inputs: Option<Vec<String>>,
    observables: Option<Vec<String>>,
}

impl TryFrom<Model> for ModelSpec {
    type Error = String;

    fn try_from(m: Model) -> Result<Self, String> {
        let given = [
            ("hidden", m.hidden.is_some()),
            ("activation", m.activation.is_some()),
            ("dropout", m.dropout.is_some()),
            ("channels", m.channels.is_some()),
            ("kernel_size", m.kernel_size.is_some()),
            ("pool", m.pool.is_some()),
            ("batch_norm", m.batch_norm.is_some()),
            ("circuit", m.circuit.is_some()),
            ("inputs", m.inputs.is_some()),
            ("observables", m.observables.is_some()),
        ];
        Ok(match kind("model", "kind", m.kind, "mlp, cnn, hybrid")? {
            ModelKind::Mlp => {
                only("model", "mlp", &given, &["hidden", "activation", "dropout"])?;
                ModelSpec::Mlp {
                    hidden: required("model", "hidden", "mlp", m.hidden)?,
                    activation: m.activation.unwrap_or_default(),
                    dropout: m.dropout.unwrap_or_default(),
                }
            }
            ModelKind::Cnn => {
                let takes = [
                    "channels",
                    "kernel_size",
                    "pool",
                    "batch_norm",
                    "hidden",
                    "activation",
                    "dropout",
                ];
                only("model", "cnn", &given, &takes)?;
                ModelSpec::Cnn {
                    channels: required("model", "channels", "cnn", m.channels)?,
                    kernel_size: m.kernel_size.unwrap_or_else(defaults::kernel_size),
                    pool: m.pool.unwrap_or_else(defaults::pool),
                    batch_norm: m.batch_norm.unwrap_or_else(defaults::batch_norm),
                    hidden: m.hidden.unwrap_or_default(),
                    activation: m.activation.unwrap_or_default(),
                    dropout: m.dropout.unwrap_or_default(),
                }
            }
            ModelKind::Hybrid => {
                only(
                    "model",
                    "hybrid",
                    &given,
                    &["circuit", "inputs", "observables"],
                )?;
                ModelSpec::Hybrid {
                    circuit: required("model", "circuit", "hybrid", m.circuit)?,
                    inputs: required("model", "inputs", "hybrid", m.inputs)?,
                    observables: m.observables.unwrap_or_default(),
                }
            }
        })
    }
}

/// A list of circuit parameter names, refusing with a hint those that YAML reads as booleans
/// (`y`, `n`, `on`, `off`, …: a parameter named `y` is common).
fn parameter_names<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Name(String);
    impl<'de> Deserialize<'de> for Name {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl serde::de::Visitor<'_> for Visitor {
                type Value = Name;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a circuit parameter's name")
                }
                fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Name, E> {
                    Ok(Name(name.to_owned()))
                }
                fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Name, E> {
                    Err(E::custom(
                        "a name that YAML reads as a boolean (y, n, yes, no, on, off): quote it, \
                         as in inputs: ['y']",
                    ))
                }
            }
            d.deserialize_any(Visitor)
        }
    }
    let names: Vec<Name> = Deserialize::deserialize(d)?;
    Ok(Some(names.into_iter().map(|Name(n)| n).collect()))
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum OptimizerName {
    Adamw,
    Sgd,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Optimizer {
    name: Option<OptimizerName>,
    learning_rate: Option<f64>,
    weight_decay: Option<f64>,
    beta1: Option<f64>,
    beta2: Option<f64>,
    momentum: Option<f64>,
}

impl TryFrom<Optimizer> for OptimizerSpec {
    type Error = String;

    fn try_from(o: Optimizer) -> Result<Self, String> {
        let given = [
            ("learning_rate", o.learning_rate.is_some()),
            ("weight_decay", o.weight_decay.is_some()),
            ("beta1", o.beta1.is_some()),
            ("beta2", o.beta2.is_some()),
            ("momentum", o.momentum.is_some()),
        ];
        let learning_rate = o.learning_rate.unwrap_or_else(defaults::learning_rate);
        let weight_decay = o.weight_decay.unwrap_or_default();
        Ok(match kind("optimizer", "name", o.name, "adamw, sgd")? {
            OptimizerName::Adamw => {
                let takes = ["learning_rate", "weight_decay", "beta1", "beta2"];
                only("optimizer", "adamw", &given, &takes)?;
                OptimizerSpec::Adamw {
                    learning_rate,
                    weight_decay,
                    beta1: o.beta1.unwrap_or_else(defaults::beta1),
                    beta2: o.beta2.unwrap_or_else(defaults::beta2),
                }
            }
            OptimizerName::Sgd => {
                let takes = ["learning_rate", "momentum", "weight_decay"];
                only("optimizer", "sgd", &given, &takes)?;
                OptimizerSpec::Sgd {
                    learning_rate,
                    momentum: o.momentum.unwrap_or_default(),
                    weight_decay,
                }
            }
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ScheduleKind {
    Constant,
    Cosine,
    Step,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Schedule {
    kind: Option<ScheduleKind>,
    every: Option<usize>,
    gamma: Option<f64>,
}

impl TryFrom<Schedule> for super::Schedule {
    type Error = String;

    fn try_from(s: Schedule) -> Result<Self, String> {
        let given = [("every", s.every.is_some()), ("gamma", s.gamma.is_some())];
        Ok(
            match kind("schedule", "kind", s.kind, "constant, cosine, step")? {
                ScheduleKind::Constant => {
                    only("schedule", "constant", &given, &[])?;
                    Self::Constant
                }
                ScheduleKind::Cosine => {
                    only("schedule", "cosine", &given, &[])?;
                    Self::Cosine
                }
                ScheduleKind::Step => Self::Step {
                    every: required("schedule", "every", "step", s.every)?,
                    gamma: required("schedule", "gamma", "step", s.gamma)?,
                },
            },
        )
    }
}
