//! The batched layer on a GPU: a [`QuantumLayer`]'s forward pass and adjoint backward pass with the
//! batch's statevectors side by side in device memory, sample b's 2^n amplitudes after sample
//! b - 1's, in double precision. Gates without parameters act alike on every sample, so they are
//! fused and run by the statevector kernels over the whole batch at once; rotations take each
//! sample's own angle (`kernels/cuda/layer.cu`). Reductions leave partial sums per block that the
//! host adds in a fixed order, so a run's results do not vary. A batch larger than the GPU's free
//! memory holds runs in parts.

use std::ops::Range;

use chimera_kernels::LAYER_Z_TERMS;
use cudarc::driver::{CudaFunction, CudaSlice, CudaView, DriverError, LaunchConfig, PushKernelArg};
use num_complex::Complex;

use super::{
    CudaBackend, DENSE_FUSE_QUBITS, DIAGONAL_FUSE_QUBITS, Device, HEADROOM, THREADS, grid,
    group_sums, launch_gates,
};
use crate::backend::human_bytes;
use crate::fuse;
use chimera_circuit::circuit::Gate;
use chimera_circuit::layer::{Angle, Axis, Gradients, LayerError, Op, QuantumLayer, SplitTerms};

/// Most blocks a reduction gives one sample: with 64 samples of 20 qubits, 4,096 blocks.
const MAX_BLOCKS_PER_SAMPLE: u64 = 64;
/// Most samples in one part of a batch, which bounds the partial sums kept per rotation.
const MAX_PART_SAMPLES: usize = 1 << 16;

fn device_error(e: DriverError) -> LayerError {
    LayerError::Device(e.to_string())
}

fn layer_kernel<'a>(device: &'a Device, name: &str) -> &'a CudaFunction {
    &device.functions[name]
}

fn axis_index(axis: Axis) -> i32 {
    match axis {
        Axis::X => 0,
        Axis::Y => 1,
        Axis::Z => 2,
    }
}

impl CudaBackend {
    /// The layer's outputs for a batch (samples × outputs), on this GPU.
    pub fn layer_forward(
        &self,
        layer: &QuantumLayer,
        inputs: &[f64],
        weights: &[f64],
    ) -> Result<Vec<f64>, LayerError> {
        let samples = layer.samples(inputs, weights)?;
        let mut outputs = Vec::with_capacity(samples * layer.outputs());
        for part in self.parts(layer, samples, 1)? {
            let mut batch = Batch::new(&self.device, layer, inputs, weights, part)?;
            batch.forward_sweep()?;
            outputs.extend(batch.expectations()?);
        }
        Ok(outputs)
    }

    /// The layer's outputs and the adjoint method's gradients for a batch, on this GPU: two
    /// statevectors per sample.
    pub fn layer_backward(
        &self,
        layer: &QuantumLayer,
        inputs: &[f64],
        weights: &[f64],
        upstream: &[f64],
    ) -> Result<(Vec<f64>, Gradients), LayerError> {
        let samples = layer.samples_with_upstream(inputs, weights, upstream)?;
        let outputs_per_sample = layer.outputs();
        let mut outputs = Vec::with_capacity(samples * outputs_per_sample);
        let mut gradients = Gradients {
            inputs: Vec::with_capacity(inputs.len()),
            weights: vec![0.0; layer.weights()],
        };
        for part in self.parts(layer, samples, 2)? {
            let g = &upstream[part.start * outputs_per_sample..part.end * outputs_per_sample];
            let mut batch = Batch::new(&self.device, layer, inputs, weights, part)?;
            batch.forward_sweep()?;
            outputs.extend(batch.expectations()?);
            let (dx, dw) = batch.backward_sweep(g)?;
            gradients.inputs.extend(dx);
            for (total, d) in gradients.weights.iter_mut().zip(dw) {
                *total += d;
            }
        }
        Ok((outputs, gradients))
    }

    /// The batch's samples in parts whose `states` statevectors each fit the GPU's free memory.
    fn parts(
        &self,
        layer: &QuantumLayer,
        samples: usize,
        states: u128,
    ) -> Result<Vec<Range<usize>>, LayerError> {
        let (free, _) = self.context.mem_get_info().map_err(device_error)?;
        let per_sample = states << (layer.qubits() + 4);
        let fit = (free as u128).saturating_sub(HEADROOM) / per_sample;
        if fit == 0 {
            return Err(LayerError::Device(format!(
                "one sample's {states} statevectors of {} qubits need {}, and the GPU has {} free",
                layer.qubits(),
                human_bytes(per_sample),
                human_bytes(free as u128)
            )));
        }
        let per_part = fit.min(MAX_PART_SAMPLES as u128) as usize;
        Ok((0..samples)
            .step_by(per_part)
            .map(|start| start..(start + per_part).min(samples))
            .collect())
    }
}

