//! Labelled datasets for classification, held in memory as f32 features: the built-in digits,
//! iris and moons (generated), Fashion-MNIST from Debian's `dataset-fashion-mnist` when installed, and CSV, `.npy`, IDX and
//! safetensors files from the engine's data directory.

use std::path::{Component, Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(
        "unknown dataset `{0}`: the built-in ones are digits, iris, moons and fashion-mnist; a file of the data \
         directory is named with its extension (.csv, .npy, .safetensors, or NAME-images-idx3-ubyte)"
    )]
    Unknown(String),
    #[error("dataset `{name}` is malformed: {detail}")]
    Malformed { name: String, detail: String },
    #[error("cannot read dataset `{name}` ({path}): {source}{hint}")]
    Unreadable {
        name: String,
        path: PathBuf,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error(
        "dataset `{0}` must be a file name inside the data directory: no absolute path, no `..`"
    )]
    OutsideDataDir(String),
    #[error(
        "dataset `{name}` has {samples} samples: too few to hold out a validation split of {split}"
    )]
    TooSmall {
        name: String,
        samples: usize,
        split: f64,
    },
}

/// Samples in rows: `features[i * feature_len..(i + 1) * feature_len]` has label `labels[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
    /// One sample's shape: `[features]`, or `[channels, height, width]` for images.
    pub sample_shape: Vec<usize>,
    pub feature_len: usize,
    pub classes: usize,
}

/// `heads/ai/data/digits.npy`: see the README beside it for its source and licence.
const DIGITS: &[u8] = include_bytes!("../data/digits.npy");

/// `heads/ai/data/iris.csv`: see the README beside it.
const IRIS: &[u8] = include_bytes!("../data/iris.csv");

/// The `moons` dataset: as many points as PennyLane's TorchLayer demo draws, with its noise.
const MOONS_SAMPLES: usize = 200;
const MOONS_NOISE: f64 = 0.1;
const MOONS_SEED: u64 = 0;

/// Where Debian's `dataset-fashion-mnist` puts the IDX files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The engine's data directory: `$CHIMERA_DATA_DIR`, else `data` in the working directory.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("CHIMERA_DATA_DIR").map_or_else(|| PathBuf::from("data"), PathBuf::from)
}

impl Dataset {
    /// The dataset a spec names: a built-in one, or a file of `data_dir`.
    pub fn load(name: &str, data_dir: &Path) -> Result<Self, DatasetError> {
        let dataset = match name {
            "digits" => Self::digits()?,
            "iris" => {
                let (width, values) = csv_rows(name, IRIS)?;
                Self::from_rows(name, width, values)?
            }
            "moons" => Self::moons(),
            "fashion-mnist" => Self::idx_pair(
                name,
                &Path::new(FASHION_MNIST_DIR).join("train-images-idx3-ubyte.gz"),
                "; install Debian's package dataset-fashion-mnist",
            )?,
            _ => Self::file(name, data_dir)?,
        };
        dataset.check()?;
        Ok(dataset)
    }

