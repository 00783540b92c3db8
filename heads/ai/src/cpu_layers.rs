//! The CNN's convolution, batch norm and max pooling on the CPU as candle custom ops, each one pass
//! forward and one pass backward. Built from candle's tensor ops instead, a training step spent
//! most of its time in strided copies, zero-filled temporaries and gradient additions (`perf`,
//! benches/RESULTS.md), not in arithmetic. Other devices keep candle's ops (`model.rs`).
//!
//! Sums over the batch are taken in fixed chunks of samples and the chunks added in order, so a
//! result does not depend on the number of threads or on how the work is scheduled.

use crate::parallel::{for_each_parallel, map_parallel};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use std::sync::OnceLock;

/// Samples per chunk of a batch sum (see the module's note on determinism).
const CHUNK: usize = 8;

fn error(message: String) -> candle_core::Error {
    candle_core::Error::Msg(message)
}

/// The f32 elements of a contiguous CPU storage.
pub(crate) fn elements<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| error(format!("{what}: the tensor must be contiguous")))?;
    match storage {
        CpuStorage::F32(data) => Ok(&data[start..end]),
        other => Err(error(format!("{what}: f32 only, got {:?}", other.dtype()))),
    }
}

/// `with_elements` of three tensors, each named for errors.
fn with_elements3<R>(
    tensors: [(&Tensor, &str); 3],
    f: impl FnOnce(&[f32], &[f32], &[f32]) -> Result<R>,
) -> Result<R> {
    let [(a, what_a), (b, what_b), (c, what_c)] = tensors;
    with_elements(a, what_a, |a| {
        with_elements(b, what_b, |b| with_elements(c, what_c, |c| f(a, b, c)))
    })
}

/// Runs `f` on the f32 elements of a CPU tensor (copied first if it is not contiguous).
fn with_elements<R>(tensor: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let tensor = tensor.contiguous()?;
    let (storage, layout) = tensor.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(elements(cpu, layout, what)?),
        _ => Err(error(format!("{what}: a CPU tensor was expected"))),
    }
}

fn cpu_tensor(values: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(values, shape, &candle_core::Device::Cpu)
}

/// A row-major matrix view: element (i, j) at `data[i * row_stride + j * col_stride]`, so a
/// transposed view is the same data with the strides swapped.
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    pub(crate) fn rows(data: &'a [f32], columns: usize) -> Self {
        Self {
            data,
            row_stride: columns,
            col_stride: 1,
        }
    }
    pub(crate) fn transposed(data: &'a [f32], columns: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: columns,
        }
    }
    /// Panics unless every element of an `rows` x `columns` view lies inside the data.
    fn check(&self, rows: usize, columns: usize) {
        let last = (rows - 1) * self.row_stride + (columns - 1) * self.col_stride;
        assert!(last < self.data.len(), "matrix view out of bounds");
    }
}

