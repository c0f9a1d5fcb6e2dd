//! Adam's element loop (Adam with L2 decay folded into the gradient, AdamW with
//! the decoupled shrink of the parameter), split over the thread pool for
//! large parameters.
//!
//! The arithmetic is one formula per element, in one order (see [`plain`]);
//! the pool's chunks and the AVX2 lanes change nothing in it, and no path
//! flushes subnormal numbers to zero.
//!
//! # Subnormal moments
//!
//! A weight whose gradient stays zero (a dead ReLU unit, an unused embedding
//! row) has its first moment `m` multiplied by β₁ every step: after some 800
//! steps at β₁ = 0.9 it is subnormal (below 2⁻¹²⁶ ≈ 1.2·10⁻³⁸), and it stays
//! there, since 0.9 times the smallest subnormals rounds back to them. A tiny
//! gradient's `(1 − β₂)·g·g` underflows to a subnormal too. On the x86 CPUs
//! measured, an operation with a subnormal operand or result takes a microcode
//! assist, and once W2 at batch 1 has memorised its batch the update takes
//! about twice as long as with subnormals flushed (`docs/performance-journal.md`, "Afternoon").
//! JAX's CPU backend flushes them (FTZ/DAZ); PyTorch keeps them, and so does
//! ferrograd: its results are IEEE's, and Rust treats switching the flush
//! modes on from Rust code as undefined behaviour. Exact alternatives that
//! avoid the assists (a subnormal `β₁·m` from its integer significand through
//! one FMA; a step left out where it cannot move `p`) were measured and cost
//! more in extra instructions than the assists they avoid.

use super::parallel::{use_pool, ADAM_CHUNK, ADAM_LEN};
use super::wide;
use crate::element::Element;

/// The per-step constants of an Adam update.
pub(crate) struct AdamScalars<T> {
    /// β₁.
    pub(crate) beta1: T,
    /// β₂.
    pub(crate) beta2: T,
    /// 1 − β₁.
    pub(crate) one_m_b1: T,
    /// 1 − β₂.
    pub(crate) one_m_b2: T,
    /// The learning rate over the first moment's bias correction.
    pub(crate) step_size: T,
    /// The square root of the second moment's bias correction.
    pub(crate) bias2_sqrt: T,
    /// Added to the denominator.
    pub(crate) eps: T,
    /// The L2 penalty folded into the gradient (used when `L2`).
    pub(crate) l2: T,
    /// AdamW's factor `1 − lr·λ` applied to the parameter first (used when `SHRINK`).
    pub(crate) shrink: T,
}

/// One Adam step over a parameter `p`, its gradient `g` and its moments `m`
/// and `v`: on the thread pool in chunks when the parameter is large, else in
/// one call. `SHRINK` applies AdamW's decoupled decay first; `L2` folds the L2
/// penalty into the gradient. The results do not depend on the path.
pub(crate) fn update<T: Element, const SHRINK: bool, const L2: bool>(
    k: &AdamScalars<T>,
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
) {
    use rayon::prelude::*;
    assert!(
        g.len() == p.len() && m.len() == p.len() && v.len() == p.len(),
        "internal error: adam buffers of different lengths"
    );
    // compiled for AVX2 when the CPU has it: the square root and the divisions
    // make the loop compute-bound
    let chunk = |p: &mut [T], g: &[T], m: &mut [T], v: &mut [T]| {
        wide(|| plain::<T, SHRINK, L2>(k, p, g, m, v))
    };
    if !use_pool(p.len(), ADAM_LEN) {
        return chunk(p, g, m, v);
    }
    p.par_chunks_mut(ADAM_CHUNK)
        .zip(g.par_chunks(ADAM_CHUNK))
        .zip(m.par_chunks_mut(ADAM_CHUNK))
        .zip(v.par_chunks_mut(ADAM_CHUNK))
        .for_each(|(((p, g), m), v)| chunk(p, g, m, v));
}

