//! The CUDA backend: the statevector lives in GPU memory and our own kernels (`kernels/`) act on it,
//! compiled by NVRTC for the device at first use and cached on disk. Nothing of CUDA is needed to
//! build: the driver and NVRTC are loaded when a `CudaBackend` is made, and their absence is an
//! error, never a panic.
//!
//! Gates are fused (dense up to `DENSE_FUSE_QUBITS`, diagonal up to `DIAGONAL_FUSE_QUBITS`), their
//! matrices uploaded in one copy per call, and one kernel launched per fused gate on one stream:
//! no host synchronisation between gates. `plan_launch` picks each gate's kernel: diagonal, a
//! phased permutation (no matrix product), dense with its control qubits split off (only the
//! amplitudes whose controls are 1 are touched), or, for targets on qubits 0, 1, 2, ..., the
//! warp-shuffle dense kernel. Measurement, sampling and expectation values reduce on
//! the device; sampling copies back only the chunks that receive draws.

use super::{Amplitudes, Backend, BackendError, Precision, StateVector, Work, WorkCounter};
use crate::fuse;
use crate::state::{self, CHUNK};
use chimera_circuit::circuit::{C64, Controlled, Gate};
use chimera_circuit::pauli::PauliString;
use chimera_kernels::{
    DENSE_MAX_QUBITS, DIAGONAL_MAX_QUBITS, LANE_BITS, LANES_MIN_LOW_RUN, LAYER_KERNELS,
    dense_lanes_kernel,
};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
    ValidAsZeroBits,
};
use num_complex::Complex;
use std::collections::HashMap;
use std::sync::Arc;

mod layer;

/// Widest fused dense gate. Memory-bound up to about 5 qubits on an H100 in complex64.
const DENSE_FUSE_QUBITS: usize = 4;
/// Widest fused diagonal gate. The kernel takes up to `DIAGONAL_MAX_QUBITS`, but a fused gate is
/// built and checked on the host as a dense 2^k x 2^k matrix: at 10 qubits 16 MiB each, which made
/// a QFT spend more time in fusion than on the GPU (`chimera bench` on an H100, slower than the
/// CPU at 16 qubits: benches/RESULTS.md). At 8, 1 MiB, as the CPU backend fuses.
const DIAGONAL_FUSE_QUBITS: usize = 8;
const THREADS: u32 = 256;
/// Blocks of the reductions that stride over the whole state.
const REDUCTION_BLOCKS: u32 = 1024;
/// Device memory left free beside the state, for matrices and partial sums.
const HEADROOM: u128 = 256 << 20;

struct Device {
    stream: Arc<CudaStream>,
    work: WorkCounter,
    functions: HashMap<String, CudaFunction>,
    description: String,
}

pub struct CudaBackend {
    device: Arc<Device>,
    context: Arc<CudaContext>,
}

fn unavailable(reason: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable("cuda".into(), reason.to_string())
}

impl CudaBackend {
    /// The first GPU, with the kernels compiled for it (or taken from the kernel cache).
    pub fn new() -> Result<CudaBackend, BackendError> {
        if !chimera_kernels::driver_available() {
            return Err(unavailable(
                "the CUDA driver (libcuda.so) is not installed on this machine",
            ));
        }
        if !chimera_kernels::nvrtc_available() {
            return Err(unavailable(chimera_kernels::KernelError::NvrtcMissing));
        }
        let count = CudaContext::device_count()
            .map_err(|e| unavailable(format!("the CUDA driver failed: {e}")))?;
        if count < 1 {
            return Err(unavailable("the CUDA driver sees no GPU"));
        }
        let context =
            CudaContext::new(0).map_err(|e| unavailable(format!("cannot open GPU 0: {e}")))?;
        let (major, minor) = context
            .compute_capability()
            .map_err(|e| unavailable(e.to_string()))?;
        // NVRTC wants a 'static name; the handful of distinct ones a process meets are kept.
        let arch: &'static str = Box::leak(format!("sm_{major}{minor}").into_boxed_str());
        let ptx = chimera_kernels::compile_cached(
            &chimera_kernels::source(),
            arch,
            chimera_kernels::default_cache_dir().as_deref(),
        )
        .map_err(unavailable)?;
        let module = context
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(|e| unavailable(format!("cannot load the kernels for {arch}: {e}")))?;
        let mut functions = HashMap::new();
        let names = ["f32", "f64"]
            .iter()
            .flat_map(|suffix| chimera_kernels::statevector_kernels(suffix))
            .chain(LAYER_KERNELS.map(String::from));
        for name in names {
            let f = module
                .load_function(&name)
                .map_err(|e| unavailable(format!("kernel {name}: {e}")))?;
            functions.insert(name, f);
        }
        let name = context.name().unwrap_or_else(|_| "unknown GPU".into());
        Ok(CudaBackend {
            device: Arc::new(Device {
                stream: context.default_stream(),
                work: WorkCounter::default(),
                functions,
                description: format!("cuda ({name}, {arch})"),
            }),
            context,
        })
    }

