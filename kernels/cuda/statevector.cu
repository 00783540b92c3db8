// CHIMERA statevector kernels. Amplitudes are interleaved complex numbers (re, im) of type R
// (float for complex64, double for complex128); index bit q of an amplitude is qubit q.
// Compiled at run time by NVRTC; every kernel comes as NAME_f32 and NAME_f64.

typedef unsigned long long u64;

// Inserts a zero bit at each of the ascending positions `targets[0..k)` of `g`: the base index of
// the g-th group of amplitudes a k-qubit gate mixes.
__device__ __forceinline__ u64 insert_zeros(u64 g, const int* targets, int k) {
    for (int j = 0; j < k; ++j) {
        const int p = targets[j];
        g = ((g >> p) << (p + 1)) | (g & ((1ull << p) - 1));
    }
    return g;
}

// A dense K-qubit gate: one thread per group of 2^K amplitudes, the matrix (row-major, bit j of a
// row or column index is targets[j]) in shared memory, the group's amplitudes in registers.
template <typename R, int K>
__device__ void dense(R* amps, u64 groups, const int* targets_g, const R* matrix_g) {
    constexpr int D = 1 << K;
    __shared__ R m[2 * D * D];
    __shared__ int targets[K];
    for (int i = threadIdx.x; i < 2 * D * D; i += blockDim.x) m[i] = matrix_g[i];
    if (threadIdx.x < K) targets[threadIdx.x] = targets_g[threadIdx.x];
    __syncthreads();
    const u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= groups) return;
    const u64 base = insert_zeros(g, targets, K);
    u64 index[D];
    R xr[D], xi[D];
#pragma unroll
    for (int c = 0; c < D; ++c) {
        u64 i = base;
#pragma unroll
        for (int j = 0; j < K; ++j) i |= (u64)((c >> j) & 1) << targets[j];
        index[c] = i;
        xr[c] = amps[2 * i];
        xi[c] = amps[2 * i + 1];
    }
#pragma unroll
    for (int r = 0; r < D; ++r) {
        R yr = 0, yi = 0;
#pragma unroll
        for (int c = 0; c < D; ++c) {
            const R mr = m[2 * (r * D + c)], mi = m[2 * (r * D + c) + 1];
            yr += mr * xr[c] - mi * xi[c];
            yi += mr * xi[c] + mi * xr[c];
        }
        amps[2 * index[r]] = yr;
        amps[2 * index[r] + 1] = yi;
    }
}

// A diagonal gate on k <= 10 qubits: one thread per amplitude, the 2^k entries in shared memory.
template <typename R>
__device__ void diagonal(R* amps, u64 n, const int* targets_g, int k, const R* diag_g) {
    __shared__ R d[2 << 10];
    __shared__ int targets[10];
    for (int i = threadIdx.x; i < (2 << k); i += blockDim.x) d[i] = diag_g[i];
    if (threadIdx.x < k) targets[threadIdx.x] = targets_g[threadIdx.x];
    __syncthreads();
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int e = 0;
    for (int j = 0; j < k; ++j) e |= (int)((i >> targets[j]) & 1) << j;
    const R ar = amps[2 * i], ai = amps[2 * i + 1], dr = d[2 * e], di = d[2 * e + 1];
    amps[2 * i] = dr * ar - di * ai;
    amps[2 * i + 1] = dr * ai + di * ar;
}

// Sum of v over the block, into thread 0's return value. blockDim.x is a multiple of 32, <= 1024.
__device__ double block_sum(double v) {
    __shared__ double warp_sums[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = v;
    __syncthreads();
    v = threadIdx.x < (blockDim.x >> 5) ? warp_sums[threadIdx.x] : 0.0;
    if (threadIdx.x < 32)
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    __syncthreads();
    return v;
}

// Per block: the probability mass where `qubit` is 1 (grid-stride over the state).
template <typename R>
__device__ void prob_one(const R* amps, u64 n, int qubit, double* partial) {
    double s = 0;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        if ((i >> qubit) & 1) s += (double)amps[2 * i] * amps[2 * i] + (double)amps[2 * i + 1] * amps[2 * i + 1];
    s = block_sum(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Keeps the amplitudes whose `qubit` is `outcome`, scaled; zeroes the others.
template <typename R>
__device__ void collapse(R* amps, u64 n, int qubit, int outcome, double scale) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const R f = ((int)((i >> qubit) & 1) == outcome) ? (R)scale : (R)0;
    amps[2 * i] *= f;
    amps[2 * i + 1] *= f;
}

// One block per chunk of `chunk` amplitudes: its probability mass, for sampling.
template <typename R>
__device__ void chunk_norms(const R* amps, u64 chunk, double* out) {
    const u64 start = (u64)blockIdx.x * chunk;
    double s = 0;
    for (u64 i = start + threadIdx.x; i < start + chunk; i += blockDim.x)
        s += (double)amps[2 * i] * amps[2 * i] + (double)amps[2 * i + 1] * amps[2 * i + 1];
    s = block_sum(s);
    if (threadIdx.x == 0) out[blockIdx.x] = s;
}

// Per block: the sum over i of conj(a[i ^ flip]) * a[i] * (-1)^popcount(i & sign), as (re, im).
template <typename R>
__device__ void pauli(const R* amps, u64 n, u64 flip, u64 sign, double* partial) {
    double sr = 0, si = 0;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        const u64 j = i ^ flip;
        const double br = amps[2 * j], bi = -(double)amps[2 * j + 1], ar = amps[2 * i], ai = amps[2 * i + 1];
        const double s = (__popcll(i & sign) & 1) ? -1.0 : 1.0;
        sr += s * (br * ar - bi * ai);
        si += s * (br * ai + bi * ar);
    }
    sr = block_sum(sr);
    si = block_sum(si);
    if (threadIdx.x == 0) {
        partial[2 * blockIdx.x] = sr;
        partial[2 * blockIdx.x + 1] = si;
    }
}

#define DENSE(K, R, S)                                                                               \
    extern "C" __global__ void dense##K##_##S(R* a, u64 g, const int* t, const R* m) { dense<R, K>(a, g, t, m); }
#define ALL(R, S)                                                                                    \
    DENSE(1, R, S) DENSE(2, R, S) DENSE(3, R, S) DENSE(4, R, S) DENSE(5, R, S)                     \
    extern "C" __global__ void diagonal_##S(R* a, u64 n, const int* t, int k, const R* d) { diagonal<R>(a, n, t, k, d); } \
    extern "C" __global__ void prob_one_##S(const R* a, u64 n, int q, double* p) { prob_one<R>(a, n, q, p); } \
    extern "C" __global__ void collapse_##S(R* a, u64 n, int q, int o, double s) { collapse<R>(a, n, q, o, s); } \
    extern "C" __global__ void chunk_norms_##S(const R* a, u64 c, double* o) { chunk_norms<R>(a, c, o); } \
    extern "C" __global__ void pauli_##S(const R* a, u64 n, u64 f, u64 s, double* p) { pauli<R>(a, n, f, s, p); }

ALL(float, f32)
ALL(double, f64)
