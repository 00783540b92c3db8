//! MiniLM-L6 sentence embeddings against sentence-transformers' (references made once with
//! PyTorch by `tests/data/make_minilm_refs.py`). The model is fetched by `heads/ai/fetch-minilm.sh`
//! (CI does); without it the test prints SKIPPED.

use std::path::PathBuf;

use candle_core::Device;
use chimera_ai::encoder::SentenceEncoder;

#[derive(serde::Deserialize)]
struct References {
    sentences: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

fn model_dir() -> PathBuf {
    std::env::var_os("CHIMERA_MINILM_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-minilm-l6-v2"),
        PathBuf::from,
    )
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| -> f64 {
        x.iter()
            .zip(y)
            .map(|(&p, &q)| f64::from(p) * f64::from(q))
            .sum()
    };
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

#[test]
fn minilm_embeddings_match_sentence_transformers() {
    let dir = model_dir();
    if !dir.join("model.safetensors").exists() {
        assert!(
            std::env::var_os("CHIMERA_REQUIRE_MINILM").is_none(),
            "CHIMERA_REQUIRE_MINILM is set but {} holds no model",
            dir.display()
        );
        eprintln!(
            "SKIPPED minilm_embeddings_match_sentence_transformers: no model in {} \
             (run heads/ai/fetch-minilm.sh, or set CHIMERA_MINILM_DIR)",
            dir.display()
        );
        return;
    }
    let refs: References = serde_json::from_str(include_str!("data/minilm_refs.json")).unwrap();
    let encoder = SentenceEncoder::open(&dir, &Device::Cpu).unwrap();
    assert_eq!(encoder.dimension, 384);
    let sentences: Vec<&str> = refs.sentences.iter().map(String::as_str).collect();
    // One batch, padded to its longest sentence.
    let batch = encoder.embed(&sentences).unwrap();
    let mut lowest = f64::INFINITY;
    for ((sentence, ours), theirs) in sentences.iter().zip(&batch).zip(&refs.embeddings) {
        let c = cosine(ours, theirs);
        assert!(c >= 0.9999, "{sentence:?}: cosine {c}");
        lowest = lowest.min(c);
        let norm: f64 = ours
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{sentence:?}: norm {norm}");
    }
    eprintln!("lowest cosine against sentence-transformers: {lowest:.8}");
    // Alone, with no padding: the same embedding.
    for (sentence, in_batch) in sentences.iter().zip(&batch) {
        let alone = encoder.embed(&[sentence]).unwrap();
        assert!(cosine(&alone[0], in_batch) > 0.99999, "{sentence:?}");
    }
    // Related sentences are closer than unrelated ones.
    let pair = encoder
        .embed(&[
            "A quantum circuit prepares a Bell state.",
            "Qubits are entangled by a gate sequence.",
            "The cat sat on the mat.",
        ])
        .unwrap();
    assert!(cosine(&pair[0], &pair[1]) > cosine(&pair[0], &pair[2]));
}

#[test]
fn a_missing_model_directory_says_how_to_fetch_it() {
    let err = SentenceEncoder::open(std::path::Path::new("/nonexistent/minilm"), &Device::Cpu)
        .err()
        .unwrap();
    let message = err.to_string();
    assert!(
        message.contains("config.json") && message.contains("fetch-minilm.sh"),
        "{message}"
    );
}

#[test]
fn a_config_whose_heads_do_not_divide_the_hidden_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"{"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
        "num_attention_heads": 10, "intermediate_size": 1536, "hidden_act": "gelu",
        "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12}"#;
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    let err = SentenceEncoder::open(dir.path(), &Device::Cpu)
        .err()
        .unwrap();
    let message = err.to_string();
    assert!(
        message.contains("config.json")
            && message.contains("hidden_size 384 is not a multiple of num_attention_heads 10"),
        "{message}"
    );
}
