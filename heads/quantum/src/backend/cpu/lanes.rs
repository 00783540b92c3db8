//! The vector types the CPU kernel is written over: a group of 2^LANE_BITS consecutive complex
//! amplitudes, stored interleaved (re, im, re, im, ...) exactly as in the statevector.
//!
//! AVX-512 holds 8 complex64 or 4 complex128 amplitudes in one 512-bit register, AVX2 4 or 2 in a
//! 256-bit one; the portable scalar form holds one. The kernel in `kernel.rs` is written once over
//! this trait.

use num_complex::Complex;

/// Float type of a statevector (f32 for complex64, f64 for complex128).
pub trait Real: Copy + Send + Sync + Default + 'static {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// # Safety
/// Implementations using instruction-set extensions may only be called where those are present
/// (checked at run time by the backend before choosing them).
pub unsafe trait Lanes: Copy + Send + Sync + 'static {
    type F: Real;
    type V: Copy;
    /// Lane permutation, prepared once per gate.
    type Perm: Copy + Send + Sync;
    /// log2 of the complex amplitudes per vector.
    const LANE_BITS: usize;

    /// # Safety
    /// `p` points to 2^LANE_BITS readable complex values.
    unsafe fn load(p: *const Complex<Self::F>) -> Self::V;
    /// # Safety
    /// `p` points to 2^LANE_BITS writable complex values.
    unsafe fn store(p: *mut Complex<Self::F>, v: Self::V);
    /// A vector from its floats (re, im interleaved), 2 << LANE_BITS of them.
    fn from_floats(f: &[Self::F]) -> Self::V;
    fn zero() -> Self::V;
    /// a * b + c, lane by lane on the floats.
    fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn add(a: Self::V, b: Self::V) -> Self::V;
    /// Swaps the real and imaginary part of every amplitude.
    fn swap_re_im(x: Self::V) -> Self::V;
    /// `src[i]` is the float index that float `i` of the result takes from `x`.
    fn perm(src: &[usize]) -> Self::Perm;
    fn permute(x: Self::V, p: Self::Perm) -> Self::V;
}

/// One complex amplitude per "vector": the portable fallback, and the reference for the SIMD forms.
#[derive(Clone, Copy)]
pub struct Scalar<F>(std::marker::PhantomData<F>);

// SAFETY: plain arithmetic, no instruction-set requirement.
unsafe impl<F: Real + std::ops::Mul<Output = F> + std::ops::Add<Output = F>> Lanes for Scalar<F> {
    type F = F;
    type V = [F; 2];
    type Perm = bool;
    const LANE_BITS: usize = 0;

    #[inline(always)]
    unsafe fn load(p: *const Complex<F>) -> [F; 2] {
        // SAFETY: the caller guarantees one readable value.
        let c = unsafe { *p };
        [c.re, c.im]
    }
    #[inline(always)]
    unsafe fn store(p: *mut Complex<F>, v: [F; 2]) {
        // SAFETY: the caller guarantees one writable value.
        unsafe { *p = Complex::new(v[0], v[1]) }
    }
    fn from_floats(f: &[F]) -> [F; 2] {
        [f[0], f[1]]
    }
    #[inline(always)]
    fn zero() -> [F; 2] {
        [F::default(); 2]
    }
    #[inline(always)]
    fn fma(a: [F; 2], b: [F; 2], c: [F; 2]) -> [F; 2] {
        [a[0] * b[0] + c[0], a[1] * b[1] + c[1]]
    }
    #[inline(always)]
    fn add(a: [F; 2], b: [F; 2]) -> [F; 2] {
        [a[0] + b[0], a[1] + b[1]]
    }
    #[inline(always)]
    fn swap_re_im(x: [F; 2]) -> [F; 2] {
        [x[1], x[0]]
    }
    fn perm(src: &[usize]) -> bool {
        src[0] == 1
    }
    #[inline(always)]
    fn permute(x: [F; 2], swap: bool) -> [F; 2] {
        if swap { [x[1], x[0]] } else { x }
    }
}