/// `out` (m x n, row-major) = a (m x k) · b (k x n), or `out += a · b` with `accumulate`, on this
/// thread.
pub(crate) fn matmul(
    out: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    a: Matrix,
    b: Matrix,
    accumulate: bool,
) {
    assert!(out.len() >= m * n);
    a.check(m, k);
    b.check(k, n);
    // SAFETY: every element the product reads or writes lies inside the slices (checked above),
    // and `out` does not overlap `a` or `b` (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The sizes of a size-keeping convolution of one image [channels, height, width].
#[derive(Clone, Copy)]
struct Geometry {
    channels: usize,
    height: usize,
    width: usize,
    kernel: usize,
    out_channels: usize,
}

impl Geometry {
    fn pixels(&self) -> usize {
        self.height * self.width
    }
    fn image_len(&self) -> usize {
        self.channels * self.pixels()
    }
    fn out_len(&self) -> usize {
        self.out_channels * self.pixels()
    }
    /// Rows of the unfolded image (and columns of the flattened weight): (channel, dy, dx).
    fn taps(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// For each tap row (channel, dy, dx) and image row y: the source row, and the x range
    /// [x0, x1) whose source x + dx - pad lies inside the image; `f(tap, y, source_row, x0, x1,
    /// shift)` with source index x + shift.
    fn for_each_segment(
        &self,
        mut f: impl FnMut(usize, usize, Option<usize>, usize, usize, isize),
    ) {
        let (k, h, w) = (self.kernel, self.height, self.width);
        let pad = k / 2;
        for c in 0..self.channels {
            for dy in 0..k {
                for dx in 0..k {
                    let tap = (c * k + dy) * k + dx;
                    let x0 = pad.saturating_sub(dx);
                    let x1 = (w + pad).saturating_sub(dx).min(w);
                    for y in 0..h {
                        let sy = (y + dy).checked_sub(pad).filter(|&sy| sy < h);
                        let row = sy.map(|sy| (c * h + sy) * w);
                        f(tap, y, row, x0, x1, dx as isize - pad as isize);
                    }
                }
            }
        }
    }

    /// Unfolds one image into `columns` [taps, pixels]: row (c, dy, dx) is channel c shifted by
    /// (dy - pad, dx - pad), zero outside the image.
    fn unfold(&self, image: &[f32], columns: &mut [f32]) {
        let (p, w) = (self.pixels(), self.width);
        self.for_each_segment(|tap, y, row, x0, x1, shift| {
            let out = &mut columns[tap * p + y * w..tap * p + (y + 1) * w];
            match row {
                Some(row) if x0 < x1 => {
                    out[..x0].fill(0.0);
                    let from = (row as isize + x0 as isize + shift) as usize;
                    out[x0..x1].copy_from_slice(&image[from..from + x1 - x0]);
                    out[x1..].fill(0.0);
                }
                _ => out.fill(0.0),
            }
        });
    }

    /// The transpose of `unfold`: adds each column entry back onto the pixel it came from.
    fn fold_add(&self, columns: &[f32], image: &mut [f32]) {
        let (p, w) = (self.pixels(), self.width);
        self.for_each_segment(|tap, y, row, x0, x1, shift| {
            if let Some(row) = row.filter(|_| x0 < x1) {
                let from = &columns[tap * p + y * w + x0..tap * p + y * w + x1];
                let to = (row as isize + x0 as isize + shift) as usize;
                for (pixel, value) in image[to..to + x1 - x0].iter_mut().zip(from) {
                    *pixel += value;
                }
            }
        });
    }
}

/// A stride-1 convolution padded to keep the image size, with bias: `conv(x [n, c, h, w], weight
/// [c_out, c, k, k], bias [c_out])` (a cross-correlation, as PyTorch's), k odd.
struct Conv;

fn geometry(x: &[usize], weight: &[usize]) -> Result<Geometry> {
    match (x, weight) {
        (&[_, channels, height, width], &[out_channels, c, kernel, k2])
            if c == channels && kernel == k2 && kernel % 2 == 1 =>
        {
            Ok(Geometry {
                channels,
                height,
                width,
                kernel,
                out_channels,
            })
        }
        _ => Err(error(format!(
            "convolution of {x:?} by a {weight:?} weight: expected [n, c, h, w] and [c_out, c, k, k], k odd"
        ))),
    }
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "chimera-conv"
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
        let g = geometry(x_layout.dims(), weight_layout.dims())?;
        let n = x_layout.dims()[0];
        let (x, weight) = (
            elements(x, x_layout, "conv input")?,
            elements(weight, weight_layout, "conv weight")?,
        );
        let bias = elements(bias, bias_layout, "conv bias")?;
        let mut out = vec![0f32; n * g.out_len()];
        let batches = out
            .chunks_mut(CHUNK * g.out_len())
            .zip(x.chunks(CHUNK * g.image_len()));
        for_each_parallel(batches, |(out, images)| {
            let mut columns = vec![0f32; g.taps() * g.pixels()];
            for (out, image) in out
                .chunks_mut(g.out_len())
                .zip(images.chunks(g.image_len()))
            {
                g.unfold(image, &mut columns);
                for (row, b) in out.chunks_mut(g.pixels()).zip(bias) {
                    row.fill(*b);
                }
                let (w, cols) = (
                    Matrix::rows(weight, g.taps()),
                    Matrix::rows(&columns, g.pixels()),
                );
                matmul(out, g.out_channels, g.pixels(), g.taps(), w, cols, true);
            }
        });
        let shape = Shape::from((n, g.out_channels, g.height, g.width));
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = geometry(x.dims(), weight.dims())?;
        let n = x.dim(0)?;
        let inputs = [
            (x, "conv input"),
            (weight, "conv weight"),
            (grad, "conv gradient"),
        ];
        with_elements3(inputs, |x_data, w_data, grad_data| {
            let (gx, gw, gb) = conv_backward(g, n, x_data, w_data, grad_data);
            Ok((
                Some(cpu_tensor(gx, x.dims())?),
                Some(cpu_tensor(gw, weight.dims())?),
                Some(cpu_tensor(gb, &[g.out_channels])?),
            ))
        })
    }
}

/// Gradients of the input, the weight and the bias of `n` images, from the output's gradient.
fn conv_backward(
    g: Geometry,
    n: usize,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (p, taps) = (g.pixels(), g.taps());
    let mut gx = vec![0f32; n * g.image_len()];
    // Per chunk of samples: its share of the weight and bias gradients, [c_out * taps + c_out].
    let partial_len = g.out_channels * (taps + 1);
    let mut partials = vec![0f32; n.div_ceil(CHUNK) * partial_len];
    let batches = gx
        .chunks_mut(CHUNK * g.image_len())
        .zip(x.chunks(CHUNK * g.image_len()))
        .zip(grad.chunks(CHUNK * g.out_len()))
        .zip(partials.chunks_mut(partial_len));
    for_each_parallel(batches, |(((gx, x), grad), partial)| {
        let mut columns = vec![0f32; taps * p];
        let mut grad_columns = vec![0f32; taps * p];
        for ((gx, image), grad) in gx
            .chunks_mut(g.image_len())
            .zip(x.chunks(g.image_len()))
            .zip(grad.chunks(g.out_len()))
        {
            let (gw, gb) = partial.split_at_mut(g.out_channels * taps);
            g.unfold(image, &mut columns);
            // d weight [c_out, taps] += grad [c_out, p] · columnsᵀ [p, taps]
            let (grad_m, cols_t) = (Matrix::rows(grad, p), Matrix::transposed(&columns, p));
            matmul(gw, g.out_channels, taps, p, grad_m, cols_t, true);
            // d columns [taps, p] = weightᵀ [taps, c_out] · grad [c_out, p], folded back.
            let w_t = Matrix::transposed(weight, taps);
            matmul(
                &mut grad_columns,
                taps,
                p,
                g.out_channels,
                w_t,
                grad_m,
                false,
            );
            g.fold_add(&grad_columns, gx);
            for (b, row) in gb.iter_mut().zip(grad.chunks(p)) {
                *b += lane_sum(row, row, |g, _| g);
            }
        }
    });
    let mut total = vec![0f32; partial_len];
    for partial in partials.chunks(partial_len) {
        for (t, v) in total.iter_mut().zip(partial) {
            *t += v;
        }
    }
    let gb = total.split_off(g.out_channels * taps);
    (gx, total, gb)
}

/// A size-keeping convolution with bias on the CPU; `x` [n, c, h, w], `weight` [c_out, c, k, k].
pub fn conv(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, Conv)
}

