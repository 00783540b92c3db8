//! Datasets from the data directory (CSV, .npy, IDX, safetensors), Fashion-MNIST when Debian's
//! package is installed, the CNN on images, and the refusals.

use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use candle_core::{Device, Tensor};
use chimera_ai::dataset::{Dataset, DatasetError, FASHION_MNIST_DIR};
use chimera_ai::spec::TrainSpec;
use chimera_ai::train::{RunOptions, TrainError, train};

/// A fresh data directory, removed when the test ends.
fn data_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("chimera-data-{name}-"))
        .tempdir()
        .unwrap()
}

/// Three samples of two features, labels 0, 2, 1.
const ROWS: [[f32; 3]; 3] = [[0.5, 1.0, 0.0], [2.0, -1.5, 2.0], [0.25, 4.0, 1.0]];

fn assert_rows(d: &Dataset) {
    assert_eq!(d.sample_shape, vec![2]);
    assert_eq!(d.features, vec![0.5, 1.0, 2.0, -1.5, 0.25, 4.0]);
    assert_eq!(d.labels, vec![0, 2, 1]);
    assert_eq!(d.classes, 3);
}

/// A version 1.0 `.npy` file of little-endian float32 rows.
fn npy(rows: &[[f32; 3]]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, 3), }}",
        rows.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    for v in rows.iter().flatten() {
        out.extend(v.to_le_bytes());
    }
    out
}

