//! A pretrained sentence encoder: a BERT model (such as MiniLM-L6, fetched by
//! `heads/ai/fetch-minilm.sh`) loaded from a directory with candle, its `tokenizer.json` read by
//! the `tokenizers` crate; token embeddings mean-pooled over the real tokens and normalised to
//! length 1, as sentence-transformers does.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::bert::{Bert, Config};

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("cannot read {path}: {source}; fetch the model with heads/ai/fetch-minilm.sh DIR")]
    Missing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable BERT config: {detail}")]
    Config { path: PathBuf, detail: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The files a sentence-encoder directory holds.
pub const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// sentence-transformers' `max_seq_length` for MiniLM-L6: longer inputs are cut there.
const DEFAULT_MAX_TOKENS: usize = 256;

pub struct SentenceEncoder {
    model: Bert,
    tokenizer: Tokenizer,
    device: Device,
    pub dimension: usize,
}

/// Whether `dir` looks like a sentence-encoder directory (rather than a trained classifier).
pub fn is_encoder_dir(dir: &Path) -> bool {
    dir.join("config.json").exists() && dir.join("tokenizer.json").exists()
}

impl SentenceEncoder {
    pub fn open(dir: &Path, device: &Device) -> Result<Self, EncoderError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| EncoderError::Missing { path, source })
        };
        let config_path = dir.join(FILES[0]);
        let config: Config =
            serde_json::from_slice(&read(FILES[0])?).map_err(|e| EncoderError::Config {
                path: config_path.clone(),
                detail: e.to_string(),
            })?;
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(EncoderError::Config {
                path: config_path,
                detail: format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    config.hidden_size, config.num_attention_heads
                ),
            });
        }
        let mut tokenizer = Tokenizer::from_bytes(read(FILES[1])?)
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        // The file pads every input to a fixed length; a batch needs only its longest.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        let max_length = max_tokens(dir);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        let weights = dir.join(FILES[2]);
        // A clear error when absent, before candle's; the file itself is memory-mapped below.
        std::fs::metadata(&weights).map_err(|source| EncoderError::Missing {
            path: weights.clone(),
            source,
        })?;
        // SAFETY: the weights file is memory-mapped read-only and not changed while in use.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, device)? };
        let model = Bert::load(vb, &config)?;
        Ok(Self {
            model,
            tokenizer,
            device: device.clone(),
            dimension: config.hidden_size,
        })
    }

    /// One unit-length embedding per sentence, computed as one batch.
    pub fn embed(&self, sentences: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        if sentences.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(sentences.to_vec(), true)
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, EncoderError> {
            let data: Vec<Vec<u32>> = encodings.iter().map(|e| f(e).to_vec()).collect();
            Ok(Tensor::new(data, &self.device)?)
        };
        let ids = rows(&|e| e.get_ids())?;
        let types = rows(&|e| e.get_type_ids())?;
        let mask = rows(&|e| e.get_attention_mask())?;
        let tokens = self.model.forward(&ids, &types, &mask)?;
        // Mean over the real tokens: padding has mask 0.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = tokens.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        Ok(mean.broadcast_div(&norms)?.to_vec2()?)
    }
}

/// `max_seq_length` from sentence-transformers' `sentence_bert_config.json` when present.
fn max_tokens(dir: &Path) -> usize {
    std::fs::read(dir.join("sentence_bert_config.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| v["max_seq_length"].as_u64())
        .map_or(DEFAULT_MAX_TOKENS, |n| n as usize)
}