    fn file(name: &str, data_dir: &Path) -> Result<Self, DatasetError> {
        let relative = Path::new(name);
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(DatasetError::OutsideDataDir(name.to_owned()));
        }
        let path = data_dir.join(relative);
        let file_name = name.trim_end_matches(".gz");
        if file_name.ends_with("-images-idx3-ubyte") {
            return Self::idx_pair(name, &path, "");
        }
        match relative.extension().and_then(|e| e.to_str()) {
            Some("csv") => {
                let (width, values) = csv_rows(name, &read(name, &path, "")?)?;
                Self::from_rows(name, width, values)
            }
            Some("npy") => {
                let (shape, values) = npy_values(name, &read(name, &path, "")?)?;
                match shape[..] {
                    [_, width] if width >= 2 => Self::from_rows(name, width, values),
                    _ => Err(DatasetError::Malformed {
                        name: name.to_owned(),
                        detail: format!(
                            "shape {shape:?}: expected rows of features with the label last, \
                             [samples, features + 1]"
                        ),
                    }),
                }
            }
            Some("safetensors") => Self::safetensors(name, &path),
            _ => Err(DatasetError::Unknown(name.to_owned())),
        }
    }

    /// Rows of `width` values, features then the label, as CSV and `.npy` files hold them.
    fn from_rows(name: &str, width: usize, values: Vec<f64>) -> Result<Self, DatasetError> {
        let malformed = |detail: String| DatasetError::Malformed {
            name: name.to_owned(),
            detail,
        };
        let mut features = Vec::with_capacity(values.len());
        let mut labels = Vec::with_capacity(values.len() / width);
        for (i, row) in values.chunks_exact(width).enumerate() {
            let label = row[width - 1];
            if label < 0.0 || label.fract() != 0.0 || label > u32::MAX as f64 {
                return Err(malformed(format!(
                    "row {}: the label (last column) is {label}, not a class number 0, 1, 2, ...",
                    i + 1
                )));
            }
            labels.push(label as u32);
            features.extend(row[..width - 1].iter().map(|&v| v as f32));
        }
        Ok(Self::with_classes(name, features, labels, vec![width - 1]))
    }

    /// `classes` from the largest label.
    fn with_classes(
        name: &str,
        features: Vec<f32>,
        labels: Vec<u32>,
        sample_shape: Vec<usize>,
    ) -> Self {
        let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        Self {
            name: name.to_owned(),
            feature_len: sample_shape.iter().product(),
            features,
            labels,
            sample_shape,
            classes,
        }
    }

    /// An IDX images file (`*-images-idx3-ubyte`, gzipped or not) and its labels file beside it,
    /// pixels scaled from 0..255 to 0..1.
    fn idx_pair(name: &str, images: &Path, hint: &'static str) -> Result<Self, DatasetError> {
        let malformed = |detail: String| DatasetError::Malformed {
            name: name.to_owned(),
            detail,
        };
        let file_name = images
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        let labels_path =
            images.with_file_name(file_name.replace("-images-idx3-", "-labels-idx1-"));
        let (image_bytes, label_bytes) =
            (read(name, images, hint)?, read(name, &labels_path, hint)?);
        let (image_dims, pixels) = idx(&image_bytes).map_err(&malformed)?;
        let (label_dims, labels) = idx(&label_bytes).map_err(&malformed)?;
        let [n, h, w] = image_dims[..] else {
            return Err(malformed(format!(
                "the images are {image_dims:?}, expected [n, height, width]"
            )));
        };
        if label_dims != [n] {
            return Err(malformed(format!("{n} images but labels {label_dims:?}")));
        }
        let features = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
        let labels = labels.iter().map(|&l| u32::from(l)).collect();
        Ok(Self::with_classes(name, features, labels, vec![1, h, w]))
    }

    /// Tensors `features` ([samples, ...], any numeric type) and `labels` ([samples], integers).
    fn safetensors(name: &str, path: &Path) -> Result<Self, DatasetError> {
        let malformed = |detail: String| DatasetError::Malformed {
            name: name.to_owned(),
            detail,
        };
        let bytes = read(name, path, "")?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &candle_core::Device::Cpu)
            .map_err(|e| malformed(e.to_string()))?;
        let get = |key: &str| {
            tensors.get(key).ok_or_else(|| {
                malformed(format!(
                    "no tensor `{key}`; it needs `features` and `labels`"
                ))
            })
        };
        let (x, y) = (get("features")?, get("labels")?);
        if x.rank() < 2 || y.dims() != [x.dim(0).unwrap_or(0)] {
            return Err(malformed(format!(
                "`features` is {:?} and `labels` {:?}; expected [samples, ...] and [samples]",
                x.dims(),
                y.dims()
            )));
        }
        if y.dtype().is_float() {
            return Err(malformed("`labels` must hold integers".into()));
        }
        let flat = |t: &candle_core::Tensor, dtype| {
            t.to_dtype(dtype)
                .and_then(|t| t.flatten_all())
                .map_err(|e| malformed(e.to_string()))
        };
        let labels = flat(y, candle_core::DType::I64)?
            .to_vec1::<i64>()
            .map_err(|e| malformed(e.to_string()))?
            .into_iter()
            .map(u32::try_from)
            .collect::<Result<Vec<u32>, _>>()
            .map_err(|_| {
                malformed("`labels` must be class numbers 0, 1, 2, ..., none negative".into())
            })?;
        let features = flat(x, candle_core::DType::F32)?
            .to_vec1::<f32>()
            .map_err(|e| malformed(e.to_string()))?;
        Ok(Self::with_classes(
            name,
            features,
            labels,
            x.dims()[1..].to_vec(),
        ))
    }

    /// The 1,797 8x8 digits, pixels scaled from 0..16 to 0..1.
    fn digits() -> Result<Self, DatasetError> {
        let malformed = |detail: String| DatasetError::Malformed {
            name: "digits".into(),
            detail,
        };
        let array = npyz::NpyFile::new(DIGITS).map_err(|e| malformed(e.to_string()))?;
        let shape = array.shape().to_vec();
        if shape != [1797, 65] {
            return Err(malformed(format!("shape {shape:?}, expected [1797, 65]")));
        }
        let bytes: Vec<u8> = array.into_vec().map_err(|e| malformed(e.to_string()))?;
        let mut features = Vec::with_capacity(1797 * 64);
        let mut labels = Vec::with_capacity(1797);
        for row in bytes.chunks_exact(65) {
            features.extend(row[..64].iter().map(|&p| f32::from(p) / 16.0));
            labels.push(u32::from(row[64]));
        }
        Ok(Self::with_classes(
            "digits",
            features,
            labels,
            vec![1, 8, 8],
        ))
    }

    /// Two interleaved half circles (`chimera_hybrid::moons`), always the same points.
    fn moons() -> Self {
        let (points, labels) =
            chimera_hybrid::moons::make_moons(MOONS_SAMPLES, MOONS_NOISE, MOONS_SEED);
        let features = points.iter().flatten().map(|&v| v as f32).collect();
        Self::with_classes("moons", features, labels, vec![2])
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shapes agree and every label names a class.
    fn check(&self) -> Result<(), DatasetError> {
        let malformed = |detail: String| DatasetError::Malformed {
            name: self.name.clone(),
            detail,
        };
        if self.labels.is_empty() {
            return Err(malformed("no samples".into()));
        }
        if self.features.len() != self.labels.len() * self.feature_len {
            return Err(malformed(format!(
                "{} feature values for {} samples of {}",
                self.features.len(),
                self.labels.len(),
                self.feature_len
            )));
        }
        if let Some(bad) = self.labels.iter().find(|&&l| l as usize >= self.classes) {
            return Err(malformed(format!(
                "label {bad} but only {} classes",
                self.classes
            )));
        }
        Ok(())
    }

    /// The samples at `indices`, in that order.
    fn select(&self, indices: &[usize]) -> Self {
        let mut features = Vec::with_capacity(indices.len() * self.feature_len);
        for &i in indices {
            features.extend_from_slice(&self.features[i * self.feature_len..][..self.feature_len]);
        }
        Self {
            name: self.name.clone(),
            features,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            sample_shape: self.sample_shape.clone(),
            feature_len: self.feature_len,
            classes: self.classes,
        }
    }

    /// A seeded shuffle split into (training, validation), `fraction` of the samples held out.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(Self, Self), DatasetError> {
        let held_out = (self.len() as f64 * fraction).round() as usize;
        if held_out == 0 || held_out >= self.len() {
            return Err(DatasetError::TooSmall {
                name: self.name.clone(),
                samples: self.len(),
                split: fraction,
            });
        }
        let order = shuffled(self.len(), &mut ChaCha8Rng::seed_from_u64(seed));
        let (validation, training) = order.split_at(held_out);
        Ok((self.select(training), self.select(validation)))
    }
}