/// Per-channel mean and (biased) variance of `x` [n, c, ...] over the batch and the pixels.
pub fn channel_statistics(x: &Tensor) -> Result<(Vec<f32>, Vec<f32>)> {
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    let pixels = x.elem_count() / (n * c).max(1);
    with_elements(x, "batch-norm input", |data| {
        let count = (n * pixels) as f64;
        // Each plane summed in f32 lanes, the planes in f64.
        let sum_planes = |channel: usize, f: &dyn Fn(&[f32]) -> f32| -> f64 {
            (0..n)
                .map(|i| f(channel_plane(data, i, channel, c, pixels)) as f64)
                .sum()
        };
        let statistics = map_parallel(c, |channel| {
            let mean = (sum_planes(channel, &|p| lane_sum(p, p, |v, _| v)) / count) as f32;
            let squares = |p: &[f32]| lane_sum(p, p, |v, _| (v - mean) * (v - mean));
            let var = sum_planes(channel, &squares) / count;
            (mean, var as f32)
        });
        Ok(statistics.into_iter().unzip())
    })
}

/// Σ f(a_i, b_i) over two slices of one length, in 8 lanes so that it is vectorised.
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    let mut lanes = [0f32; 8];
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += f(x[i], y[i]);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Channel `ch` of sample `i` in data [n, c, pixels].
fn channel_plane(data: &[f32], i: usize, ch: usize, c: usize, pixels: usize) -> &[f32] {
    &data[(i * c + ch) * pixels..(i * c + ch + 1) * pixels]
}