    /// Device-to-device copy bandwidth, bytes read plus written per second, over a buffer of
    /// `bytes`: the floor a gate pass (which reads and writes the whole state) is measured against.
    pub fn copy_bandwidth(&self, bytes: usize, repeat: usize) -> Result<f64, BackendError> {
        let fail = |e: cudarc::driver::DriverError| unavailable(e.to_string());
        let stream = &self.device.stream;
        let src = stream.alloc_zeros::<u8>(bytes).map_err(fail)?;
        let mut dst = stream.alloc_zeros::<u8>(bytes).map_err(fail)?;
        stream.memcpy_dtod(&src, &mut dst).map_err(fail)?;
        stream.synchronize().map_err(fail)?;
        let start = std::time::Instant::now();
        for _ in 0..repeat {
            stream.memcpy_dtod(&src, &mut dst).map_err(fail)?;
        }
        stream.synchronize().map_err(fail)?;
        Ok(2.0 * bytes as f64 * repeat as f64 / start.elapsed().as_secs_f64())
    }
}

impl Backend for CudaBackend {
    fn describe(&self) -> String {
        self.device.description.clone()
    }

    fn is_gpu(&self) -> bool {
        true
    }

    fn work(&self) -> Work {
        self.device.work.total()
    }

    fn allocate(
        &self,
        num_qubits: usize,
        precision: Precision,
    ) -> Result<Box<dyn StateVector>, BackendError> {
        let needed = precision.state_bytes(num_qubits);
        let (free, _) = self
            .context
            .mem_get_info()
            .map_err(|e| unavailable(e.to_string()))?;
        if needed.saturating_add(HEADROOM) > free as u128 {
            return Err(BackendError::OutOfMemory {
                qubits: num_qubits,
                precision: precision.name(),
                needed,
                available: free as u128,
                where_: "the GPU",
                hint: if precision == Precision::Double {
                    "; --precision single halves it"
                } else {
                    "; --backend cpu uses host memory"
                },
            });
        }
        Ok(match precision {
            Precision::Single => Box::new(CudaState::<f32>::new(num_qubits, self.device.clone())?),
            Precision::Double => Box::new(CudaState::<f64>::new(num_qubits, self.device.clone())?),
        })
    }
}

/// The float types the kernels come in.
trait GpuReal: crate::backend::cpu::lanes::Real + DeviceRepr + ValidAsZeroBits {
    const SUFFIX: &'static str;
    fn into_amplitudes(amps: Vec<Complex<Self>>) -> Amplitudes;
}

impl GpuReal for f32 {
    const SUFFIX: &'static str = "f32";
    fn into_amplitudes(amps: Vec<Complex<f32>>) -> Amplitudes {
        Amplitudes::Single(amps)
    }
}

impl GpuReal for f64 {
    const SUFFIX: &'static str = "f64";
    fn into_amplitudes(amps: Vec<Complex<f64>>) -> Amplitudes {
        Amplitudes::Double(amps)
    }
}

struct CudaState<R: GpuReal> {
    /// Interleaved (re, im), 2^(n+1) values.
    amps: CudaSlice<R>,
    num_qubits: usize,
    device: Arc<Device>,
}

/// A device call that fails mid-circuit leaves the state unusable: the head stops there, and the
/// supervisor (engine) restarts it and runs the job again.
fn check<T>(what: &str, r: Result<T, cudarc::driver::DriverError>) -> T {
    r.unwrap_or_else(|e| panic!("CUDA {what} failed: {e}"))
}

/// How one fused gate runs on the device.
enum Launch {
    /// `diagonal`: one thread per amplitude.
    Diagonal { k: usize },
    /// `dense{k}_lanes{low}`: a dense gate on qubits 0, 1, 2 and more, `low` targets below
    /// `LANE_BITS`.
    Lanes { k: usize, low: usize },
    /// `dense{k}` or `permute{k}`: one thread per group of amplitudes whose `width` qubits
    /// (targets and controls) vary, the controls (a mask) all 1.
    Groups {
        kernel: &'static str,
        k: usize,
        width: usize,
        controls: u64,
    },
}