/// 0..n in a random order (Fisher-Yates), the same for the same generator state.
pub fn shuffled(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// The whole file, gunzipped when its name ends in `.gz`.
fn read(name: &str, path: &Path, hint: &'static str) -> Result<Vec<u8>, DatasetError> {
    let unreadable = |source| DatasetError::Unreadable {
        name: name.to_owned(),
        path: path.to_owned(),
        source,
        hint,
    };
    let bytes = std::fs::read(path).map_err(unreadable)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
            .map_err(unreadable)?;
        return Ok(out);
    }
    Ok(bytes)
}

/// An IDX file of unsigned bytes (the MNIST format): its dimensions and values.
fn idx(bytes: &[u8]) -> Result<(Vec<usize>, &[u8]), String> {
    let [0, 0, kind, rank, ..] = *bytes else {
        return Err("not an IDX file (too short)".into());
    };
    if kind != 0x08 {
        return Err(format!(
            "IDX element type 0x{kind:02x}; only unsigned bytes (0x08) are read"
        ));
    }
    let header = 4 + 4 * rank as usize;
    let dims: Vec<usize> = bytes
        .get(4..header)
        .ok_or("the IDX header is cut short")?
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    let values = &bytes[header..];
    let expected = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if expected != Some(values.len()) {
        return Err(format!(
            "IDX dimensions {dims:?} but {} values",
            values.len()
        ));
    }
    Ok((dims, values))
}