/// An IDX file of unsigned bytes.
fn idx(dims: &[u32], values: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(values);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn csv_npy_idx_and_safetensors_files_load_with_their_shapes() {
    let temp = data_dir("formats");
    let dir = temp.path();
    std::fs::write(
        dir.join("rows.csv"),
        "x,y,label\n0.5,1,0\n2,-1.5,2\n0.25,4,1\n",
    )
    .unwrap();
    assert_rows(&Dataset::load("rows.csv", dir).unwrap());
    std::fs::write(dir.join("rows.npy"), npy(&ROWS)).unwrap();
    assert_rows(&Dataset::load("rows.npy", dir).unwrap());

    // Two 2x3 images, plain and gzipped, in a subdirectory.
    std::fs::create_dir_all(dir.join("tiny")).unwrap();
    let pixels = [0, 51, 102, 153, 204, 255, 255, 0, 0, 0, 0, 255];
    let images = idx(&[2, 2, 3], &pixels);
    let labels = idx(&[2], &[1, 0]);
    std::fs::write(dir.join("tiny/train-images-idx3-ubyte"), &images).unwrap();
    std::fs::write(dir.join("tiny/train-labels-idx1-ubyte"), &labels).unwrap();
    std::fs::write(dir.join("tiny/gz-images-idx3-ubyte.gz"), gzip(&images)).unwrap();
    std::fs::write(dir.join("tiny/gz-labels-idx1-ubyte.gz"), gzip(&labels)).unwrap();
    for name in [
        "tiny/train-images-idx3-ubyte",
        "tiny/gz-images-idx3-ubyte.gz",
    ] {
        let d = Dataset::load(name, dir).unwrap();
        assert_eq!(d.sample_shape, vec![1, 2, 3], "{name}");
        assert_eq!(d.labels, vec![1, 0]);
        assert_eq!(d.features[..3], [0.0, 0.2, 0.4]);
        assert_eq!(d.features[11], 1.0);
    }

    let features =
        Tensor::from_vec(vec![1u8, 2, 3, 4, 5, 6, 7, 8], (2, 2, 2), &Device::Cpu).unwrap();
    let labels = Tensor::from_vec(vec![3i64, 0], 2, &Device::Cpu).unwrap();
    let tensors = HashMap::from([
        ("features".to_owned(), features),
        ("labels".to_owned(), labels),
    ]);
    candle_core::safetensors::save(&tensors, dir.join("set.safetensors")).unwrap();
    let d = Dataset::load("set.safetensors", dir).unwrap();
    assert_eq!(d.sample_shape, vec![2, 2]);
    assert_eq!(d.features, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    assert_eq!((d.labels.clone(), d.classes), (vec![3, 0], 4));
    let negative = Tensor::from_vec(vec![-1i64, 0], 2, &Device::Cpu).unwrap();
    let tensors = HashMap::from([
        ("features".to_owned(), tensors["features"].clone()),
        ("labels".to_owned(), negative),
    ]);
    candle_core::safetensors::save(&tensors, dir.join("negative.safetensors")).unwrap();
    let err = Dataset::load("negative.safetensors", dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("none negative"), "{err}");
}

fn refusal(name: &str, dir: &Path) -> String {
    let err: DatasetError = Dataset::load(name, dir).unwrap_err();
    err.to_string()
}

#[test]
fn bad_files_and_names_are_refused_saying_what_is_wrong() {
    let temp = data_dir("bad");
    let dir = temp.path();
    std::fs::write(dir.join("ragged.csv"), "1,2,0\n3,1\n").unwrap();
    std::fs::write(dir.join("text.csv"), "1,2,0\n3,x,1\n").unwrap();
    std::fs::write(dir.join("label.csv"), "1,2,0\n3,4,1.5\n").unwrap();
    std::fs::write(dir.join("empty.csv"), "a,b\n").unwrap();
    std::fs::write(
        dir.join("short-images-idx3-ubyte"),
        idx(&[2, 2, 2], &[0; 7]),
    )
    .unwrap();
    std::fs::write(dir.join("short-labels-idx1-ubyte"), idx(&[2], &[0, 1])).unwrap();
    std::fs::write(dir.join("lonely-images-idx3-ubyte"), idx(&[1, 1, 1], &[0])).unwrap();
    for (name, expected) in [
        ("ragged.csv", "line 2 has 2 values, the first row 3"),
        ("text.csv", "line 2: invalid float literal"),
        ("label.csv", "row 2: the label (last column) is 1.5"),
        ("empty.csv", "no rows"),
        (
            "short-images-idx3-ubyte",
            "IDX dimensions [2, 2, 2] but 7 values",
        ),
        ("lonely-images-idx3-ubyte", "lonely-labels-idx1-ubyte"),
        ("missing.npy", "cannot read dataset `missing.npy`"),
        ("../outside.csv", "inside the data directory"),
        ("/etc/passwd.csv", "inside the data directory"),
        ("mnist", "unknown dataset `mnist`"),
    ] {
        let message = refusal(name, dir);
        assert!(message.contains(expected), "{name}: {message}");
    }
}

#[test]
fn a_cnn_learns_the_digits_as_images() {
    let spec = TrainSpec::from_yaml(
        "dataset: digits\nmodel: {kind: cnn, channels: [8, 16], hidden: [32], dropout: 0.1}\n\
         optimizer: {name: adamw, learning_rate: 0.01}\nepochs: 6\nbatch_size: 32\nseed: 3\n",
    )
    .unwrap();
    let report = train(&spec, &Device::Cpu, &RunOptions::default(), |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let first = &report.epochs[0];
    let last = report.epochs.last().unwrap();
    assert!(last.loss < first.loss / 2.0, "{first:?} -> {last:?}");
    assert!(last.val_accuracy >= 0.9, "{last:?}");
}

#[test]
fn a_cnn_is_refused_for_data_that_are_not_images_or_are_pooled_away() {
    let temp = data_dir("cnn");
    let dir = temp.path();
    std::fs::write(dir.join("rows.npy"), npy(&ROWS)).unwrap();
    let options = RunOptions {
        data_dir: Some(dir.to_owned()),
        checkpoint_files: None,
        model_files: None,
        ..RunOptions::default()
    };
    let attempt = |yaml: &str| {
        let spec = TrainSpec::from_yaml(yaml).unwrap();
        let err: TrainError = train(&spec, &Device::Cpu, &options, |_| ControlFlow::Continue(()))
            .expect_err("refused");
        err.to_string()
    };
    let flat =
        attempt("dataset: rows.npy\nmodel: {kind: cnn, channels: [4]}\nvalidation_split: 0.4\n");
    assert!(
        flat.contains("a CNN takes images") && flat.contains("[2]"),
        "{flat}"
    );
    let pooled = attempt("dataset: digits\nmodel: {kind: cnn, channels: [4, 4, 4, 4]}\n");
    assert!(
        pooled.contains("convolution block 4 gets 1x1 images"),
        "{pooled}"
    );
    for (yaml, key) in [
        ("model: {kind: cnn, channels: []}", "model.channels"),
        (
            "model: {kind: cnn, channels: [4], kernel_size: 4}",
            "model.kernel_size",
        ),
        ("model: {kind: cnn, channels: [4], pool: 0}", "model.pool"),
    ] {
        let err = TrainSpec::from_yaml(&format!("dataset: digits\n{yaml}\n")).unwrap_err();
        assert!(err.to_string().contains(key), "{yaml}: {err}");
    }
}

#[test]
fn fashion_mnist_loads_from_debians_package() {
    if !Path::new(FASHION_MNIST_DIR).exists() {
        // CI installs the package and sets this, so that there the test runs or fails.
        assert!(
            std::env::var_os("CHIMERA_REQUIRE_FASHION_MNIST").is_none(),
            "CHIMERA_REQUIRE_FASHION_MNIST is set but {FASHION_MNIST_DIR} is absent \
             (apt-get install dataset-fashion-mnist)"
        );
        eprintln!(
            "SKIPPED fashion_mnist_loads_from_debians_package: {FASHION_MNIST_DIR} is absent \
             (Debian package dataset-fashion-mnist)"
        );
        return;
    }
    let d = Dataset::load("fashion-mnist", Path::new("unused")).unwrap();
    assert_eq!((d.len(), d.classes), (60_000, 10));
    assert_eq!(d.sample_shape, vec![1, 28, 28]);
    // Every class appears 6,000 times in the training set.
    let mut counts = [0usize; 10];
    d.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [6000; 10]);
}

/// Our convolution against candle's own `conv2d`, forward and gradients.
#[test]
fn the_matmul_convolution_equals_candles_conv2d() {
    use candle_core::Var;
    use candle_nn::Module;
    let device = Device::Cpu;
    for (n, c, h, w, c_out, k) in [
        (2, 1, 8, 8, 4, 3),
        (3, 5, 7, 6, 8, 3),
        (2, 3, 9, 9, 2, 5),
        (1, 2, 4, 5, 3, 1),
    ] {
        let x =
            Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, c, h, w), &device).unwrap()).unwrap();
        let weight = Tensor::randn(0f32, 1.0, (c_out, c, k, k), &device).unwrap();
        let bias = Tensor::randn(0f32, 1.0, c_out, &device).unwrap();
        let config = candle_nn::Conv2dConfig {
            padding: k / 2,
            ..Default::default()
        };
        let theirs_conv = candle_nn::Conv2d::new(weight.clone(), Some(bias.clone()), config);
        let ours = chimera_ai::model::conv_same(x.as_tensor(), &weight, &bias).unwrap();
        let theirs = theirs_conv.forward(x.as_tensor()).unwrap();
        let diff = |a: &Tensor, b: &Tensor| -> f32 {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        assert_eq!(ours.dims(), theirs.dims());
        assert!(
            diff(&ours, &theirs) < 1e-4,
            "forward {:?}",
            (n, c, h, w, c_out, k)
        );
        // The same gradient for the input through both.
        let g_ours = ours.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let g_theirs = theirs.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (
            g_ours.get(x.as_tensor()).unwrap(),
            g_theirs.get(x.as_tensor()).unwrap(),
        );
        assert!(
            diff(a, b) < 1e-3,
            "input gradient {:?}",
            (n, c, h, w, c_out, k)
        );
    }
}
