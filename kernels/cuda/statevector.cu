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

// Spreads the low k bits of `v` over the bit positions `targets[0..k)`.
__device__ __forceinline__ u64 spread(int v, const int* targets, int k) {
    u64 i = 0;
    for (int j = 0; j < k; ++j) i |= (u64)((v >> j) & 1) << targets[j];
    return i;
}

// An interleaved complex number of type R as one 8- or 16-byte access. Matrices arrive as such
// pairs too: the host starts each gate's entries at an even index of its upload.
template <typename R> struct Pair;
template <> struct Pair<float> { typedef float2 T; };
template <> struct Pair<double> { typedef double2 T; };

// Sum over c < D of m[first + c * stride] * x[c], in complex arithmetic: one row of a matrix
// times a group of amplitudes.
template <int D, typename V>
__device__ __forceinline__ V row_times(const V* m, int first, int stride, const V* x) {
    V y;
    y.x = 0;
    y.y = 0;
#pragma unroll
    for (int c = 0; c < D; ++c) {
        const V e = m[first + c * stride];
        y.x += e.x * x[c].x - e.y * x[c].y;
        y.y += e.x * x[c].y + e.y * x[c].x;
    }
    return y;
}

// Gates on at most this many qubits, controls included.
constexpr int MAX_GATE_QUBITS = 5;

// What the dense and permutation kernels share: where a thread's group of amplitudes lies. A gate
// with controls touches only the amplitudes whose control qubits are all 1; `layout` holds the K
// targets (ascending), then the `width` qubits of targets and controls together (ascending), and
// `controls` is the mask of the control qubits. One group per g < 2^(n - width).
template <int K>
struct Groups {
    int targets[K];
    int positions[MAX_GATE_QUBITS];
    int width;

    __device__ void load(const int* layout, int width_g) {
        if (threadIdx.x < K) targets[threadIdx.x] = layout[threadIdx.x];
        if (threadIdx.x < width_g) positions[threadIdx.x] = layout[K + threadIdx.x];
        if (threadIdx.x == 0) width = width_g;
    }
    // This thread's group's first amplitude, in `base`; false for a thread past the last group.
    __device__ bool thread_base(u64 groups, u64 controls, u64* base) const {
        const u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x;
        if (g >= groups) return false;
        *base = insert_zeros(g, positions, width) | controls;
        return true;
    }
};

// A dense K-qubit gate: one thread per group of 2^K amplitudes, the matrix (row-major, bit j of a
// row or column index is targets[j]) in shared memory, the group's amplitudes in registers.
template <typename R, int K>
__device__ void dense(R* amps, u64 groups, const int* layout, int width, u64 controls, const R* matrix_g) {
    typedef typename Pair<R>::T V;
    constexpr int D = 1 << K;
    __shared__ V m[D * D];
    __shared__ Groups<K> at;
    for (int i = threadIdx.x; i < D * D; i += blockDim.x) m[i] = reinterpret_cast<const V*>(matrix_g)[i];
    at.load(layout, width);
    __syncthreads();
    u64 base;
    if (!at.thread_base(groups, controls, &base)) return;
    V* a = reinterpret_cast<V*>(amps);
    u64 index[D];
    V x[D];
#pragma unroll
    for (int c = 0; c < D; ++c) {
        index[c] = base | spread(c, at.targets, K);
        x[c] = a[index[c]];
    }
#pragma unroll
    for (int r = 0; r < D; ++r) a[index[r]] = row_times<D>(m, r * D, 1, x);
}

// A K-qubit gate that sends each basis state to one other times a phase (X, SWAP, CX, CCX and
// their products): amplitude r of a group becomes phases[r] times amplitude sources[r], no matrix
// product. `layout` as in Groups, then the 2^K sources.
template <typename R, int K>
__device__ void permute(R* amps, u64 groups, const int* layout, int width, u64 controls, const R* phases_g) {
    typedef typename Pair<R>::T V;
    constexpr int D = 1 << K;
    __shared__ V phases[D];
    __shared__ int sources[D];
    __shared__ Groups<K> at;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        phases[i] = reinterpret_cast<const V*>(phases_g)[i];
        sources[i] = layout[K + width + i];
    }
    at.load(layout, width);
    __syncthreads();
    u64 base;
    if (!at.thread_base(groups, controls, &base)) return;
    V* a = reinterpret_cast<V*>(amps);
    V x[D];
#pragma unroll
    for (int r = 0; r < D; ++r) x[r] = a[base | spread(sources[r], at.targets, K)];
#pragma unroll
    for (int r = 0; r < D; ++r) {
        const V p = phases[r];
        V y;
        y.x = p.x * x[r].x - p.y * x[r].y;
        y.y = p.x * x[r].y + p.y * x[r].x;
        a[base | spread(r, at.targets, K)] = y;
    }
}