/// Adam's formula, element by element: the reference that every path matches
/// bit for bit. (PyTorch's has the same terms; it moves `m` with `lerp` and
/// scales `m` before dividing, so the last bits can differ.)
#[inline(always)]
fn plain<T: Element, const SHRINK: bool, const L2: bool>(
    k: &AdamScalars<T>,
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        if SHRINK {
            *p *= k.shrink;
        }
        let g = if L2 { g + k.l2 * *p } else { g };
        *m = k.beta1 * *m + k.one_m_b1 * g;
        *v = k.beta2 * *v + k.one_m_b2 * g * g;
        let denom = v.sqrt() / k.bias2_sqrt + k.eps;
        *p -= k.step_size * (*m / denom);
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;

    /// A value of a mixture: `weights` are the chances (out of their sum) of a
    /// subnormal, a zero, a small normal, a tiny normal (below 2⁻²⁰), a large
    /// one, and an infinity or NaN, in that order.
    fn value(rng: &mut StdRng, weights: [u32; 6], nonneg: bool) -> f32 {
        let r = rng.random_range(0..weights.iter().sum::<u32>());
        let sign = if nonneg {
            0
        } else {
            rng.random::<u32>() & 0x8000_0000
        };
        let mag: u32 = rng.random();
        let mut acc = 0;
        let kind = weights.iter().position(|w| {
            acc += w;
            r < acc
        });
        let bits = match kind.unwrap() {
            0 => 1 + mag % 0x007f_ffff,                           // subnormal
            1 => 0,                                               // zero
            2 => 0x3000_0000 + mag % 0x0f00_0000,                 // about 5e-10 .. 0.5
            3 => 0x0080_0000 + mag % (0x3580_0000 - 0x0080_0000), // normal, below 2^-20
            4 => 0x5000_0000 + mag % 0x2000_0000,                 // about 8e9 .. 2e29
            _ => [0x7f80_0000, 0x7fc0_0000 | (mag & 0xffff)][(mag % 2) as usize],
        };
        f32::from_bits(bits | sign)
    }

    /// `n` values of [`value`]'s mixture.
    fn values(rng: &mut StdRng, n: usize, weights: [u32; 6], nonneg: bool) -> Vec<f32> {
        (0..n).map(|_| value(rng, weights, nonneg)).collect()
    }

    fn scalars(beta1: f32, beta2: f32, step_size: f32, eps: f32) -> AdamScalars<f32> {
        AdamScalars {
            beta1,
            beta2,
            one_m_b1: 1.0 - beta1,
            one_m_b2: 1.0 - beta2,
            step_size,
            bias2_sqrt: 0.0547,
            eps,
            l2: 0.01,
            shrink: 0.999,
        }
    }

    /// Equal bits, or both NaN (which NaN an operation returns when both
    /// operands are NaN depends on the operand order, which is not promised).
    fn same(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
    }

    /// Runs three steps of `update` and of the scalar formula on the same
    /// data, and checks every parameter and moment bit for bit.
    fn check_against_plain<const SHRINK: bool, const L2: bool>(
        k: &AdamScalars<f32>,
        p0: &[f32],
        g: &[f32],
        m0: &[f32],
        v0: &[f32],
    ) {
        let (mut p1, mut m1, mut v1) = (p0.to_vec(), m0.to_vec(), v0.to_vec());
        let (mut p2, mut m2, mut v2) = (p0.to_vec(), m0.to_vec(), v0.to_vec());
        for step in 0..3 {
            update::<f32, SHRINK, L2>(k, &mut p1, g, &mut m1, &mut v1);
            // one element at a time: no vector code at all
            for i in 0..p2.len() {
                let (p, m, v) = (&mut p2[i..=i], &mut m2[i..=i], &mut v2[i..=i]);
                plain::<f32, SHRINK, L2>(k, p, &g[i..=i], m, v);
            }
            let at = (SHRINK, L2, step, k.beta1, k.step_size, k.eps);
            assert!(same(&m1, &m2), "first moments differ: {at:?}");
            assert!(same(&v1, &v2), "second moments differ: {at:?}");
            assert!(same(&p1, &p2), "parameters differ: {at:?}");
        }
    }

    #[test]
    fn the_vector_loop_matches_the_formula_bit_for_bit_subnormals_included() {
        // The update runs compiled for AVX2 when the CPU has it; the lanes change,
        // the arithmetic must not, at every kind of value.
        let mut rng = StdRng::seed_from_u64(7);
        // a length with a remainder after the vector body, and one below a vector
        for n in [1003usize, 5] {
            let m = values(&mut rng, n, [50, 10, 25, 5, 5, 5], false);
            let v = values(&mut rng, n, [10, 10, 60, 10, 5, 5], true);
            let p = values(&mut rng, n, [5, 5, 60, 15, 10, 5], false);
            let g = values(&mut rng, n, [5, 50, 30, 5, 5, 5], false);
            for k in [
                scalars(0.9, 0.999, 1e-3 / 0.271, 1e-8),
                scalars(0.0, 0.0, 0.5, 0.0), // no momentum, eps 0
                scalars(0.999_999_94, 0.5, 3e4, 1e-8), // a large step
                scalars(1e-30, 0.999, 1.0, f32::MIN_POSITIVE), // a tiny β₁, a tiny eps
            ] {
                check_against_plain::<false, false>(&k, &p, &g, &m, &v);
                check_against_plain::<false, true>(&k, &p, &g, &m, &v);
                check_against_plain::<true, false>(&k, &p, &g, &m, &v);
                check_against_plain::<true, true>(&k, &p, &g, &m, &v);
            }
        }
    }

    #[test]
    fn a_large_parameter_on_the_pool_matches_the_formula() {
        // split into chunks over the thread pool (when it has two threads)
        let n = 3 * crate::kernels::parallel::ADAM_LEN + 77;
        let mut rng = StdRng::seed_from_u64(12345);
        let m = values(&mut rng, n, [40, 20, 40, 0, 0, 0], false);
        let v = values(&mut rng, n, [0, 10, 90, 0, 0, 0], true);
        let p = values(&mut rng, n, [0, 5, 80, 15, 0, 0], false);
        let g = values(&mut rng, n, [0, 70, 30, 0, 0, 0], false);
        check_against_plain::<false, false>(&scalars(0.9, 0.999, 3.7e-3, 1e-8), &p, &g, &m, &v);
    }

    #[test]
    fn f64_moments_take_the_formula() {
        let k = AdamScalars {
            beta1: 0.9f64,
            beta2: 0.999,
            one_m_b1: 0.1,
            one_m_b2: 1.0 - 0.999,
            step_size: 1e-3,
            bias2_sqrt: 0.5,
            eps: 1e-8,
            l2: 0.0,
            shrink: 1.0,
        };
        let (mut p, mut m, mut v) = (
            vec![0.5f64, -2.0],
            vec![f64::from_bits(3), 0.25],
            vec![1e-6, 0.0],
        );
        update::<f64, false, false>(&k, &mut p, &[0.0, 1.0], &mut m, &mut v);
        assert_eq!(m, [f64::from_bits(3), 0.9 * 0.25 + 0.1]);
        assert_eq!(v, [0.999 * 1e-6, 1.0 - 0.999]);
        let d1 = (0.999f64 * 1e-6).sqrt() / 0.5 + 1e-8;
        assert_eq!(p[0], 0.5 - 1e-3 * (f64::from_bits(3) / d1));
    }
}
