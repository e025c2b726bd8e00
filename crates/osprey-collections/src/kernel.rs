//! Float32 dot products and squared distances, vectorized for the CPU found at
//! run time (pulp picks AVX2 + FMA, NEON, or plain code).
//!
//! Four independent float32 sums keep the units busy: a single chain (as
//! usearch's NumKong kernels sum, widened to float64) makes each
//! 384-dimensional comparison wait on its own additions. The graph compares
//! float16 vectors with these too, a converted chunk at a time. Exact search and the
//! backlog's scan use the same functions, so a point scores the same wherever
//! it is compared.

use std::marker::PhantomData;
use std::sync::LazyLock;

use pulp::{Arch, Simd, WithSimd};

static ARCH: LazyLock<Arch> = LazyLock::new(Arch::new);

/// Cache lines of a vector asked for ahead of its comparison. The hardware
/// streams the rest once the first lines arrive; measured on 100k × 384
/// float32 (BENCHMARKS.md), 4 lines took a walk from 0.25 to 0.21 ms, and the
/// whole vector (24) did no better.
const PREFETCH_LINES: usize = 4;

/// Asks for the first lines of `v` to be brought into the cache, so that the
/// loads of several neighbours' vectors overlap instead of waiting in turn.
// The crate's one use of `unsafe`: the intrinsic is `unsafe` only because it
// takes a raw pointer.
#[allow(unsafe_code)]
#[inline(always)]
pub(crate) fn prefetch<T>(v: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let lines = PREFETCH_LINES.min(std::mem::size_of_val(v).div_ceil(64));
        let p = v.as_ptr().cast::<i8>();
        for i in 0..lines {
            // SAFETY: a prefetch is a hint: it never faults and changes no
            // memory, and every address is inside the live slice `v`.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    p.add(i * 64),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// `a · b` over the common length.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    ARCH.dispatch(Sum::<_, Product>::new(a, b))
}

/// `a · b` of two float16 vectors (their bits) over the common length.
pub(crate) fn dot_f16(a: &[u16], b: &[u16]) -> f32 {
    ARCH.dispatch(Sum::<_, Product>::new(a, b))
}

/// `|a - b|²` of two float16 vectors (their bits) over the common length.
pub(crate) fn l2_squared_f16(a: &[u16], b: &[u16]) -> f32 {
    ARCH.dispatch(Sum::<_, SquaredDifference>::new(a, b))
}

/// `|a - b|²` over the common length.
pub(crate) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    ARCH.dispatch(Sum::<_, SquaredDifference>::new(a, b))
}

/// Independent sums per lane group: enough to hide the latency of a fused
/// multiply-add behind its throughput.
const SUMS: usize = 4;

/// What one pair of components adds to the sum.
trait Term {
    fn lanes<S: Simd>(simd: S, x: S::f32s, y: S::f32s, acc: S::f32s) -> S::f32s;
    fn one(x: f32, y: f32) -> f32;
}

struct Product;

impl Term for Product {
    #[inline(always)]
    fn lanes<S: Simd>(simd: S, x: S::f32s, y: S::f32s, acc: S::f32s) -> S::f32s {
        simd.mul_add_e_f32s(x, y, acc)
    }
    #[inline(always)]
    fn one(x: f32, y: f32) -> f32 {
        x * y
    }
}

struct SquaredDifference;

impl Term for SquaredDifference {
    #[inline(always)]
    fn lanes<S: Simd>(simd: S, x: S::f32s, y: S::f32s, acc: S::f32s) -> S::f32s {
        let d = simd.sub_f32s(x, y);
        simd.mul_add_e_f32s(d, d, acc)
    }
    #[inline(always)]
    fn one(x: f32, y: f32) -> f32 {
        (x - y) * (x - y)
    }
}

/// The sum of `T` over the pairs of components of two vectors.
/// float32 components, or float16 ones as their bits.
struct Sum<'a, X, T>(&'a [X], &'a [X], PhantomData<T>);

impl<'a, X, T> Sum<'a, X, T> {
    fn new(a: &'a [X], b: &'a [X]) -> Self {
        let n = a.len().min(b.len());
        Self(&a[..n], &b[..n], PhantomData)
    }
}