/// Picks the kernel for fused gate `g` on an `n`-qubit state, and appends its integer arguments
/// (see statevector.cu) to `ints` and its entries to `values`. Returns the launch with the offsets
/// of its arguments.
fn plan_launch<R: GpuReal>(
    g: &Gate,
    n: usize,
    ints: &mut Vec<i32>,
    values: &mut Vec<R>,
) -> (Launch, usize, usize) {
    let offsets = (ints.len(), values.len());
    let mut push_values = |entries: &mut dyn Iterator<Item = &C64>| {
        for m in entries {
            values.push(R::from_f64(m.re));
            values.push(R::from_f64(m.im));
        }
    };
    let as_i32 = |qubits: &[usize]| qubits.iter().map(|&q| q as i32).collect::<Vec<_>>();
    let k = g.qubits.len();
    if g.is_diagonal() {
        assert!(
            k <= DIAGONAL_MAX_QUBITS,
            "a {k}-qubit diagonal gate is wider than the kernel takes"
        );
        ints.extend(as_i32(&g.qubits));
        push_values(&mut g.matrix.iter().step_by(g.dim() + 1));
        return (Launch::Diagonal { k }, offsets.0, offsets.1);
    }
    assert!(
        k <= DENSE_MAX_QUBITS,
        "a {k}-qubit gate is wider than the kernels take"
    );
    let Controlled { controls, gate } = g.split_controls();
    let k = gate.qubits.len();
    // When the targets include qubits 0, 1 and 2, a `dense` thread's amplitudes span 64 bytes or
    // more and a warp's loads stride that far (about three times the copy floor on an H100:
    // benches/RESULTS.md); the shuffle kernel keeps them coalesced. It needs the state to hold a whole warp's
    // rows.
    let low_run = gate
        .qubits
        .iter()
        .enumerate()
        .take_while(|&(j, &q)| q == j)
        .count();
    let low = gate.qubits.iter().filter(|&&q| q < LANE_BITS).count();
    ints.extend(as_i32(&gate.qubits));
    if controls.is_empty() && low_run >= LANES_MIN_LOW_RUN && n >= LANE_BITS + k - low {
        push_values(&mut gate.matrix.iter());
        return (Launch::Lanes { k, low }, offsets.0, offsets.1);
    }
    let mut positions: Vec<usize> = gate.qubits.iter().chain(&controls).copied().collect();
    positions.sort_unstable();
    ints.extend(as_i32(&positions));
    let kernel = match gate.phased_permutation() {
        Some(rows) => {
            ints.extend(rows.iter().map(|&(source, _)| source as i32));
            push_values(&mut rows.iter().map(|(_, phase)| phase));
            "permute"
        }
        None => {
            push_values(&mut gate.matrix.iter());
            "dense"
        }
    };
    let launch = Launch::Groups {
        kernel,
        k,
        width: positions.len(),
        controls: controls.iter().fold(0, |mask, &q| mask | 1 << q),
    };
    (launch, offsets.0, offsets.1)
}

/// The kernel `base` in the precision of `R`.
fn kernel<'a, R: GpuReal>(device: &'a Device, base: &str) -> &'a CudaFunction {
    &device.functions[&format!("{base}_{}", R::SUFFIX)]
}