/// Batch normalisation with given per-channel statistics, then scale and shift:
/// `(x - mean) * inv_std * weight + bias` on x [n, c, ...]. Its backward pass is that of batch
/// norm in training, where mean and inv_std are the batch's own (they depend on x).
struct BatchNorm {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl BatchNorm {
    /// (samples, channels, pixels per channel) of `dims`, checked against the statistics.
    fn sizes(&self, dims: &[usize]) -> Result<(usize, usize, usize)> {
        match dims {
            [n, c, rest @ ..] if *c == self.mean.len() => Ok((*n, *c, rest.iter().product())),
            _ => Err(error(format!(
                "batch norm over {} channels given a {dims:?} input",
                self.mean.len()
            ))),
        }
    }

    /// Gradients of the input, the weight and the bias, from the output's gradient.
    fn backward(
        &self,
        n: usize,
        c: usize,
        pixels: usize,
        x_data: &[f32],
        w: &[f32],
        grad_data: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let plane = |data, i, ch| channel_plane(data, i, ch, c, pixels);
        // Per channel: d bias = Σ grad, d weight = Σ grad · x̂.
        let sums = map_parallel(c, |ch| {
            let (mut gw, mut gb) = (0f64, 0f64);
            let (mean, inv_std) = (self.mean[ch], self.inv_std[ch]);
            for i in 0..n {
                let (x, grad) = (plane(x_data, i, ch), plane(grad_data, i, ch));
                gw += lane_sum(x, grad, |v, g| g * (v - mean) * inv_std) as f64;
                gb += lane_sum(grad, grad, |g, _| g) as f64;
            }
            (gw as f32, gb as f32)
        });
        let (gw, gb): (Vec<f32>, Vec<f32>) = sums.into_iter().unzip();
        let count = (n * pixels) as f32;
        let mut gx = vec![0f32; x_data.len()];
        let samples = gx
            .chunks_mut(c * pixels)
            .zip(x_data.chunks(c * pixels).zip(grad_data.chunks(c * pixels)));
        for_each_parallel(samples, |(gx, (x, grad))| {
            let planes = gx
                .chunks_mut(pixels)
                .zip(x.chunks(pixels).zip(grad.chunks(pixels)));
            for (ch, (gx, (x, grad))) in planes.enumerate() {
                let (mean, inv_std) = (self.mean[ch], self.inv_std[ch]);
                let scale = w[ch] * inv_std;
                let (mean_grad, mean_grad_xhat) = (gb[ch] / count, gw[ch] / count);
                for (d, (&v, &g)) in gx.iter_mut().zip(x.iter().zip(grad)) {
                    let xhat = (v - mean) * inv_std;
                    *d = scale * (g - mean_grad - xhat * mean_grad_xhat);
                }
            }
        });
        (gx, gw, gb)
    }
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "chimera-batch-norm"
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
        let (_, c, pixels) = self.sizes(x_layout.dims())?;
        let x = elements(x, x_layout, "batch-norm input")?;
        let weight = elements(weight, weight_layout, "batch-norm weight")?;
        let bias = elements(bias, bias_layout, "batch-norm bias")?;
        let mut out = vec![0f32; x.len()];
        let samples = out.chunks_mut(c * pixels).zip(x.chunks(c * pixels));
        for_each_parallel(samples, |(out, x)| {
            for (ch, (out, x)) in out.chunks_mut(pixels).zip(x.chunks(pixels)).enumerate() {
                let scale = self.inv_std[ch] * weight[ch];
                let shift = bias[ch] - self.mean[ch] * scale;
                for (o, v) in out.iter_mut().zip(x) {
                    *o = v * scale + shift;
                }
            }
        });
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, pixels) = self.sizes(x.dims())?;
        let inputs = [
            (x, "batch-norm input"),
            (weight, "batch-norm weight"),
            (grad, "batch-norm gradient"),
        ];
        with_elements3(inputs, |x_data, w, grad_data| {
            let (gx, gw, gb) = self.backward(n, c, pixels, x_data, w, grad_data);
            Ok((
                Some(cpu_tensor(gx, x.dims())?),
                Some(cpu_tensor(gw, &[c])?),
                Some(cpu_tensor(gb, &[c])?),
            ))
        })
    }
}