/// A CSV of numbers, an optional header line first: the rows' width and all their values.
fn csv_rows(name: &str, bytes: &[u8]) -> Result<(usize, Vec<f64>), DatasetError> {
    let malformed = |detail: String| DatasetError::Malformed {
        name: name.to_owned(),
        detail,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8 text".into()))?;
    let mut values = Vec::new();
    let mut width = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Result<Vec<f64>, _> = line.split(',').map(|v| v.trim().parse::<f64>()).collect();
        let row = match row {
            Ok(row) => row,
            // A first line that is not numbers is a header.
            Err(_) if i == 0 => continue,
            Err(e) => {
                return Err(malformed(format!(
                    "line {}: {e}: every value must be a number",
                    i + 1
                )));
            }
        };
        if *width.get_or_insert(row.len()) != row.len() {
            return Err(malformed(format!(
                "line {} has {} values, the first row {}",
                i + 1,
                row.len(),
                width.unwrap_or(0)
            )));
        }
        values.extend(row);
    }
    let width = width.ok_or_else(|| malformed("no rows".into()))?;
    if width < 2 {
        return Err(malformed("each row needs features and a label".into()));
    }
    Ok((width, values))
}

/// A 2-D `.npy` array of any common numeric type, as f64.
fn npy_values(name: &str, bytes: &[u8]) -> Result<(Vec<usize>, Vec<f64>), DatasetError> {
    let malformed = |detail: String| DatasetError::Malformed {
        name: name.to_owned(),
        detail,
    };
    let array = npyz::NpyFile::new(bytes).map_err(|e| malformed(e.to_string()))?;
    let shape: Vec<usize> = array.shape().iter().map(|&d| d as usize).collect();
    let type_str = array.dtype().descr();
    let err = |e: std::io::Error| malformed(e.to_string());
    // `descr()` gives the Python literal, such as '<f4'.
    let values: Vec<f64> = match type_str
        .trim_matches('\'')
        .trim_start_matches(['<', '|', '='])
    {
        "f4" => array
            .into_vec::<f32>()
            .map_err(err)?
            .into_iter()
            .map(f64::from)
            .collect(),
        "f8" => array.into_vec::<f64>().map_err(err)?,
        "u1" => array
            .into_vec::<u8>()
            .map_err(err)?
            .into_iter()
            .map(f64::from)
            .collect(),
        "i4" => array
            .into_vec::<i32>()
            .map_err(err)?
            .into_iter()
            .map(f64::from)
            .collect(),
        "i8" => array
            .into_vec::<i64>()
            .map_err(err)?
            .into_iter()
            .map(|v| v as f64)
            .collect(),
        other => {
            return Err(malformed(format!(
                "element type {other}; float32, float64, uint8, int32 or int64 are read"
            )));
        }
    };
    Ok((shape, values))
}
