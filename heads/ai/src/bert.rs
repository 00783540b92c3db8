//! BERT's encoder (the sentence encoders' model: MiniLM-L6 and the like) for inference, computing
//! what candle-transformers' `BertModel` computes from the same weights and config (that crate is
//! not a dependency: it compiles every model it has, for a struct of nine numbers), with the
//! element-wise work on every thread. candle maps an element-wise op on one thread, and its exact
//! GELU calls libm's `erf` per element: on the MiniLM benchmark's batch (64 sentences of about 30
//! tokens, 2 threads) that was about 19 ms per layer, while the other thread waited; here it is a
//! vectorised, parallel op (about 4 ms), agreeing with candle's within 1e-6 (benches/RESULTS.md).
//! The linear layers' products, bias included, run on the same threads as that work (`CpuLinear`).

use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder, embedding, layer_norm, linear};
use serde::Deserialize;

use crate::cpu_layers::{Matrix, elements, matmul};
use crate::parallel::for_each_parallel;

/// What the encoder needs of a BERT `config.json`, as Hugging Face's transformers writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: HiddenAct,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    // Read only to refuse the relative kinds, which this encoder does not compute.
    #[serde(rename = "position_embedding_type", default)]
    _positions: AbsolutePositions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HiddenAct {
    /// The exact GELU, with erf.
    #[serde(rename = "gelu")]
    Gelu,
    /// GELU's tanh approximation.
    #[serde(
        rename = "gelu_new",
        alias = "gelu_pytorch_tanh",
        alias = "geluapproximate"
    )]
    GeluApproximate,
    #[serde(rename = "relu")]
    Relu,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
enum AbsolutePositions {
    #[default]
    #[serde(rename = "absolute")]
    Absolute,
}

pub struct Bert {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    activation: HiddenAct,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    out: Linear,
    out_norm: LayerNorm,
}

impl Bert {
    /// The weights under the root of `vb`, or under `bert.` as in checkpoints of BERT with a head.
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let vb = match vb.contains_tensor("embeddings.word_embeddings.weight") {
            true => vb,
            false => vb.pp("bert"),
        };
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let e = vb.pp("embeddings");
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let attention = l.pp("attention");
                Ok(Layer {
                    query: linear(h, h, attention.pp("self.query"))?,
                    key: linear(h, h, attention.pp("self.key"))?,
                    value: linear(h, h, attention.pp("self.value"))?,
                    attention_out: linear(h, h, attention.pp("output.dense"))?,
                    attention_norm: layer_norm(h, eps, attention.pp("output.LayerNorm"))?,
                    intermediate: linear(h, config.intermediate_size, l.pp("intermediate.dense"))?,
                    out: linear(config.intermediate_size, h, l.pp("output.dense"))?,
                    out_norm: layer_norm(h, eps, l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            words: embedding(config.vocab_size, h, e.pp("word_embeddings"))?,
            positions: embedding(
                config.max_position_embeddings,
                h,
                e.pp("position_embeddings"),
            )?,
            token_types: embedding(config.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            embedding_norm: layer_norm(h, eps, e.pp("LayerNorm"))?,
            layers,
            heads: config.num_attention_heads,
            activation: config.hidden_act,
        })
    }

    /// The last layer's hidden states [batch, tokens, hidden] of `ids` [batch, tokens], whose
    /// `mask` is 1 on real tokens and 0 on padding.
    pub fn forward(&self, ids: &Tensor, token_types: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, tokens) = ids.dims2()?;
        let positions = Tensor::arange(0u32, tokens as u32, ids.device())?;
        let x = (self.words.forward(ids)? + self.token_types.forward(token_types)?)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        let mut x = self.embedding_norm.forward(&x)?;
        // Added to the attention scores: 0 on real tokens, the lowest f32 on padding.
        let mask_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * f64::from(f32::MAX))?
            .reshape((batch, 1, 1, tokens))?;
        for layer in &self.layers {
            x = self.layer(layer, &x, &mask_bias)?;
        }
        Ok(x)
    }

    fn layer(&self, l: &Layer, x: &Tensor, mask_bias: &Tensor) -> Result<Tensor> {
        let (batch, tokens, hidden) = x.dims3()?;
        let head_size = hidden / self.heads;
        // [batch, tokens, hidden] -> [batch, heads, tokens, head_size]
        let by_head = |t: Tensor| {
            t.reshape((batch, tokens, self.heads, head_size))?
                .transpose(1, 2)?
                .contiguous()
        };
        let query = by_head((apply_linear(&l.query, x)? / (head_size as f64).sqrt())?)?;
        let key = by_head(apply_linear(&l.key, x)?)?;
        let value = by_head(apply_linear(&l.value, x)?)?;
        let scores = query.matmul(&key.t()?)?.broadcast_add(mask_bias)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = weights
            .matmul(&value)?
            .transpose(1, 2)?
            .reshape((batch, tokens, hidden))?;
        let x = l
            .attention_norm
            .forward(&(apply_linear(&l.attention_out, &context)? + x)?)?;
        let inner = self.activate(&apply_linear(&l.intermediate, &x)?)?;
        l.out_norm.forward(&(apply_linear(&l.out, &inner)? + x)?)
    }

    fn activate(&self, x: &Tensor) -> Result<Tensor> {
        match self.activation {
            HiddenAct::Gelu if x.device().is_cpu() && x.dtype() == DType::F32 => {
                x.contiguous()?.apply_op1_no_bwd(&GeluErf)
            }
            HiddenAct::Gelu => x.gelu_erf(),
            HiddenAct::GeluApproximate => x.gelu(),
            HiddenAct::Relu => x.relu(),
        }
    }
}

