// CHIMERA batched-layer kernels: one parameterised circuit over a batch of samples, for the
// adjoint method (heads/quantum/src/adjoint.rs has the mathematics, backend/cpu/layer.rs the CPU version). Compiled
// after statevector.cu, whose helpers they use; double precision only.
//
// The batch is `samples` states of 2^n amplitudes, one after another: sample b's amplitude i is
// element b * 2^n + i, an interleaved double2. Gates without parameters act alike on every sample
// and run as statevector.cu's kernels over the whole batch (its qubits stay below n). A rotation
// exp(-i theta A / 2) takes a sample's own angle from `angles[b * angle_stride]`: stride 0 for a
// shared weight, the number of inputs for an input feature (`angles` then starts at the feature).
// Reductions leave one partial sum per block; the host adds a sample's partial sums in order, so
// that a run's results do not depend on the order blocks finish in.

// Index of the amplitude with `qubit` 0 in pair p (over the whole batch: qubit < n).
__device__ __forceinline__ u64 pair_base(u64 p, int qubit) {
    return ((p >> qubit) << (qubit + 1)) | (p & ((1ull << qubit) - 1));
}

// exp(-i theta A / 2) for axis A = 0 (X), 1 (Y), 2 (Z), row-major.
struct Rotation {
    double2 m00, m01, m10, m11;
};

__device__ __forceinline__ Rotation rotation(int axis, double theta) {
    double s, c;
    sincos(theta / 2, &s, &c);
    Rotation r;
    if (axis == 0) {
        r.m00 = make_double2(c, 0); r.m01 = make_double2(0, -s);
        r.m10 = make_double2(0, -s); r.m11 = make_double2(c, 0);
    } else if (axis == 1) {
        r.m00 = make_double2(c, 0); r.m01 = make_double2(-s, 0);
        r.m10 = make_double2(s, 0); r.m11 = make_double2(c, 0);
    } else {
        r.m00 = make_double2(c, -s); r.m01 = make_double2(0, 0);
        r.m10 = make_double2(0, 0); r.m11 = make_double2(c, s);
    }
    return r;
}

__device__ __forceinline__ double2 mul(double2 a, double2 b) {
    return make_double2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

__device__ __forceinline__ double2 add(double2 a, double2 b) { return make_double2(a.x + b.x, a.y + b.y); }

__device__ __forceinline__ void rotate(const Rotation& r, double2* a0, double2* a1) {
    const double2 v0 = *a0, v1 = *a1;
    *a0 = add(mul(r.m00, v0), mul(r.m01, v1));
    *a1 = add(mul(r.m10, v0), mul(r.m11, v1));
}

// Every sample in |0...0>: one thread per amplitude.
extern "C" __global__ void layer_zero(double2* amps, u64 total, int n) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    amps[i] = make_double2((i & ((1ull << n) - 1)) == 0 ? 1.0 : 0.0, 0.0);
}

// A rotation on `qubit` of each sample by sign * its angle: one thread per amplitude pair, `pairs`
// = samples * 2^(n-1).
extern "C" __global__ void layer_rotate(double2* amps, u64 pairs, int n, int qubit, int axis, const double* angles,
                                        u64 angle_stride, double sign) {
    const u64 p = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= pairs) return;
    const Rotation r = rotation(axis, sign * angles[(p >> (n - 1)) * angle_stride]);
    const u64 i0 = pair_base(p, qubit);
    rotate(r, &amps[i0], &amps[i0 | (1ull << qubit)]);
}