#[cfg(target_arch = "x86_64")]
pub use avx2::{Avx2F32, Avx2F64};
#[cfg(target_arch = "x86_64")]
pub use avx512::{Avx512F32, Avx512F64};

/// The float index that float `i` of a permutation over complex128 takes, `src` being the same
/// permutation over doubles: each double is a pair of 32-bit words, which the word permutes move.
#[cfg(target_arch = "x86_64")]
fn word_of_double(src: &[usize], i: usize) -> i32 {
    (2 * src[i / 2] + i % 2) as i32
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Lanes;
    use num_complex::Complex;
    use std::arch::x86_64::*;

    /// 4 complex64 amplitudes in a __m256.
    #[derive(Clone, Copy)]
    pub struct Avx2F32;
    /// 2 complex128 amplitudes in a __m256d.
    #[derive(Clone, Copy)]
    pub struct Avx2F64;

    /// A float permutation as the 32-bit word indices `vpermps` takes.
    #[derive(Clone, Copy)]
    pub struct WordPerm([i32; 8]);

    // SAFETY: every method uses AVX2 and FMA only; the backend selects this type only after
    // `is_x86_feature_detected!` confirmed both, and calls it from `#[target_feature]` functions.
    unsafe impl Lanes for Avx2F32 {
        type F = f32;
        type V = __m256;
        type Perm = WordPerm;
        const LANE_BITS: usize = 2;

        #[inline(always)]
        unsafe fn load(p: *const Complex<f32>) -> __m256 {
            unsafe { _mm256_loadu_ps(p as *const f32) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut Complex<f32>, v: __m256) {
            unsafe { _mm256_storeu_ps(p as *mut f32, v) }
        }
        fn from_floats(f: &[f32]) -> __m256 {
            // SAFETY: `f` holds 8 floats; an unaligned load needs only AVX, present with AVX2.
            unsafe { _mm256_loadu_ps(f[..8].as_ptr()) }
        }
        #[inline(always)]
        fn zero() -> __m256 {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn add(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        fn swap_re_im(x: __m256) -> __m256 {
            unsafe { _mm256_permute_ps::<0b10_11_00_01>(x) }
        }
        fn perm(src: &[usize]) -> WordPerm {
            WordPerm(std::array::from_fn(|i| src[i] as i32))
        }
        #[inline(always)]
        fn permute(x: __m256, p: WordPerm) -> __m256 {
            unsafe {
                _mm256_permutevar8x32_ps(x, _mm256_loadu_si256(p.0.as_ptr() as *const __m256i))
            }
        }
    }

    // SAFETY: as for Avx2F32.
    unsafe impl Lanes for Avx2F64 {
        type F = f64;
        type V = __m256d;
        type Perm = WordPerm;
        const LANE_BITS: usize = 1;

        #[inline(always)]
        unsafe fn load(p: *const Complex<f64>) -> __m256d {
            unsafe { _mm256_loadu_pd(p as *const f64) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut Complex<f64>, v: __m256d) {
            unsafe { _mm256_storeu_pd(p as *mut f64, v) }
        }
        fn from_floats(f: &[f64]) -> __m256d {
            // SAFETY: `f` holds 4 doubles.
            unsafe { _mm256_loadu_pd(f[..4].as_ptr()) }
        }
        #[inline(always)]
        fn zero() -> __m256d {
            unsafe { _mm256_setzero_pd() }
        }
        #[inline(always)]
        fn fma(a: __m256d, b: __m256d, c: __m256d) -> __m256d {
            unsafe { _mm256_fmadd_pd(a, b, c) }
        }
        #[inline(always)]
        fn add(a: __m256d, b: __m256d) -> __m256d {
            unsafe { _mm256_add_pd(a, b) }
        }
        #[inline(always)]
        fn swap_re_im(x: __m256d) -> __m256d {
            unsafe { _mm256_permute_pd::<0b0101>(x) }
        }
        /// A double permutation is a permutation of 32-bit word pairs, which `vpermps` does in one step.
        fn perm(src: &[usize]) -> WordPerm {
            WordPerm(std::array::from_fn(|i| super::word_of_double(src, i)))
        }
        #[inline(always)]
        fn permute(x: __m256d, p: WordPerm) -> __m256d {
            unsafe {
                let idx = _mm256_loadu_si256(p.0.as_ptr() as *const __m256i);
                _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(x), idx))
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Lanes;
    use num_complex::Complex;
    use std::arch::x86_64::*;

    /// 8 complex64 amplitudes in a __m512.
    #[derive(Clone, Copy)]
    pub struct Avx512F32;
    /// 4 complex128 amplitudes in a __m512d.
    #[derive(Clone, Copy)]
    pub struct Avx512F64;

    /// A float permutation as the 32-bit word indices `vpermps` takes (16 of them in 512 bits).
    #[derive(Clone, Copy)]
    pub struct WordPerm([i32; 16]);

    impl WordPerm {
        #[inline(always)]
        fn indices(self) -> __m512i {
            // SAFETY: 16 readable words; AVX-512F is present (the trait's contract).
            unsafe { _mm512_loadu_si512(self.0.as_ptr() as *const __m512i) }
        }
    }

    // SAFETY: every method uses AVX-512F only; the backend selects this type only after
    // `is_x86_feature_detected!` confirmed it, and calls it from `#[target_feature]` functions.
    unsafe impl Lanes for Avx512F32 {
        type F = f32;
        type V = __m512;
        type Perm = WordPerm;
        const LANE_BITS: usize = 3;

        #[inline(always)]
        unsafe fn load(p: *const Complex<f32>) -> __m512 {
            unsafe { _mm512_loadu_ps(p as *const f32) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut Complex<f32>, v: __m512) {
            unsafe { _mm512_storeu_ps(p as *mut f32, v) }
        }
        fn from_floats(f: &[f32]) -> __m512 {
            // SAFETY: `f` holds 16 floats.
            unsafe { _mm512_loadu_ps(f[..16].as_ptr()) }
        }
        #[inline(always)]
        fn zero() -> __m512 {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn add(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        fn swap_re_im(x: __m512) -> __m512 {
            unsafe { _mm512_permute_ps::<0b10_11_00_01>(x) }
        }
        fn perm(src: &[usize]) -> WordPerm {
            WordPerm(std::array::from_fn(|i| src[i] as i32))
        }
        #[inline(always)]
        fn permute(x: __m512, p: WordPerm) -> __m512 {
            unsafe { _mm512_permutexvar_ps(p.indices(), x) }
        }
    }

    // SAFETY: as for Avx512F32.
    unsafe impl Lanes for Avx512F64 {
        type F = f64;
        type V = __m512d;
        type Perm = WordPerm;
        const LANE_BITS: usize = 2;

        #[inline(always)]
        unsafe fn load(p: *const Complex<f64>) -> __m512d {
            unsafe { _mm512_loadu_pd(p as *const f64) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut Complex<f64>, v: __m512d) {
            unsafe { _mm512_storeu_pd(p as *mut f64, v) }
        }
        fn from_floats(f: &[f64]) -> __m512d {
            // SAFETY: `f` holds 8 doubles.
            unsafe { _mm512_loadu_pd(f[..8].as_ptr()) }
        }
        #[inline(always)]
        fn zero() -> __m512d {
            unsafe { _mm512_setzero_pd() }
        }
        #[inline(always)]
        fn fma(a: __m512d, b: __m512d, c: __m512d) -> __m512d {
            unsafe { _mm512_fmadd_pd(a, b, c) }
        }
        #[inline(always)]
        fn add(a: __m512d, b: __m512d) -> __m512d {
            unsafe { _mm512_add_pd(a, b) }
        }
        #[inline(always)]
        fn swap_re_im(x: __m512d) -> __m512d {
            unsafe { _mm512_permute_pd::<0b0101_0101>(x) }
        }
        fn perm(src: &[usize]) -> WordPerm {
            WordPerm(std::array::from_fn(|i| super::word_of_double(src, i)))
        }
        #[inline(always)]
        fn permute(x: __m512d, p: WordPerm) -> __m512d {
            unsafe { _mm512_castps_pd(_mm512_permutexvar_ps(p.indices(), _mm512_castpd_ps(x))) }
        }
    }
}
