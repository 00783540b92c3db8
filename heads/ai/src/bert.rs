//! BERT's encoder (the sentence encoders' model: MiniLM-L6 and the like) for inference, computing
//! what candle-transformers' `BertModel` computes from the same weights and config (that crate is
//! not a dependency: it compiles every model it has, for a struct of nine numbers), with the
//! element-wise work on every thread. candle maps an element-wise op on one thread, and its exact
//! GELU calls libm's `erf` per element, while the other threads wait; here it is a vectorised,
//! parallel op, agreeing with candle's within 1e-6 (the times are in benches/RESULTS.md).
//! The linear layers' products, bias included, run on the same threads as that work (`CpuLinear`),
//! the query, key and value layers as one product, and the attention over all heads is one op
//! (`CpuAttention`) that reads that product where it lies: candle's way, a transposed copy of each
//! of the three, a batched product on rayon's threads, the mask added, a softmax, another batched
//! product and a copy back.

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Module, Result, Shape, Tensor,
};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder, embedding, layer_norm, linear};
use serde::Deserialize;
use std::mem::MaybeUninit;

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
    /// The query, key and value layers as one [3 hidden, hidden]: one product computes all three.
    query_key_value: Linear,
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
                    query_key_value: query_key_value(&attention, h)?,
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
        let tokens = ids.dim(1)?;
        let positions = Tensor::arange(0u32, tokens as u32, ids.device())?;
        let x = (self.words.forward(ids)? + self.token_types.forward(token_types)?)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        let mut x = self.embedding_norm.forward(&x)?;
        // Added to the attention scores: 0 on real tokens, the lowest f32 on padding.
        let mask_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * f64::from(f32::MAX))?;
        for layer in &self.layers {
            x = self.layer(layer, &x, &mask_bias)?;
        }
        Ok(x)
    }

    fn layer(&self, l: &Layer, x: &Tensor, mask_bias: &Tensor) -> Result<Tensor> {
        let query_key_value = apply_linear(&l.query_key_value, x)?;
        let context = if on_our_cpu_ops(x) {
            query_key_value.apply_op2_no_bwd(mask_bias, &CpuAttention { heads: self.heads })?
        } else {
            attention(&query_key_value, mask_bias, self.heads)?
        };
        let x = l
            .attention_norm
            .forward(&(apply_linear(&l.attention_out, &context)? + x)?)?;
        let inner = self.activate(&apply_linear(&l.intermediate, &x)?)?;
        l.out_norm.forward(&(apply_linear(&l.out, &inner)? + x)?)
    }

    fn activate(&self, x: &Tensor) -> Result<Tensor> {
        match self.activation {
            HiddenAct::Gelu if on_our_cpu_ops(x) => x.contiguous()?.apply_op1_no_bwd(&GeluErf),
            HiddenAct::Gelu => x.gelu_erf(),
            HiddenAct::GeluApproximate => x.gelu(),
            HiddenAct::Relu => x.relu(),
        }
    }
}