fn grid(items: u64) -> LaunchConfig {
    let blocks = items.div_ceil(THREADS as u64).max(1);
    LaunchConfig {
        grid_dim: (
            u32::try_from(blocks).expect("grid within 2^32 blocks"),
            1,
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launches the fused gates `fused` in order on `amps`, which holds `amplitudes` amplitudes: one
/// state of `n` qubits, or a batch of them side by side (the gates act alike on each). Nothing waits
/// for the device.
fn launch_gates<R: GpuReal>(
    device: &Device,
    amps: &mut CudaSlice<R>,
    n: usize,
    amplitudes: u64,
    fused: &[Gate],
) -> Result<(), cudarc::driver::DriverError> {
    if fused.is_empty() {
        return Ok(());
    }
    // All integer arguments and all matrices in one upload each; kernels read their part.
    let mut ints: Vec<i32> = Vec::new();
    let mut values: Vec<R> = Vec::new();
    let plan: Vec<_> = fused
        .iter()
        .map(|g| plan_launch(g, n, &mut ints, &mut values))
        .collect();
    let stream = &device.stream;
    let ints_d = stream.clone_htod(&ints)?;
    let values_d = stream.clone_htod(&values)?;
    for (launch, i, v) in plan {
        let i_view = ints_d.slice(i..);
        let v_view = values_d.slice(v..);
        // SAFETY (each launch): the kernel's contract in statevector.cu: `amplitudes` amplitudes,
        // ascending qubits below n, the integers and values `plan_launch` laid out for it.
        match launch {
            Launch::Diagonal { k } => {
                let k = k as i32;
                let mut b = stream.launch_builder(kernel::<R>(device, "diagonal"));
                b.arg(&mut *amps)
                    .arg(&amplitudes)
                    .arg(&i_view)
                    .arg(&k)
                    .arg(&v_view);
                unsafe { b.launch(grid(amplitudes)) }?;
            }
            Launch::Lanes { k, low } => {
                let warps = amplitudes >> (LANE_BITS + k - low);
                let name = dense_lanes_kernel(k, low);
                let mut b = stream.launch_builder(kernel::<R>(device, &name));
                b.arg(&mut *amps).arg(&warps).arg(&i_view).arg(&v_view);
                unsafe { b.launch(grid(warps << LANE_BITS)) }?;
            }
            Launch::Groups {
                kernel: base,
                k,
                width,
                controls,
            } => {
                let groups = amplitudes >> width;
                let width = width as i32;
                let name = format!("{base}{k}");
                let mut b = stream.launch_builder(kernel::<R>(device, &name));
                b.arg(&mut *amps)
                    .arg(&groups)
                    .arg(&i_view)
                    .arg(&width)
                    .arg(&controls)
                    .arg(&v_view);
                unsafe { b.launch(grid(groups)) }?;
            }
        }
    }
    Ok(())
}

/// The per-block partial results a reduction kernel left (`width` values per block) summed, in a
/// fixed order, per group of `blocks_per_group` consecutive blocks: `width` sums for each group.
fn group_sums(
    device: &Device,
    partial: &CudaSlice<f64>,
    blocks_per_group: usize,
    width: usize,
) -> Result<Vec<f64>, cudarc::driver::DriverError> {
    let host = device.stream.clone_dtoh(partial)?;
    Ok(host
        .chunks_exact(blocks_per_group * width)
        .flat_map(|blocks| (0..width).map(move |w| blocks.iter().skip(w).step_by(width).sum()))
        .collect())
}

impl<R: GpuReal> CudaState<R> {
    fn new(num_qubits: usize, device: Arc<Device>) -> Result<Self, BackendError> {
        let fail =
            |e: cudarc::driver::DriverError| unavailable(format!("allocating the state: {e}"));
        let mut amps = device
            .stream
            .alloc_zeros::<R>(2usize << num_qubits)
            .map_err(fail)?;
        device
            .stream
            .memcpy_htod(&[R::from_f64(1.0)], &mut amps.slice_mut(0..1))
            .map_err(fail)?;
        Ok(CudaState {
            amps,
            num_qubits,
            device,
        })
    }

    fn len(&self) -> u64 {
        1u64 << self.num_qubits
    }

    /// Sum of the per-block partial results a reduction kernel leaves, `width` values per block.
    fn partial_sums(&self, partial: &CudaSlice<f64>, width: usize) -> Vec<f64> {
        let blocks = partial.len() / width;
        check(
            "copy of partial sums",
            group_sums(&self.device, partial, blocks, width),
        )
    }
}

impl<R: GpuReal> StateVector for CudaState<R> {
    fn num_qubits(&self) -> usize {
        self.num_qubits
    }

    fn apply(&mut self, gates: &[Gate]) {
        let fused = fuse::fuse(gates, DENSE_FUSE_QUBITS, DIAGONAL_FUSE_QUBITS);
        let (n, amplitudes) = (self.num_qubits, self.len());
        check(
            "gate kernel launch",
            launch_gates(&self.device, &mut self.amps, n, amplitudes, &fused),
        );
        let state_bytes = self.amps.len() * std::mem::size_of::<R>();
        self.device.work.passes(fused.len(), state_bytes);
    }

    fn probability_of_one(&self, qubit: usize) -> f64 {
        let stream = &self.device.stream;
        let mut partial = check(
            "allocation",
            stream.alloc_zeros::<f64>(REDUCTION_BLOCKS as usize),
        );
        let (n, q) = (self.len(), qubit as i32);
        let mut launch = stream.launch_builder(kernel::<R>(&self.device, "prob_one"));
        launch.arg(&self.amps).arg(&n).arg(&q).arg(&mut partial);
        let config = LaunchConfig {
            grid_dim: (REDUCTION_BLOCKS, 1, 1),
            ..grid(1)
        };
        // SAFETY: 2^n amplitudes, one partial sum per block.
        check("probability kernel", unsafe { launch.launch(config) });
        self.partial_sums(&partial, 1)[0]
    }

    fn collapse(&mut self, qubit: usize, outcome: bool, probability: f64) {
        let (n, q, o, scale) = (
            self.len(),
            qubit as i32,
            outcome as i32,
            1.0 / probability.sqrt(),
        );
        let device = self.device.clone();
        let mut launch = device
            .stream
            .launch_builder(kernel::<R>(&device, "collapse"));
        launch
            .arg(&mut self.amps)
            .arg(&n)
            .arg(&q)
            .arg(&o)
            .arg(&scale);
        // SAFETY: 2^n amplitudes.
        check("collapse kernel", unsafe { launch.launch(grid(n)) });
    }

    fn sample(&self, uniforms: &[f64]) -> Vec<u64> {
        let stream = &self.device.stream;
        let chunk = (CHUNK as u64).min(self.len());
        let chunks = (self.len() / chunk) as usize;
        let mut sums = check("allocation", stream.alloc_zeros::<f64>(chunks));
        let mut launch = stream.launch_builder(kernel::<R>(&self.device, "chunk_norms"));
        launch.arg(&self.amps).arg(&chunk).arg(&mut sums);
        let config = LaunchConfig {
            grid_dim: (chunks as u32, 1, 1),
            ..grid(1)
        };
        // SAFETY: `chunks` chunks of `chunk` amplitudes, one sum each.
        check("chunk sums kernel", unsafe { launch.launch(config) });
        let sums = check("copy of chunk sums", stream.clone_dtoh(&sums));
        let total: f64 = sums.iter().sum();
        let chunk = chunk as usize;
        let mut out = Vec::with_capacity(uniforms.len());
        for d in state::assign_draws(&sums, uniforms) {
            let start = d.chunk * chunk;
            let floats = check(
                "copy of a chunk",
                stream.clone_dtoh(&self.amps.slice(2 * start..2 * (start + chunk))),
            );
            let amps: Vec<Complex<R>> = floats
                .chunks_exact(2)
                .map(|c| Complex::new(c[0], c[1]))
                .collect();
            out.extend(state::scan_chunk(&amps, start, &d, total, uniforms));
        }
        out.resize(uniforms.len(), 0);
        out
    }

    fn expectation(&self, p: &PauliString) -> f64 {
        let stream = &self.device.stream;
        let mut partial = check(
            "allocation",
            stream.alloc_zeros::<f64>(2 * REDUCTION_BLOCKS as usize),
        );
        let n = self.len();
        let mut launch = stream.launch_builder(kernel::<R>(&self.device, "pauli"));
        launch
            .arg(&self.amps)
            .arg(&n)
            .arg(&p.flip)
            .arg(&p.sign)
            .arg(&mut partial);
        let config = LaunchConfig {
            grid_dim: (REDUCTION_BLOCKS, 1, 1),
            ..grid(1)
        };
        // SAFETY: 2^n amplitudes, flip below 2^n, two partial sums per block.
        check("expectation kernel", unsafe { launch.launch(config) });
        let s = self.partial_sums(&partial, 2);
        // Times P's phase; the result is real for a Hermitian P.
        let sum = Complex::new(s[0], s[1]) * p.phase();
        sum.re
    }

    fn duplicate(&self) -> Box<dyn StateVector> {
        Box::new(CudaState {
            amps: check(
                "copy of the state",
                self.device.stream.clone_dtod(&self.amps),
            ),
            num_qubits: self.num_qubits,
            device: self.device.clone(),
        })
    }

    fn wait(&self) {
        check("stream synchronisation", self.device.stream.synchronize());
    }

    fn amplitudes(&self) -> Amplitudes {
        let floats = check(
            "copy of the state",
            self.device.stream.clone_dtoh(&self.amps),
        );
        R::into_amplitudes(
            floats
                .chunks_exact(2)
                .map(|c| Complex::new(c[0], c[1]))
                .collect(),
        )
    }
}
