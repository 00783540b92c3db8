//! CHIMERA's CUDA C kernels: the sources (`cuda/*.cu`) embedded in the binary, compiled at run time
//! with NVRTC (loaded dynamically: nothing here needs CUDA at build time), and the PTX cached on
//! disk so that a restarted head loads its kernels at once.

use cudarc::nvrtc;
use sha3::{Digest, Sha3_256};
use std::path::{Path, PathBuf};

/// The statevector kernels (see the file for each one's contract).
pub const STATEVECTOR: &str = include_str!("../cuda/statevector.cu");
/// The batched-layer kernels (a parameterised circuit over a batch, for the adjoint method): they
/// use `STATEVECTOR`'s helpers, so they compile after it, as [`source`] puts them.
pub const LAYER: &str = include_str!("../cuda/layer.cu");
/// Every kernel `LAYER` defines (double precision only).
pub const LAYER_KERNELS: [&str; 6] = [
    "layer_zero",
    "layer_rotate",
    "layer_undo_rotation",
    "layer_z_terms",
    "layer_pauli",
    "layer_add_pauli",
];
/// Diagonal observables `layer_z_terms` evaluates per pass over the batch.
pub const LAYER_Z_TERMS: usize = 8;

/// The program the CUDA backend compiles: the statevector kernels, then the layer kernels.
pub fn source() -> String {
    format!("{STATEVECTOR}\n{LAYER}")
}
/// Widest gate, controls included, a `denseK_*` or `permuteK_*` kernel applies.
pub const DENSE_MAX_QUBITS: usize = 5;
/// Widest diagonal gate `diagonal_*` applies.
pub const DIAGONAL_MAX_QUBITS: usize = 10;
/// The GPU architectures the project builds for: A100, Jetson Orin, H100.
pub const ARCHITECTURES: [&str; 3] = ["sm_80", "sm_87", "sm_90"];

/// Every kernel `STATEVECTOR` defines for float suffix `f32` or `f64`.
pub fn statevector_kernels(suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for k in 1..=DENSE_MAX_QUBITS {
        names.push(format!("dense{k}_{suffix}"));
        names.push(format!("permute{k}_{suffix}"));
        for low in LANES_MIN_LOW_RUN..=k.min(LANE_BITS) {
            names.push(format!("{}_{suffix}", dense_lanes_kernel(k, low)));
        }
    }
    for base in ["diagonal", "prob_one", "collapse", "chunk_norms", "pauli"] {
        names.push(format!("{base}_{suffix}"));
    }
    names
}

/// Lane bits of a warp's amplitude index: `dense_lanes` swaps targets below this by shuffles.
pub const LANE_BITS: usize = 5;
/// `dense_lanes` takes the gates whose targets include qubits 0 to this less one; there are
/// kernels for each width from this to `DENSE_MAX_QUBITS` and each count of targets below
/// `LANE_BITS` from this up.
pub const LANES_MIN_LOW_RUN: usize = 3;

/// The kernel for a dense `k`-qubit gate of which `low` targets are below `LANE_BITS` (without the
/// precision suffix).
pub fn dense_lanes_kernel(k: usize, low: usize) -> String {
    format!("dense{k}_lanes{low}")
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "NVRTC (libnvrtc.so) is not loadable: install the CUDA toolkit, or `pip install nvidia-cuda-nvrtc==13.0.*` and add its nvidia/cu13/lib directory to LD_LIBRARY_PATH"
    )]
    NvrtcMissing,
    #[error("NVRTC could not compile the kernels for {arch}: {message}")]
    Compile { arch: String, message: String },
}

/// Whether one of the shared libraries `names` can be opened. cudarc panics on first use of a CUDA
/// library that is absent, so it is checked first. (cudarc's own check exists only when it loads
/// libraries itself, not when candle's `cuda` feature has them linked.)
fn loadable(names: &[&str]) -> bool {
    // SAFETY: opening a CUDA library runs no initialisation beyond the dynamic loader's.
    names
        .iter()
        .any(|&name| unsafe { libloading::Library::new(name) }.is_ok())
}

/// Whether NVRTC can be loaded.
pub fn nvrtc_available() -> bool {
    loadable(&["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"])
}

/// Whether the CUDA driver library can be loaded.
pub fn driver_available() -> bool {
    loadable(&["libcuda.so", "libcuda.so.1"])
}

fn nvrtc_version() -> (i32, i32) {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loaded (checked by the callers) and the pointers are valid.
    unsafe { nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    (major, minor)
}

/// PTX of `source` for `arch` (such as "sm_90"), compiled now.
pub fn compile(source: &str, arch: &'static str) -> Result<String, KernelError> {
    if !nvrtc_available() {
        return Err(KernelError::NvrtcMissing);
    }
    let options = nvrtc::CompileOptions {
        arch: Some(arch),
        options: vec!["--std=c++17".into()],
        ..Default::default()
    };
    nvrtc::compile_ptx_with_opts(source, options)
        .map(|ptx| ptx.to_src())
        .map_err(|e| KernelError::Compile {
            arch: arch.to_string(),
            message: match e {
                nvrtc::CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
                other => format!("{other:?}"),
            },
        })
}

/// Where compiled kernels are kept: `$CHIMERA_KERNEL_CACHE`, else `$XDG_CACHE_HOME/chimera/kernels`,
/// else `~/.cache/chimera/kernels`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CHIMERA_KERNEL_CACHE") {
        return Some(dir.into());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("chimera/kernels"))
}

/// PTX of `source` for `arch`, from `cache_dir` when an earlier compile of the same source, for the
/// same architecture, by the same NVRTC version left it there; compiled and stored otherwise.
/// A cache that cannot be written is skipped, never an error.
pub fn compile_cached(
    source: &str,
    arch: &'static str,
    cache_dir: Option<&Path>,
) -> Result<String, KernelError> {
    if !nvrtc_available() {
        return Err(KernelError::NvrtcMissing);
    }
    let Some(dir) = cache_dir else {
        return compile(source, arch);
    };
    let (major, minor) = nvrtc_version();
    let key = Sha3_256::new()
        .chain_update(source)
        .chain_update(format!("\0{arch}\0nvrtc {major}.{minor}"))
        .finalize();
    let hex: String = key.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{arch}-{hex}.ptx"));
    if let Ok(ptx) = std::fs::read_to_string(&path) {
        return Ok(ptx);
    }
    let ptx = compile(source, arch)?;
    // Written aside and renamed, so that a concurrent reader never sees half a file.
    let temp = dir.join(format!(".{arch}-{hex}.{}.tmp", std::process::id()));
    if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&temp, &ptx).is_ok() {
        let _ = std::fs::rename(&temp, &path);
    }
    Ok(ptx)
}