/// Part of a batch on the device: its inputs, the weights and ψ.
struct Batch<'a> {
    device: &'a Device,
    layer: &'a QuantumLayer,
    samples: usize,
    /// samples × inputs, and the weights (each at least one value: the device allocates none of 0).
    inputs: CudaSlice<f64>,
    weights: CudaSlice<f64>,
    /// ψ of each sample, interleaved (re, im).
    phi: CudaSlice<f64>,
    /// How the reductions split a sample: blocks of `threads`.
    blocks_per_sample: u64,
    threads: u32,
}

/// Where a rotation's angles are read: the device pointer and the stride between samples.
fn angles<'b>(
    inputs: &'b CudaSlice<f64>,
    weights: &'b CudaSlice<f64>,
    layer: &QuantumLayer,
    angle: Angle,
) -> (CudaView<'b, f64>, u64) {
    match angle {
        Angle::Input(i) => (inputs.slice(i..), layer.inputs() as u64),
        Angle::Weight(w) => (weights.slice(w..), 0),
    }
}

/// At least one value, for a device buffer.
fn non_empty(values: &[f64]) -> &[f64] {
    if values.is_empty() { &[0.0] } else { values }
}

impl<'a> Batch<'a> {
    fn new(
        device: &'a Device,
        layer: &'a QuantumLayer,
        inputs: &[f64],
        weights: &[f64],
        part: Range<usize>,
    ) -> Result<Self, LayerError> {
        let stream = &device.stream;
        let width = layer.inputs();
        let samples = part.len();
        let part_inputs = &inputs[part.start * width..part.end * width];
        let pairs = 1u64 << (layer.qubits() - 1);
        let mut batch = Batch {
            device,
            layer,
            samples,
            inputs: stream
                .clone_htod(non_empty(part_inputs))
                .map_err(device_error)?,
            weights: stream
                .clone_htod(non_empty(weights))
                .map_err(device_error)?,
            phi: stream
                .alloc_zeros::<f64>(2 * (samples << layer.qubits()))
                .map_err(device_error)?,
            blocks_per_sample: (pairs / (4 * THREADS as u64)).clamp(1, MAX_BLOCKS_PER_SAMPLE),
            threads: (pairs.next_multiple_of(32) as u32).min(THREADS),
        };
        let (total, n) = (batch.amplitudes(), layer.qubits() as i32);
        let mut launch = stream.launch_builder(layer_kernel(device, "layer_zero"));
        launch.arg(&mut batch.phi).arg(&total).arg(&n);
        // SAFETY: `total` amplitudes of 2^n per sample.
        unsafe { launch.launch(grid(total)) }.map_err(device_error)?;
        Ok(batch)
    }

    fn amplitudes(&self) -> u64 {
        (self.samples as u64) << self.layer.qubits()
    }