// A dense K-qubit gate whose lowest L targets are below 5, that is, bits of the lane index, for
// gates on qubits 0, 1, 2 and more. In `dense` a thread's 2^K amplitudes then lie close together
// and a warp's loads are strided; here
// each warp holds 32 consecutive amplitudes for each of the 2^(K-L) values of the high targets, so
// every load and store is one coalesced row, and the lanes swap the low-target amplitudes by
// shuffles. The matrix is kept column-major so that the lanes' different rows read different banks.
// One warp per 32 * 2^(K-L) amplitudes.
template <typename R, int K, int L>
__device__ void dense_lanes(R* amps, u64 warps, const int* targets_g, const R* matrix_g) {
    typedef typename Pair<R>::T V;
    constexpr int D = 1 << K, H = K - L, DH = 1 << H, DL = 1 << L;
    __shared__ V columns[D * D];
    __shared__ int targets[K];
    for (int i = threadIdx.x; i < D * D; i += blockDim.x) columns[(i % D) * D + i / D] = reinterpret_cast<const V*>(matrix_g)[i];
    if (threadIdx.x < K) targets[threadIdx.x] = targets_g[threadIdx.x];
    __syncthreads();
    const u64 w = ((u64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (w >= warps) return;  // whole warps: blockDim.x is a multiple of 32
    const int lane = threadIdx.x & 31;
    const u64 base = insert_zeros(w << 5, targets + L, H) | lane;
    int low_mask = 0, row_low = 0;
#pragma unroll
    for (int j = 0; j < L; ++j) {
        low_mask |= 1 << targets[j];
        row_low |= ((lane >> targets[j]) & 1) << j;
    }
    V* a = reinterpret_cast<V*>(amps);
    V x[DH];
#pragma unroll
    for (int h = 0; h < DH; ++h) x[h] = a[base | spread(h, targets + L, H)];
    // xs[c]: column c's amplitude, from the lane whose low-target bits are c's low bits.
    V xs[D];
#pragma unroll
    for (int c = 0; c < DL; ++c) {
        const int partner = (lane & ~low_mask) | (int)spread(c, targets, L);
#pragma unroll
        for (int h = 0; h < DH; ++h) {
            xs[c + (h << L)].x = __shfl_sync(0xffffffffu, x[h].x, partner);
            xs[c + (h << L)].y = __shfl_sync(0xffffffffu, x[h].y, partner);
        }
    }
#pragma unroll
    for (int h = 0; h < DH; ++h)
        a[base | spread(h, targets + L, H)] = row_times<D>(columns, row_low | (h << L), D, xs);
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

// Per block: the sum over i of conj(a[i ^ flip]) * a[i] * (-1)^popcount(i & sign), as (re, im). The
// state may be a batch of states of n amplitudes each, one after another, `blocks_per_sample`
// blocks striding over each (for one state, all of them).
template <typename R>
__device__ void pauli(const R* amps, u64 n, int blocks_per_sample, u64 flip, u64 sign, double* partial) {
    amps += 2 * n * (blockIdx.x / blocks_per_sample);
    const u64 stride = (u64)blocks_per_sample * blockDim.x;
    double sr = 0, si = 0;
    for (u64 i = (blockIdx.x % blocks_per_sample) * blockDim.x + threadIdx.x; i < n; i += stride) {
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
    extern "C" __global__ void dense##K##_##S(R* a, u64 g, const int* t, int w, u64 c, const R* m) { dense<R, K>(a, g, t, w, c, m); } \
    extern "C" __global__ void permute##K##_##S(R* a, u64 g, const int* t, int w, u64 c, const R* p) { permute<R, K>(a, g, t, w, c, p); }
#define LANES(K, L, R, S)                                                                            \
    extern "C" __global__ void dense##K##_lanes##L##_##S(R* a, u64 w, const int* t, const R* m) { dense_lanes<R, K, L>(a, w, t, m); }
#define ALL(R, S)                                                                                    \
    DENSE(1, R, S) DENSE(2, R, S) DENSE(3, R, S) DENSE(4, R, S) DENSE(5, R, S)                     \
    LANES(3, 3, R, S) LANES(4, 3, R, S) LANES(4, 4, R, S) LANES(5, 3, R, S) LANES(5, 4, R, S)      \
    LANES(5, 5, R, S)                                                                              \
    extern "C" __global__ void diagonal_##S(R* a, u64 n, const int* t, int k, const R* d) { diagonal<R>(a, n, t, k, d); } \
    extern "C" __global__ void prob_one_##S(const R* a, u64 n, int q, double* p) { prob_one<R>(a, n, q, p); } \
    extern "C" __global__ void collapse_##S(R* a, u64 n, int q, int o, double s) { collapse<R>(a, n, q, o, s); } \
    extern "C" __global__ void chunk_norms_##S(const R* a, u64 c, double* o) { chunk_norms<R>(a, c, o); } \
    extern "C" __global__ void pauli_##S(const R* a, u64 n, u64 f, u64 s, double* p) { pauli<R>(a, n, gridDim.x, f, s, p); }

ALL(float, f32)
ALL(double, f64)