/// Whether `x` goes through the ops written here (`CpuLinear`, `CpuAttention`, `GeluErf`): f32 on
/// the CPU. Anything else goes through candle's.
fn on_our_cpu_ops(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// The query, key and value layers under `vb` (`self.query`, `self.key`, `self.value`) as one
/// linear layer [3 hidden, hidden], their outputs side by side.
fn query_key_value(vb: &VarBuilder, hidden: usize) -> Result<Linear> {
    let parts = ["self.query", "self.key", "self.value"].map(|name| vb.pp(name));
    let weights = parts
        .iter()
        .map(|p| p.get((hidden, hidden), "weight"))
        .collect::<Result<Vec<_>>>()?;
    let biases = parts
        .iter()
        .map(|p| p.get(hidden, "bias"))
        .collect::<Result<Vec<_>>>()?;
    Ok(Linear::new(
        Tensor::cat(&weights, 0)?,
        Some(Tensor::cat(&biases, 0)?),
    ))
}

/// Scaled dot-product attention with candle's ops, for devices other than the CPU:
/// `query_key_value` [batch, tokens, 3 hidden], `mask_bias` [batch, tokens] (added to the scores)
/// in, the context [batch, tokens, hidden] out.
fn attention(query_key_value: &Tensor, mask_bias: &Tensor, heads: usize) -> Result<Tensor> {
    let (batch, tokens, three_hidden) = query_key_value.dims3()?;
    let hidden = three_hidden / 3;
    let head_size = hidden / heads;
    // Part `i` (query, key, value) as [batch, heads, tokens, head_size].
    let part = |i: usize| {
        query_key_value
            .narrow(2, i * hidden, hidden)?
            .reshape((batch, tokens, heads, head_size))?
            .transpose(1, 2)?
            .contiguous()
    };
    let query = (part(0)? / (head_size as f64).sqrt())?;
    let scores = query
        .matmul(&part(1)?.t()?)?
        .broadcast_add(&mask_bias.reshape((batch, 1, 1, tokens))?)?;
    candle_nn::ops::softmax_last_dim(&scores)?
        .matmul(&part(2)?)?
        .transpose(1, 2)?
        .reshape((batch, tokens, hidden))
}

/// [`attention`] on the CPU, f32, contiguous: each sequence a task on candle's threads, each head
/// two single-threaded products that read the query, key and value in place in the
/// `query_key_value` rows, with the softmax between them.
struct CpuAttention {
    heads: usize,
}

impl CustomOp2 for CpuAttention {
    fn name(&self) -> &'static str {
        "chimera-attention"
    }

    fn cpu_fwd(
        &self,
        query_key_value: &CpuStorage,
        qkv_layout: &Layout,
        mask_bias: &CpuStorage,
        mask_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (batch, tokens, three_hidden) = qkv_layout.shape().dims3()?;
        let hidden = three_hidden / 3;
        if tokens == 0
            || hidden == 0
            || three_hidden % 3 != 0
            || hidden % self.heads != 0
            || mask_layout.dims() != [batch, tokens]
        {
            candle_core::bail!(
                "attention: query/key/value {:?} and mask {:?} do not fit {} heads",
                qkv_layout.dims(),
                mask_layout.dims(),
                self.heads
            );
        }
        let query_key_value = elements(query_key_value, qkv_layout, "attention input")?;
        let mask_bias = elements(mask_bias, mask_layout, "attention mask")?;
        let head_size = hidden / self.heads;
        let scale = 1.0 / (head_size as f32).sqrt();
        let mut context = vec![0f32; batch * tokens * hidden];
        let sequences = context
            .chunks_mut(tokens * hidden)
            .zip(query_key_value.chunks(tokens * three_hidden))
            .zip(mask_bias.chunks(tokens));
        for_each_parallel(sequences, |((context, rows), mask_bias)| {
            let mut scores = vec![0f32; tokens * tokens];
            let mut head_context = vec![0f32; tokens * head_size];
            for head in 0..self.heads {
                // Row t of this head's query, key or value: rows[t * 3 hidden + part * hidden + head * head_size ..][..head_size].
                let part = |i: usize| &rows[i * hidden + head * head_size..];
                let query = Matrix::rows(part(0), three_hidden);
                let key_t = Matrix::transposed(part(1), three_hidden);
                matmul(&mut scores, tokens, tokens, head_size, query, key_t, false);
                pulp::Arch::new().dispatch(|| {
                    for row in scores.chunks_mut(tokens) {
                        softmax_row(row, scale, mask_bias)
                    }
                });
                let value = Matrix::rows(part(2), three_hidden);
                let weights = Matrix::rows(&scores, tokens);
                matmul(
                    &mut head_context,
                    tokens,
                    head_size,
                    tokens,
                    weights,
                    value,
                    false,
                );
                for (out, from) in context
                    .chunks_mut(hidden)
                    .zip(head_context.chunks(head_size))
                {
                    out[head * head_size..][..head_size].copy_from_slice(from);
                }
            }
        });
        Ok((
            CpuStorage::F32(context),
            Shape::from((batch, tokens, hidden)),
        ))
    }
}

/// `row` = softmax(row · scale + mask_bias), in place. Inlined into a pulp dispatch, so that the
/// element-wise passes are vectorised for the CPU's best instruction set; the maximum and the sum
/// are passes of their own, as a reduction in a loop keeps the compiler from vectorising it.
#[inline(always)]
fn softmax_row(row: &mut [f32], scale: f32, mask_bias: &[f32]) {
    for (score, &bias) in row.iter_mut().zip(mask_bias) {
        *score = *score * scale + bias;
    }
    let max = row.iter().fold(f32::MIN, |max, &score| max.max(score));
    // A masked score, near the lowest f32, gives e^-87 = 1.6e-38: nothing beside the largest,
    // which gives 1.
    row.iter_mut()
        .for_each(|score| *score = exp_nonpositive(*score - max));
    let inverse = 1.0 / row.iter().sum::<f32>();
    row.iter_mut().for_each(|score| *score *= inverse);
}