// The backward sweep's step over a rotation, phi being the state just after it: per block,
// Im<lambda|A|phi> over its sample's pairs (that sample's gradient share for the angle), then the
// rotation undone on phi and lambda. `blocks_per_sample` blocks stride over each sample.
extern "C" __global__ void layer_undo_rotation(double2* phi, double2* lambda, int n, int blocks_per_sample, int qubit,
                                               int axis, const double* angles, u64 angle_stride, double* partial) {
    const u64 b = blockIdx.x / blocks_per_sample, pairs = 1ull << (n - 1);
    const u64 stride = (u64)blocks_per_sample * blockDim.x;
    const Rotation undo = rotation(axis, -angles[b * angle_stride]);
    double overlap = 0;
    for (u64 p = (blockIdx.x % blocks_per_sample) * blockDim.x + threadIdx.x; p < pairs; p += stride) {
        const u64 i0 = pair_base(b * pairs + p, qubit), i1 = i0 | (1ull << qubit);
        const double2 p0 = phi[i0], p1 = phi[i1], l0 = lambda[i0], l1 = lambda[i1];
        // (A phi) on the pair: X swaps, Z negates the second, Y does both times i.
        double2 a0, a1;
        if (axis == 0) {
            a0 = p1; a1 = p0;
        } else if (axis == 1) {
            a0 = make_double2(p1.y, -p1.x); a1 = make_double2(-p0.y, p0.x);
        } else {
            a0 = p0; a1 = make_double2(-p1.x, -p1.y);
        }
        // Im(conj(l) a)
        overlap += l0.x * a0.y - l0.y * a0.x + l1.x * a1.y - l1.y * a1.x;
        rotate(undo, &phi[i0], &phi[i1]);
        rotate(undo, &lambda[i0], &lambda[i1]);
    }
    overlap = block_sum(overlap);
    if (threadIdx.x == 0) partial[blockIdx.x] = overlap;
}

// Diagonal observables per pass.
#define LAYER_Z_TERMS 8

// Per block: sum over its sample's amplitudes of |a_i|^2 (-1)^popcount(i & masks[t]) for each of
// LAYER_Z_TERMS masks (a Z product each; 0 where unused), into partial[block * LAYER_Z_TERMS + t].
extern "C" __global__ void layer_z_terms(const double2* amps, int n, int blocks_per_sample, const u64* masks,
                                         double* partial) {
    __shared__ u64 m[LAYER_Z_TERMS];
    if (threadIdx.x < LAYER_Z_TERMS) m[threadIdx.x] = masks[threadIdx.x];
    __syncthreads();
    const u64 dim = 1ull << n, stride = (u64)blocks_per_sample * blockDim.x;
    amps += dim * (blockIdx.x / blocks_per_sample);
    double sums[LAYER_Z_TERMS] = {0};
    for (u64 i = (blockIdx.x % blocks_per_sample) * blockDim.x + threadIdx.x; i < dim; i += stride) {
        const double2 a = amps[i];
        const double p = a.x * a.x + a.y * a.y;
#pragma unroll
        for (int t = 0; t < LAYER_Z_TERMS; ++t) sums[t] += (__popcll(i & m[t]) & 1) ? -p : p;
    }
#pragma unroll
    for (int t = 0; t < LAYER_Z_TERMS; ++t) {
        const double s = block_sum(sums[t]);
        if (threadIdx.x == 0) partial[blockIdx.x * LAYER_Z_TERMS + t] = s;
    }
}

// Per block: <phi|P|phi> without the factor i^y_count, as (re, im), for a Pauli string with X or
// Y factors (`pauli` of statevector.cu, per sample).
extern "C" __global__ void layer_pauli(const double* amps, int n, int blocks_per_sample, u64 flip, u64 sign,
                                       double* partial) {
    pauli<double>(amps, 1ull << n, blocks_per_sample, flip, sign, partial);
}

// out[i ^ flip] += c_b (phase_re + i phase_im) (-1)^popcount(i & sign) state[i] in each sample b,
// c_b = coefficient * weights[b * weight_stride]: one Pauli term of lambda = sum_k g_k O_k phi, g_k
// the upstream gradient of observable k. One thread per amplitude; each writes its own target.
extern "C" __global__ void layer_add_pauli(double2* out, const double2* state, u64 total, int n, u64 flip, u64 sign,
                                           double phase_re, double phase_im, const double* weights,
                                           u64 weight_stride, double coefficient) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const u64 local = i & ((1ull << n) - 1);
    double c = coefficient * weights[(i >> n) * weight_stride];
    if (__popcll(local & sign) & 1) c = -c;
    const double2 term = mul(make_double2(c * phase_re, c * phase_im), state[i]);
    out[i ^ flip] = add(out[i ^ flip], term);
}