/// `l` applied to x [.., k]: on the CPU in f32 by [`CpuLinear`], elsewhere by candle.
fn apply_linear(l: &Linear, x: &Tensor) -> Result<Tensor> {
    match l.bias() {
        Some(bias) if x.device().is_cpu() && x.dtype() == DType::F32 => {
            let weight = l.weight().contiguous()?;
            x.contiguous()?
                .apply_op3_no_bwd(&weight, &bias.contiguous()?, &CpuLinear)
        }
        _ => l.forward(x),
    }
}

/// `x [.., k] · weightᵀ + bias`, weight [n, k], on the CPU: the rows of x in parts over candle's
/// threads, each part one single-threaded product into rows that already hold the bias. candle's
/// own Linear runs its product on rayon's threads while candle's barrier-pool worker spins after
/// the element-wise op before it (two pools on the same cores), then adds the bias in a pass of
/// its own.
struct CpuLinear;

impl CustomOp3 for CpuLinear {
    fn name(&self) -> &'static str {
        "chimera-linear"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, k) = weight_layout.shape().dims2()?;
        let dims = x_layout.dims();
        if k == 0 || n == 0 || dims.last() != Some(&k) || bias_layout.dims() != [n] {
            candle_core::bail!(
                "linear: input {dims:?}, weight {:?}, bias {:?} do not fit",
                weight_layout.dims(),
                bias_layout.dims()
            );
        }
        let x = elements(x, x_layout, "linear input")?;
        let weight = elements(weight, weight_layout, "linear weight")?;
        let bias = elements(bias, bias_layout, "linear bias")?;
        let rows = x.len() / k;
        // Two parts per thread: enough to even out, few enough that the weight packing per
        // product stays small beside its arithmetic.
        let part = rows
            .div_ceil(2 * candle_core::utils::get_num_threads())
            .max(1);
        let mut out = vec![0f32; rows * n];
        for_each_parallel(
            out.chunks_mut(part * n).zip(x.chunks(part * k)),
            |(out, x)| {
                for row in out.chunks_mut(n) {
                    row.copy_from_slice(bias);
                }
                let (m, weight_t) = (x.len() / k, Matrix::transposed(weight, k));
                matmul(out, m, n, k, Matrix::rows(x, k), weight_t, true);
            },
        );
        let shape = [&dims[..dims.len() - 1], &[n]].concat();
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

/// The exact GELU, x Φ(x) = x (1 + erf(x / √2)) / 2, on the CPU: contiguous f32 only.
struct GeluErf;

/// Elements per parallel task.
const CHUNK: usize = 16 * 1024;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "chimera-gelu-erf"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = elements(x, layout, "gelu input")?;
        let mut out = vec![0f32; x.len()];
        for_each_parallel(out.chunks_mut(CHUNK).zip(x.chunks(CHUNK)), |(out, x)| {
            out.iter_mut().zip(x).for_each(|(o, &x)| *o = gelu_erf(x))
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// x Φ(x) with erf from Abramowitz and Stegun 7.1.26 (absolute error under 1.5e-7): branch-free
/// arithmetic, so that the compiler vectorises a loop of it.
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    let u = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * u);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let erf_u = 1.0 - poly * exp_nonpositive(-u * u);
    0.5 * x * (1.0 + erf_u.copysign(x))
}