    /// The launch of a reduction: `blocks_per_sample` blocks per sample.
    fn reduction(&self) -> LaunchConfig {
        let blocks = self.samples as u64 * self.blocks_per_sample;
        LaunchConfig {
            grid_dim: (u32::try_from(blocks).expect("blocks within 2^32"), 1, 1),
            block_dim: (self.threads, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Launches the collected `gates` (fused) on each of `states`, and empties the collection.
    fn flush(
        device: &Device,
        layer: &QuantumLayer,
        total: u64,
        gates: &mut Vec<Gate>,
        states: &mut [&mut CudaSlice<f64>],
    ) -> Result<(), LayerError> {
        let fused = fuse::fuse(gates, DENSE_FUSE_QUBITS, DIAGONAL_FUSE_QUBITS);
        for state in states {
            launch_gates(device, state, layer.qubits(), total, &fused).map_err(device_error)?;
        }
        gates.clear();
        Ok(())
    }

    /// ψ = U_L…U_1|0…0⟩ for each sample.
    fn forward_sweep(&mut self) -> Result<(), LayerError> {
        let (device, layer, total) = (self.device, self.layer, self.amplitudes());
        let mut fixed: Vec<Gate> = Vec::new();
        for op in layer.ops() {
            match *op {
                Op::Fixed(ref gate) => fixed.push(gate.clone()),
                Op::Rotation { qubit, axis, angle } => {
                    Self::flush(device, layer, total, &mut fixed, &mut [&mut self.phi])?;
                    let (angles, stride) = angles(&self.inputs, &self.weights, layer, angle);
                    let (pairs, n, qubit, axis) = (
                        total / 2,
                        layer.qubits() as i32,
                        qubit as i32,
                        axis_index(axis),
                    );
                    let mut launch = device
                        .stream
                        .launch_builder(layer_kernel(device, "layer_rotate"));
                    launch
                        .arg(&mut self.phi)
                        .arg(&pairs)
                        .arg(&n)
                        .arg(&qubit)
                        .arg(&axis)
                        .arg(&angles)
                        .arg(&stride)
                        .arg(&1.0f64);
                    // SAFETY: `pairs` pairs of a batch of 2^n-amplitude states, qubit below n,
                    // one angle per sample `stride` apart.
                    unsafe { launch.launch(grid(pairs)) }.map_err(device_error)?;
                }
            }
        }
        Self::flush(device, layer, total, &mut fixed, &mut [&mut self.phi])
    }

    /// Per sample, the sum of each block's `width` partial values: `partial` holds them block by
    /// block, a sample's blocks together.
    fn per_sample_sums(
        &self,
        partial: &CudaSlice<f64>,
        width: usize,
    ) -> Result<Vec<f64>, LayerError> {
        group_sums(self.device, partial, self.blocks_per_sample as usize, width)
            .map_err(device_error)
    }

    /// ⟨O_k⟩ for each sample (samples × outputs): the Z products eight to a pass over the batch,
    /// then each term with X or Y factors in a pass of its own.
    fn expectations(&self) -> Result<Vec<f64>, LayerError> {
        let (device, stream) = (self.device, &self.device.stream);
        let outputs = self.layer.outputs();
        let mut values = vec![0.0; self.samples * outputs];
        let SplitTerms { diagonal, other } = self.layer.split_terms();
        let n = self.layer.qubits() as i32;
        let bps = self.blocks_per_sample as i32;
        let blocks = self.samples * self.blocks_per_sample as usize;
        for group in diagonal.chunks(LAYER_Z_TERMS) {
            let mut masks = [0u64; LAYER_Z_TERMS];
            for (mask, &(_, _, sign)) in masks.iter_mut().zip(group) {
                *mask = sign;
            }
            let masks = stream.clone_htod(&masks).map_err(device_error)?;
            let mut partial = stream
                .alloc_zeros::<f64>(blocks * LAYER_Z_TERMS)
                .map_err(device_error)?;
            let mut launch = stream.launch_builder(layer_kernel(device, "layer_z_terms"));
            launch
                .arg(&self.phi)
                .arg(&n)
                .arg(&bps)
                .arg(&masks)
                .arg(&mut partial);
            // SAFETY: samples × 2^n amplitudes, LAYER_Z_TERMS masks, that many sums per block.
            unsafe { launch.launch(self.reduction()) }.map_err(device_error)?;
            let sums = self.per_sample_sums(&partial, LAYER_Z_TERMS)?;
            for (b, sample) in sums.chunks_exact(LAYER_Z_TERMS).enumerate() {
                for (&(k, c, _), sum) in group.iter().zip(sample) {
                    values[b * outputs + k] += c * sum;
                }
            }
        }
        for (k, c, p) in other {
            let mut partial = stream
                .alloc_zeros::<f64>(2 * blocks)
                .map_err(device_error)?;
            let mut launch = stream.launch_builder(layer_kernel(device, "layer_pauli"));
            launch
                .arg(&self.phi)
                .arg(&n)
                .arg(&bps)
                .arg(&p.flip)
                .arg(&p.sign)
                .arg(&mut partial);
            // SAFETY: samples × 2^n amplitudes, flip below 2^n, two sums per block.
            unsafe { launch.launch(self.reduction()) }.map_err(device_error)?;
            let sums = self.per_sample_sums(&partial, 2)?;
            let phase = p.phase();
            for (b, s) in sums.chunks_exact(2).enumerate() {
                values[b * outputs + k] += c * (Complex::new(s[0], s[1]) * phase).re;
            }
        }
        Ok(values)
    }

    /// The adjoint method's backward sweep for upstream gradients `g` (samples × outputs), ψ made:
    /// λ = Σ g_k O_k ψ, then each gate undone on ψ and λ from the last, a rotation adding
    /// Im⟨λ|A|ψ⟩ to its angle's gradient. Returns the gradients of the inputs (samples × inputs)
    /// and of the weights (summed over the samples).
    fn backward_sweep(&mut self, g: &[f64]) -> Result<(Vec<f64>, Vec<f64>), LayerError> {
        let (device, layer, total) = (self.device, self.layer, self.amplitudes());
        let stream = &device.stream;
        let n = layer.qubits() as i32;
        let outputs = layer.outputs() as u64;
        let g = stream.clone_htod(non_empty(g)).map_err(device_error)?;
        let mut lambda = stream
            .alloc_zeros::<f64>(self.phi.len())
            .map_err(device_error)?;
        for (k, terms) in layer.observable_terms().iter().enumerate() {
            for (c, p) in terms {
                let phase = p.phase();
                let g_k = g.slice(k..);
                let mut launch = stream.launch_builder(layer_kernel(device, "layer_add_pauli"));
                launch
                    .arg(&mut lambda)
                    .arg(&self.phi)
                    .arg(&total)
                    .arg(&n)
                    .arg(&p.flip)
                    .arg(&p.sign)
                    .arg(&phase.re)
                    .arg(&phase.im)
                    .arg(&g_k)
                    .arg(&outputs)
                    .arg(c);
                // SAFETY: `total` amplitudes in both, flip below 2^n, one upstream gradient per
                // sample `outputs` apart.
                unsafe { launch.launch(grid(total)) }.map_err(device_error)?;
            }
        }
        let rotations: Vec<(usize, Axis, Angle)> = (layer.ops().iter().rev())
            .filter_map(|op| match *op {
                Op::Rotation { qubit, axis, angle } => Some((qubit, axis, angle)),
                Op::Fixed(_) => None,
            })
            .collect();
        let blocks = self.samples * self.blocks_per_sample as usize;
        let mut partial = stream
            .alloc_zeros::<f64>(rotations.len().max(1) * blocks)
            .map_err(device_error)?;
        let bps = self.blocks_per_sample as i32;
        let reduction = self.reduction();
        let mut undone: Vec<Gate> = Vec::new();
        let mut next_rotation = 0;
        // The gates before the first rotation need not be undone: nothing is read after them.
        for op in layer.ops().iter().rev() {
            let Op::Rotation { qubit, axis, angle } = *op else {
                if let Op::Fixed(gate) = op {
                    undone.push(gate.adjoint());
                }
                continue;
            };
            Self::flush(
                device,
                layer,
                total,
                &mut undone,
                &mut [&mut self.phi, &mut lambda],
            )?;
            let (angles, stride) = angles(&self.inputs, &self.weights, layer, angle);
            let mut slot = partial.slice_mut(next_rotation * blocks..);
            let (qubit, axis) = (qubit as i32, axis_index(axis));
            let mut launch = stream.launch_builder(layer_kernel(device, "layer_undo_rotation"));
            launch
                .arg(&mut self.phi)
                .arg(&mut lambda)
                .arg(&n)
                .arg(&bps)
                .arg(&qubit)
                .arg(&axis)
                .arg(&angles)
                .arg(&stride)
                .arg(&mut slot);
            // SAFETY: samples × 2^n amplitudes in both, qubit below n, one angle per sample
            // `stride` apart, one partial sum per block in this rotation's slot.
            unsafe { launch.launch(reduction) }.map_err(device_error)?;
            next_rotation += 1;
        }
        let sums = self.per_sample_sums(&partial, 1)?;
        let width = layer.inputs();
        let (mut dx, mut dw) = (vec![0.0; self.samples * width], vec![0.0; layer.weights()]);
        for (per_rotation, &(_, _, angle)) in sums.chunks_exact(self.samples).zip(&rotations) {
            for (b, d) in per_rotation.iter().enumerate() {
                match angle {
                    Angle::Input(i) => dx[b * width + i] += d,
                    Angle::Weight(w) => dw[w] += d,
                }
            }
        }
        Ok((dx, dw))
    }
}

/// On a GPU: the layer agrees with the CPU's. Without one each test says SKIPPED and why.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::adjoint::Simulator;
    use crate::backend::cpu::layer::tests::{random_layer, random_values};
    use chimera_circuit::circuit::Gate;
    use chimera_circuit::gates;
    use chimera_circuit::layer::Observable;
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;

    fn gpu(test: &str) -> Option<Simulator> {
        match CudaBackend::new() {
            Ok(gpu) => Some(Simulator::Cuda(std::sync::Arc::new(gpu))),
            Err(why) => {
                eprintln!("SKIPPED {test}: {why}");
                None
            }
        }
    }

    fn largest_gap(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    }

    /// Forward values and adjoint gradients on the GPU and on the CPU, the largest differences.
    fn compare(gpu: &Simulator, layer: &QuantumLayer, samples: usize, seed: u64) -> [f64; 4] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = random_values(&mut rng, samples * layer.inputs());
        let w = random_values(&mut rng, layer.weights());
        let g = random_values(&mut rng, samples * layer.outputs());
        let forward = gpu.forward(layer, &x, &w).unwrap();
        let (values, gradients) = gpu.backward(layer, &x, &w, &g).unwrap();
        let (cpu_values, cpu_gradients) = Simulator::Cpu.backward(layer, &x, &w, &g).unwrap();
        assert_eq!(forward, values, "forward and backward's values differ");
        // Run to run, the GPU gives the very same numbers (fixed reduction order).
        assert_eq!(gpu.backward(layer, &x, &w, &g).unwrap().1, gradients);
        [
            largest_gap(&values, &cpu_values),
            largest_gap(&gradients.inputs, &cpu_gradients.inputs),
            largest_gap(&gradients.weights, &cpu_gradients.weights),
            cpu_gradients
                .weights
                .iter()
                .fold(0.0, |m: f64, d| m.max(d.abs())),
        ]
    }

    #[test]
    fn the_gpu_layer_matches_the_cpu_layer_on_random_circuits() {
        let Some(gpu) = gpu("the_gpu_layer_matches_the_cpu_layer_on_random_circuits") else {
            return;
        };
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let mut sizeable = 0;
        for trial in 0..24 {
            // 3 to 14 qubits: below and above a warp's 32 pairs, one block and several per sample.
            let qubits = 3 + (trial * 5) % 12;
            let layer = random_layer(&mut rng, qubits);
            let [values, inputs, weights, size] =
                compare(&gpu, &layer, 1 + trial % 9, trial as u64);
            assert!(
                values < 1e-12,
                "trial {trial} ({qubits} qubits): values {values}"
            );
            assert!(inputs < 1e-10, "trial {trial}: input gradients {inputs}");
            assert!(weights < 1e-10, "trial {trial}: weight gradients {weights}");
            sizeable += usize::from(size > 1e-3);
        }
        // Some random circuits barely depend on their weights; most must, or the comparison
        // above would hold for a layer that passed no gradient back.
        assert!(
            sizeable >= 20,
            "{sizeable} of 24 trials have weight gradients above 1e-3"
        );
    }

    /// More samples than one part of a batch holds: the parts join up.
    #[test]
    fn a_batch_larger_than_a_part_is_run_in_parts() {
        let Some(gpu) = gpu("a_batch_larger_than_a_part_is_run_in_parts") else {
            return;
        };
        let layer = random_layer(&mut ChaCha8Rng::seed_from_u64(3), 3);
        let [values, inputs, weights, _] = compare(&gpu, &layer, MAX_PART_SAMPLES + 1000, 9);
        assert!(values < 1e-12 && inputs < 1e-10, "{values} {inputs}");
        // Weight gradients are sums over 66,536 samples.
        assert!(weights < 1e-7, "{weights}");
    }

    /// Twenty qubits, entangled (so no product-state shortcut hides a wrong pair index), with
    /// inputs on every qubit: against the CPU.
    #[test]
    fn twenty_qubits_entangled_match_the_cpu() {
        let Some(gpu) = gpu("twenty_qubits_entangled_match_the_cpu") else {
            return;
        };
        let n = chimera_circuit::layer::MAX_QUBITS;
        let rotation = |qubit, axis, angle| Op::Rotation { qubit, axis, angle };
        let cnot = |a: usize, b: usize| {
            Op::Fixed(Gate::new(vec![a, b], gates::controlled(&gates::x(), 1)))
        };
        let mut ops: Vec<Op> = (0..n)
            .map(|q| rotation(q, Axis::X, Angle::Input(q)))
            .collect();
        for layer in 0..2 {
            for q in 0..n {
                ops.push(rotation(q, Axis::Y, Angle::Weight(layer * n + q)));
                ops.push(rotation(q, Axis::Z, Angle::Weight(2 * n + q)));
            }
            ops.extend((0..n).map(|q| cnot(q, (q + 1) % n)));
        }
        let mut observables: Vec<Observable> = (0..n).map(Observable::Z).collect();
        observables.push(Observable::ZZ(0, n - 1));
        observables.push(Observable::Sum(
            chimera_circuit::pauli::PauliSum::parse("0.5*X0 Y19 - 0.25*X7").unwrap(),
        ));
        let layer = QuantumLayer::new(n, ops, &observables).unwrap();
        let [values, inputs, weights, size] = compare(&gpu, &layer, 3, 21);
        assert!(values < 1e-11, "values {values}");
        assert!(inputs < 1e-10 && weights < 1e-10, "{inputs} {weights}");
        assert!(size > 1e-3, "gradients all near zero");
    }
}