/// `(x - mean) / sqrt(var + eps) * weight + bias` per channel of x [n, c, ...]; differentiated as
/// training-mode batch norm, so `mean` and `var` must be x's own statistics when training.
pub fn batch_norm(
    x: &Tensor,
    mean: Vec<f32>,
    var: &[f32],
    eps: f64,
    weight: &Tensor,
    bias: &Tensor,
) -> Result<Tensor> {
    let inv_std = var.iter().map(|v| 1.0 / (v + eps as f32).sqrt()).collect();
    let op = BatchNorm { mean, inv_std };
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)
}

/// Max pooling of x [n, c, h, w] over `size` x `size` windows with stride `size` (a partial last
/// row or column of windows dropped, as candle and PyTorch do). The gradient goes to the first
/// largest element of each window, which the forward pass records: the op is made anew for each
/// output (`max_pool`), so the record is that output's, and the backward pass is a scatter.
struct MaxPool {
    size: usize,
    /// Per output element, the index of its window's first largest element in its plane.
    argmax: OnceLock<Vec<u32>>,
}

/// Pools one plane [h, w] into `out` [h / size, w / size], the argmax of each window in `at`.
/// Inlined into calls with a constant `size`, so that the window loops unroll and the row loop
/// vectorises without branches: a per-window loop with a branch per element was a large part of
/// a CNN training step (`perf`), most of it mispredicted comparisons.
#[inline(always)]
fn pool_plane(size: usize, plane: &[f32], w: usize, out: &mut [f32], at: &mut [u32]) {
    let ow = w / size;
    let rows = out.chunks_exact_mut(ow).zip(at.chunks_exact_mut(ow));
    for (oy, (out, at)) in rows.enumerate() {
        for dy in 0..size {
            let start = (oy * size + dy) * w;
            let windows = plane[start..start + ow * size].chunks_exact(size);
            for (ox, (window, (max, best))) in windows.zip(out.iter_mut().zip(&mut *at)).enumerate()
            {
                for (dx, &v) in window.iter().enumerate() {
                    // Window positions in row-major order, a later one taken only if larger.
                    let take = (dy == 0 && dx == 0) || v > *max;
                    *max = if take { v } else { *max };
                    let i = (start + ox * size + dx) as u32;
                    *best = if take { i } else { *best };
                }
            }
        }
    }
}

fn image_dims(dims: &[usize]) -> Result<(usize, usize)> {
    match dims {
        [_, _, h, w] => Ok((*h, *w)),
        _ => Err(error(format!(
            "max pooling takes [n, c, h, w], got {dims:?}"
        ))),
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "chimera-max-pool"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (h, w) = image_dims(layout.dims())?;
        if u32::try_from(h * w).is_err() {
            return Err(error(format!("max pooling of {h}x{w} images: too large")));
        }
        let x = elements(x, layout, "max-pool input")?;
        let out_plane = (h / self.size) * (w / self.size);
        let mut out = vec![0f32; x.len() / (h * w) * out_plane];
        let mut argmax = vec![0u32; out.len()];
        let planes = out
            .chunks_mut(out_plane)
            .zip(argmax.chunks_mut(out_plane))
            .zip(x.chunks(h * w));
        for_each_parallel(planes, |((out, at), plane)| match self.size {
            2 => pool_plane(2, plane, w, out, at),
            3 => pool_plane(3, plane, w, out, at),
            size => pool_plane(size, plane, w, out, at),
        });
        self.argmax
            .set(argmax)
            .map_err(|_| error("a max-pool op ran forward twice".into()))?;
        let d = layout.dims();
        Ok((
            CpuStorage::F32(out),
            Shape::from((d[0], d[1], h / self.size, w / self.size)),
        ))
    }

    fn bwd(&self, x: &Tensor, _out: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (h, w) = image_dims(x.dims())?;
        let out_plane = (h / self.size) * (w / self.size);
        let argmax = self
            .argmax
            .get()
            .ok_or_else(|| error("max-pool gradient before its forward pass".into()))?;
        with_elements(grad, "max-pool gradient", |grad| {
            let mut gx = vec![0f32; x.elem_count()];
            let planes = gx
                .chunks_mut(h * w)
                .zip(grad.chunks(out_plane).zip(argmax.chunks(out_plane)));
            for_each_parallel(planes, |(gx, (grad, at))| {
                for (&g, &i) in grad.iter().zip(at) {
                    gx[i as usize] = g;
                }
            });
            Ok(Some(cpu_tensor(gx, x.dims())?))
        })
    }
}