/// `l` applied to x [.., k]: on the CPU in f32 by [`CpuLinear`], elsewhere by candle.
fn apply_linear(l: &Linear, x: &Tensor) -> Result<Tensor> {
    match l.bias() {
        Some(bias) if on_our_cpu_ops(x) => {
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
        // Each row starts as the bias, which the product then adds to. The rows are written in
        // their parts on the pool's threads, not zero-filled nor copied on this thread first.
        let mut out = Vec::<f32>::with_capacity(rows * n);
        let parts = out.spare_capacity_mut()[..rows * n]
            .chunks_mut(part * n)
            .zip(x.chunks(part * k));
        for_each_parallel(parts, |(out, x)| {
            for row in out.chunks_mut(n) {
                row.iter_mut().zip(bias).for_each(|(o, &b)| {
                    o.write(b);
                });
            }
            // SAFETY: every element of the part was written just above, and f32 and
            // MaybeUninit<f32> have the same layout.
            let out = unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) };
            let (m, weight_t) = (x.len() / k, Matrix::transposed(weight, k));
            matmul(out, m, n, k, Matrix::rows(x, k), weight_t, true);
        });
        // SAFETY: the parts cover the first rows * n elements and each was written; a panic in
        // a part reaches this thread (candle's pool passes it on) before this line.
        unsafe { out.set_len(rows * n) };
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
            // Compiled for each instruction set pulp knows and run on the best this CPU has: 16
            // lanes at a time with AVX-512, where the baseline build would use SSE2's 4.
            pulp::Arch::new()
                .dispatch(|| out.iter_mut().zip(x).for_each(|(o, &x)| *o = gelu_erf(x)))
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

    /// Values in [-1, 1) that look random enough for a product, the same in every run.
    fn values(shape: &[usize], seed: usize) -> Tensor {
        let n = shape.iter().product::<usize>();
        let v = (0..n)
            .map(|i| ((i * 7_919 + seed * 104_729) % 1_000) as f32 / 500.0 - 1.0)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn largest_difference(a: &Tensor, b: &Tensor) -> Result<f32> {
        assert_eq!(a.dims(), b.dims());
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar()
    }

    /// Against candle's Linear, with a row count that the parallel parts do not divide, so that
    /// a row left unwritten by a part would show.
    #[test]
    fn the_cpu_linear_layer_agrees_with_candles() {
        let (rows, k, n) = (37, 24, 19);
        let x = values(&[rows, k], 1).reshape((1, rows, k)).unwrap();
        let layer = Linear::new(values(&[n, k], 2), Some(values(&[n], 3)));
        let ours = apply_linear(&layer, &x).unwrap();
        let candles = layer.forward(&x).unwrap();
        assert!(largest_difference(&ours, &candles).unwrap() < 1e-5);
    }

    /// Against the same attention in candle's ops, on two sequences whose second is padded, so
    /// that the mask and each head's place in the rows are exercised.
    #[test]
    fn the_cpu_attention_agrees_with_candles() {
        let (batch, tokens, heads, head_size) = (2, 5, 3, 4);
        let hidden = heads * head_size;
        let query_key_value = values(&[batch, tokens, 3 * hidden], 4);
        let mask = Tensor::new(
            &[[1f32, 1., 1., 1., 1.], [1., 1., 1., 0., 0.]],
            &Device::Cpu,
        )
        .unwrap();
        let mask_bias = ((mask - 1.0).unwrap() * f64::from(f32::MAX)).unwrap();
        let ours = query_key_value
            .apply_op2_no_bwd(&mask_bias, &CpuAttention { heads })
            .unwrap();
        let candles = attention(&query_key_value, &mask_bias, heads).unwrap();
        assert!(largest_difference(&ours, &candles).unwrap() < 1e-6);
        // The padding changes the padded sequence's context, not the other's.
        let unmasked = (&mask_bias * 0.0).unwrap();
        let open = attention(&query_key_value, &unmasked, heads).unwrap();
        assert!(largest_difference(&open.get(0).unwrap(), &ours.get(0).unwrap()).unwrap() < 1e-6);
        assert!(largest_difference(&open.get(1).unwrap(), &ours.get(1).unwrap()).unwrap() > 1e-3);
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