impl<T: Term> WithSimd for Sum<'_, f32, T> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        let (a, a_tail) = S::as_simd_f32s(self.0);
        let (b, b_tail) = S::as_simd_f32s(self.1);
        let mut acc = [simd.splat_f32s(0.0); SUMS];
        let (a4, a_rest) = a.as_chunks::<SUMS>();
        let (b4, b_rest) = b.as_chunks::<SUMS>();
        for (x, y) in a4.iter().zip(b4) {
            for i in 0..SUMS {
                acc[i] = T::lanes(simd, x[i], y[i], acc[i]);
            }
        }
        for (x, y) in a_rest.iter().zip(b_rest) {
            acc[0] = T::lanes(simd, *x, *y, acc[0]);
        }
        let folded = simd.add_f32s(simd.add_f32s(acc[0], acc[1]), simd.add_f32s(acc[2], acc[3]));
        let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| T::one(*x, *y)).sum();
        simd.reduce_sum_f32s(folded) + tail
    }
}

/// Components of float16 vectors widened per step: one 384-dimensional vector
/// in a step, 4 KiB of stack for the two.
const HALF_CHUNK: usize = 512;

/// float16 bits to float32 with one shift and one multiplication, exact for
/// normal and subnormal values (the shifted bits are the value times 2⁻¹¹²).
/// Infinities and NaNs, which stored vectors never hold, come out large and
/// finite. Written as plain arithmetic so that it vectorizes.
#[inline(always)]
fn widen(h: u16) -> f32 {
    let h = u32::from(h);
    let magnitude = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits(0x7780_0000);
    f32::from_bits(magnitude.to_bits() | ((h & 0x8000) << 16))
}

/// The sum of `T` over two float16 vectors: widened a chunk at a time, in the
/// same vectorized context as the sum.
impl<T: Term> WithSimd for Sum<'_, u16, T> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        let mut x = [0f32; HALF_CHUNK];
        let mut y = [0f32; HALF_CHUNK];
        let mut total = 0.0;
        for (ca, cb) in self.0.chunks(HALF_CHUNK).zip(self.1.chunks(HALF_CHUNK)) {
            let n = ca.len();
            for (o, h) in x.iter_mut().zip(ca) {
                *o = widen(*h);
            }
            for (o, h) in y.iter_mut().zip(cb) {
                *o = widen(*h);
            }
            total += Sum::<f32, T>::new(&x[..n], &y[..n]).with_simd(simd);
        }
        total
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Sums in float64, the reference the float32 kernels are held to.
    pub(crate) fn reference(a: &[f32], b: &[f32]) -> (f64, f64) {
        let dot = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let l2 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        (dot, l2)
    }

    #[test]
    fn kernels_match_float64_sums_at_every_length() {
        // Lengths around every boundary: whole blocks of four registers, single
        // registers left over, and a scalar tail.
        for n in (0..80).chain([127, 128, 129, 383, 384, 385, 1536]) {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.37).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.91).sin()).collect();
            let (want_dot, want_l2) = reference(&a, &b);
            let tol = 1e-5 * (1.0 + n as f64);
            assert!(
                (f64::from(dot(&a, &b)) - want_dot).abs() < tol,
                "dot at {n}"
            );
            assert!(
                (f64::from(l2_squared(&a, &b)) - want_l2).abs() < tol,
                "l2 at {n}"
            );
        }
    }

    #[test]
    fn float16_widens_exactly() {
        // Every finite float16: normal, subnormal, zeros of both signs.
        for bits in 0..=u16::MAX {
            let h = half::f16::from_bits(bits);
            if h.is_finite() {
                assert_eq!(widen(bits).to_bits(), h.to_f32().to_bits(), "{bits:#06x}");
            }
        }
    }

    #[test]
    fn uneven_lengths_use_the_common_prefix() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let b = [1.0f32, 1.0];
        assert_eq!(dot(&a, &b), 3.0);
        assert_eq!(l2_squared(&a, &b), 1.0);
    }
}