/// Max pooling of x [n, c, h, w] over `size` x `size` windows, stride `size`.
pub fn max_pool(x: &Tensor, size: usize) -> Result<Tensor> {
    let op = MaxPool {
        size,
        argmax: OnceLock::new(),
    };
    x.contiguous()?.apply_op1(op)
}

#[cfg(test)]
mod tests {
    //! Each op against the same computation in candle's ops, as other devices run it (`model.rs`):
    //! outputs and the gradients of a random weighting of the outputs.
    use super::*;
    use candle_core::{Device, Var};

    fn random(shape: &[usize], seed: u64) -> Var {
        let mut state = seed;
        let values = (0..shape.iter().product())
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect();
        Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn assert_close(ours: &Tensor, theirs: &Tensor, what: &str) {
        let diff = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
        let scale = theirs
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = diff.to_scalar::<f32>().unwrap();
        assert!(
            diff <= 1e-5 * scale.max(1.0),
            "{what}: differs by {diff} (scale {scale})"
        );
    }

    /// Compares `ours` and `theirs` on `inputs`: the outputs, and the gradient of every input.
    fn compare(
        inputs: &[Var],
        ours: impl Fn(&[Tensor]) -> Result<Tensor>,
        theirs: impl Fn(&[Tensor]) -> Result<Tensor>,
    ) {
        let tensors: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
        let (a, b) = (ours(&tensors).unwrap(), theirs(&tensors).unwrap());
        assert_eq!(a.dims(), b.dims());
        assert_close(&a, &b, "output");
        let weighting = random(a.dims(), 99);
        let grads_a = (a * weighting.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let grads_b = (b * weighting.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (i, input) in inputs.iter().enumerate() {
            let (ga, gb) = (grads_a.get(input).unwrap(), grads_b.get(input).unwrap());
            assert_close(ga, gb, &format!("gradient of input {i}"));
        }
    }

    #[test]
    fn convolution_matches_tensor_op_convolution() {
        for (n, c, h, w, c_out, k) in [(3, 2, 7, 5, 4, 3), (2, 3, 6, 6, 2, 5), (1, 1, 4, 9, 3, 1)] {
            let inputs = [
                random(&[n, c, h, w], 1),
                random(&[c_out, c, k, k], 2),
                random(&[c_out], 3),
            ];
            compare(
                &inputs,
                |t| conv(&t[0], &t[1], &t[2]),
                |t| crate::model::conv_same(&t[0], &t[1], &t[2]),
            );
        }
    }

    #[test]
    fn batch_norm_matches_candle_in_training() {
        let inputs = [random(&[5, 3, 4, 2], 4), random(&[3], 5), random(&[3], 6)];
        compare(
            &inputs,
            |t| {
                let (mean, var) = channel_statistics(&t[0])?;
                batch_norm(&t[0], mean, &var, 1e-5, &t[1], &t[2])
            },
            |t| {
                let stats = |v: f32| Tensor::from_vec(vec![v; 3], 3, &Device::Cpu);
                let norm = candle_nn::BatchNorm::new(
                    3,
                    stats(0.0)?,
                    stats(1.0)?,
                    t[1].clone(),
                    t[2].clone(),
                    1e-5,
                )?;
                norm.forward_train(&t[0])
            },
        );
    }

    #[test]
    fn max_pooling_matches_pooling_by_reduction() {
        for (h, w, size) in [(6, 4, 2), (7, 9, 3), (5, 5, 2)] {
            let x = [random(&[2, 3, h, w], 7)];
            compare(
                &x,
                |t| max_pool(&t[0], size),
                |t| crate::model::max_pool_by_reduction(&t[0], size),
            );
        }
    }
}