/// e^y for y <= 0 (relative error under 2e-7; y below -87 taken as -87, e^-87 = 1.6e-38), branch-free: y = n ln 2 + r with
/// |r| <= ln 2 / 2, e^r by Cephes' polynomial, 2^n written into the exponent bits.
#[inline(always)]
fn exp_nonpositive(y: f32) -> f32 {
    // Adding 1.5 * 2^23 rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let y = y.max(-87.0);
    let shifted = y * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // ln 2 in two parts, so that r keeps its low bits.
    let r = y - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_2e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let exponent = (shifted.to_bits() as i32 - ROUND.to_bits() as i32 + 127) << 23;
    e_r * f32::from_bits(exponent as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// MiniLM-L6's config.json as its package ships it.
    const MINILM_CONFIG: &str = r#"{
        "_name_or_path": "nreimers/MiniLM-L6-H384-uncased", "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": false, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": 384, "initializer_range": 0.02,
        "intermediate_size": 1536, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
        "model_type": "bert", "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0,
        "position_embedding_type": "absolute", "transformers_version": "4.8.2",
        "type_vocab_size": 2, "use_cache": true, "vocab_size": 30522}"#;

    #[test]
    fn a_bert_config_is_read_and_what_the_encoder_cannot_compute_is_refused() {
        let config: Config = serde_json::from_str(MINILM_CONFIG).unwrap();
        assert_eq!(
            (
                config.hidden_size,
                config.num_hidden_layers,
                config.num_attention_heads
            ),
            (384, 6, 12)
        );
        assert_eq!((config.intermediate_size, config.vocab_size), (1536, 30522));
        assert_eq!(config.hidden_act, HiddenAct::Gelu);
        assert_eq!(config.layer_norm_eps, 1e-12);

        let with = |from: &str, to: &str| {
            assert!(MINILM_CONFIG.contains(from));
            serde_json::from_str::<Config>(&MINILM_CONFIG.replace(from, to))
        };
        for tanh in ["gelu_new", "gelu_pytorch_tanh"] {
            let config = with("\"gelu\"", &format!("\"{tanh}\"")).unwrap();
            assert_eq!(config.hidden_act, HiddenAct::GeluApproximate);
        }
        let refused = with("\"absolute\"", "\"relative_key\"").unwrap_err();
        assert!(refused.to_string().contains("relative_key"), "{refused}");
        let refused = with("\"gelu\"", "\"silu\"").unwrap_err();
        assert!(refused.to_string().contains("silu"), "{refused}");
        // Written by older transformers, which had no relative kinds.
        assert!(with("\"position_embedding_type\": \"absolute\",", "").is_ok());
    }

    #[test]
    fn exp_agrees_with_libm_over_its_range() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let y = -(i as f32) * 1e-4;
            let exact = f64::from(y).exp();
            worst = worst.max((f64::from(exp_nonpositive(y)) - exact).abs() / exact);
        }
        assert!(worst < 2e-7, "relative error {worst:e}");
        assert!((0.0..2e-38).contains(&exp_nonpositive(-200.0)));
    }

    /// Against candle's exact GELU (libm's erf) on values across the range that matters, in a
    /// tensor longer than one chunk with a tail, so that every part of the parallel split runs.
    #[test]
    fn gelu_agrees_with_candles_exact_gelu() {
        let n = 3 * CHUNK + 77;
        let values: Vec<f32> = (0..n).map(|i| (i as f32 / n as f32 - 0.5) * 24.0).collect();
        let x = Tensor::from_vec(values, n, &Device::Cpu).unwrap();
        let ours: Vec<f32> = x.apply_op1_no_bwd(&GeluErf).unwrap().to_vec1().unwrap();
        let candles: Vec<f32> = x.gelu_erf().unwrap().to_vec1().unwrap();
        for ((a, b), x) in ours.iter().zip(&candles).zip(x.to_vec1::<f32>().unwrap()) {
            assert!(
                (a - b).abs() <= 1e-6 * x.abs().max(1.0),
                "gelu({x}): {a} against {b}"
            );
        }
    }
}
