//! GPU metrics (DESIGN.md, "Observability": GPU memory, `chimera_cuda_utilization{device_id}`)
//! from NVML, the driver's management library, loaded at run time. It opens no CUDA context, so
//! sampling cannot fault the front door. On a machine without an NVIDIA driver there are no GPU
//! metrics.

use std::time::Duration;

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

use crate::metrics_names as m;

/// How often the GPUs are sampled; NVML's own utilisation window is of this order.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// NVML as a driver install names it: the development link first, then the runtime soname.
fn open_nvml() -> Result<Nvml, NvmlError> {
    Nvml::init().or_else(|_| {
        Nvml::builder()
            .lib_path("libnvidia-ml.so.1".as_ref())
            .init()
    })
}

/// Starts a thread that samples every GPU into the metrics, when NVML answers; otherwise says why
/// not at debug level (most machines this runs on have no GPU) and starts nothing.
pub fn start() {
    let nvml = match open_nvml() {
        Ok(nvml) => nvml,
        Err(e) => {
            tracing::debug!("no GPU metrics: NVML is not available ({e})");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("gpu-metrics".into())
        .spawn(move || {
            loop {
                if let Err(e) = sample(&nvml) {
                    tracing::warn!("GPU metrics stopped: NVML failed ({e})");
                    return;
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("no GPU metrics: cannot start their thread ({e})");
    }
}

/// The largest GPU's memory in bytes, when NVML answers.
pub fn largest_gpu_memory() -> Option<u64> {
    let nvml = open_nvml().ok()?;
    (0..nvml.device_count().ok()?)
        .filter_map(|i| nvml.device_by_index(i).and_then(|d| d.memory_info()).ok())
        .map(|memory| memory.total)
        .max()
}

/// The NVIDIA driver's version, when NVML answers.
pub fn driver_version() -> Option<String> {
    open_nvml().ok()?.sys_driver_version().ok()
}

fn sample(nvml: &Nvml) -> Result<(), NvmlError> {
    for index in 0..nvml.device_count()? {
        let device = nvml.device_by_index(index)?;
        let utilization = device.utilization_rates()?;
        let memory = device.memory_info()?;
        let id = index.to_string();
        metrics::gauge!(m::CUDA_UTILIZATION, "device_id" => id.clone())
            .set(f64::from(utilization.gpu) / 100.0);
        metrics::gauge!(m::GPU_MEMORY_USED, "device_id" => id.clone()).set(memory.used as f64);
        metrics::gauge!(m::GPU_MEMORY_TOTAL, "device_id" => id).set(memory.total as f64);
    }
    Ok(())
}
