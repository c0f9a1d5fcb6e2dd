//! Adam's element loop (Adam with L2 decay folded into the gradient, AdamW with
//! the decoupled shrink of the parameter), split over the thread pool for
//! large parameters.
//!
//! The arithmetic is one formula per element, in one order (see [`plain`]);
//! the pool's chunks and the vector lanes change nothing in it, and no path
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
//! assist: 8–20 times the operation on the Zen 3 measured, 35–50 times on an
//! Intel Xeon (Sapphire Rapids class), where W2 at batch 1, once it has
//! memorised its batch, spent 77% of its step in the update
//! (`docs/performance-journal.md`, "Afternoon (2026-12-01)" and "Later that
//! morning (2026-12-03)"). JAX's CPU backend flushes them (FTZ/DAZ); PyTorch
//! keeps them, and so does ferrograd: its results are IEEE's, and Rust treats
//! switching the flush modes on from Rust code as undefined behaviour.
//!
//! Where the assists cost enough ([`exact_pays`]), `f32` updates run in
//! [`exact_avx2`], which gives the same bits without meeting a subnormal
//! number: vectors whose values cannot lead to one take the `f32` formula; in
//! the others, each operation that could meet one is done in `f64` and rounded
//! to `f32`. On the Intel Xeon that made W2 at batch 1 about 4× faster (2.2 ms a
//! step before, 0.50 after). (An earlier exact form for every
//! element, a subnormal `β₁·m` from its integer significand through one FMA,
//! cost more than the assists on the Zen 3.)

#[cfg(target_arch = "x86_64")]
mod exact_avx2;

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

impl<T: Element> AdamScalars<T> {
    /// PyTorch's defaults (β₁ 0.9, β₂ 0.999, ε 10⁻⁸, no decay) at a
    /// learning rate of 10⁻³, with a bias correction of 0.5 for `v`: for
    /// [`exact_pays`]'s measurement and the tests.
    #[cfg_attr(not(any(test, target_arch = "x86_64")), allow(dead_code))]
    fn usual() -> Self {
        let t = T::from_f64_lossy;
        AdamScalars {
            beta1: t(0.9),
            beta2: t(0.999),
            one_m_b1: t(0.1),
            one_m_b2: t(1.0) - t(0.999),
            step_size: t(1e-3),
            bias2_sqrt: t(0.5),
            eps: t(1e-8),
            l2: t(0.0),
            shrink: t(1.0),
        }
    }
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
    // compiled for the widest vectors the CPU has: the square root and the divisions
    // make the loop compute-bound
    let chunk = |p: &mut [T], g: &[T], m: &mut [T], v: &mut [T]| {
        #[cfg(target_arch = "x86_64")]
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && exact_pays() {
            // SAFETY: `T` is `f32` (checked just above), so the casts change
            // no type; `exact_pays` holds only where the CPU has AVX2.
            unsafe {
                let f = |s: &mut [T]| &mut *(s as *mut [T] as *mut [f32]);
                let g = &*(g as *const [T] as *const [f32]);
                let k = &*(k as *const AdamScalars<T> as *const AdamScalars<f32>);
                return exact_avx2::update::<SHRINK, L2>(k, f(p), g, f(m), f(v));
            }
        }
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

/// Whether `f32` updates take [`exact_avx2`] on this CPU: it has AVX2, and
/// a block of dead units' moments (subnormal `m` and `v`, zero gradients)
/// ran there more than 1.5 times faster than in the plain loop, measured
/// once per process (about 0.1 ms; both give the same bits, so the choice
/// changes only the time). On an Intel Xeon (Sapphire Rapids class) the
/// exact path was about 12 times faster on such data; where an assist costs
/// less (the Zen 3 measured 8–20 times an operation, against 35–50 there)
/// the plain loop may stay ahead.
#[cfg(target_arch = "x86_64")]
fn exact_pays() -> bool {
    static PAYS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PAYS.get_or_init(|| {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return false;
        }
        let k = AdamScalars::<f32>::usual();
        let n = 512;
        let (g, m0, v0) = (
            vec![0f32; n],
            vec![f32::from_bits(3); n],
            vec![f32::from_bits(5); n],
        );
        // one run of a path over `p`, `m` and `v`
        type Run<'a> = &'a dyn Fn(&mut [f32], &mut [f32], &mut [f32]);
        let best = |f: Run| {
            (0..5)
                .map(|_| {
                    let (mut p, mut m, mut v) = (vec![0.5f32; n], m0.clone(), v0.clone());
                    let start = std::time::Instant::now();
                    f(&mut p, &mut m, &mut v);
                    start.elapsed()
                })
                .min()
                .unwrap_or_default()
        };
        let plain_time = best(&|p, m, v| wide(|| plain::<f32, false, false>(&k, p, &g, m, v)));
        // SAFETY: the CPU has AVX2 (checked above).
        let exact_time =
            best(&|p, m, v| unsafe { exact_avx2::update::<false, false>(&k, p, &g, m, v) });
        exact_time.as_secs_f64() * 1.5 < plain_time.as_secs_f64()
    })
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
        check_path::<SHRINK, L2>(k, p0, g, m0, v0, |k, p, g, m, v| {
            update::<f32, SHRINK, L2>(k, p, g, m, v)
        });
        // the exact path itself, whether or not this CPU chooses it
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            check_path::<SHRINK, L2>(k, p0, g, m0, v0, |k, p, g, m, v| {
                // SAFETY: the CPU has AVX2 (checked above).
                unsafe { exact_avx2::update::<SHRINK, L2>(k, p, g, m, v) }
            });
        }
    }

    /// [`check_against_plain`] with and without AdamW's shrink and the L2
    /// penalty.
    fn check_every_variant(k: &AdamScalars<f32>, p0: &[f32], g: &[f32], m0: &[f32], v0: &[f32]) {
        check_against_plain::<false, false>(k, p0, g, m0, v0);
        check_against_plain::<false, true>(k, p0, g, m0, v0);
        check_against_plain::<true, false>(k, p0, g, m0, v0);
        check_against_plain::<true, true>(k, p0, g, m0, v0);
    }

    /// Three steps of `path` against the scalar formula, bit for bit.
    fn check_path<const SHRINK: bool, const L2: bool>(
        k: &AdamScalars<f32>,
        p0: &[f32],
        g: &[f32],
        m0: &[f32],
        v0: &[f32],
        path: impl Fn(&AdamScalars<f32>, &mut [f32], &[f32], &mut [f32], &mut [f32]),
    ) {
        let (mut p1, mut m1, mut v1) = (p0.to_vec(), m0.to_vec(), v0.to_vec());
        let (mut p2, mut m2, mut v2) = (p0.to_vec(), m0.to_vec(), v0.to_vec());
        for step in 0..3 {
            path(k, &mut p1, g, &mut m1, &mut v1);
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
        // The update runs compiled for the widest vectors the CPU has; the lanes change,
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
                check_every_variant(&k, &p, &g, &m, &v);
            }
        }
    }

    /// Runs of 64 tame values (the `f32` path), of dead units (subnormal
    /// moments, zero gradients) and of tiny gradients (operations in `f64`),
    /// and runs that mix them vector by vector or lane by lane, as the exact
    /// path sorts them: every one gives the formula's bits.
    #[test]
    fn tame_dead_and_mixed_vectors_match_the_formula_bit_for_bit() {
        let mut rng = StdRng::seed_from_u64(99);
        let (mut p, mut g, mut m, mut v) = (vec![], vec![], vec![], vec![]);
        let tame = [0, 10, 90, 0, 0, 0];
        let dead = [90, 10, 0, 0, 0, 0];
        for kind in 0..40 {
            // 64 elements: tame, dead, one dead lane in eight, tiny gradients
            for lane in 0..64 {
                let odd = match kind % 4 {
                    0 => false,
                    1 => true,
                    2 => lane % 8 == 3,
                    _ => lane % 16 < 8,
                };
                let w = if odd { dead } else { tame };
                p.push(value(&mut rng, [0, 5, 95, 0, 0, 0], false));
                g.push(if kind % 4 == 3 && odd {
                    1e-19
                } else {
                    value(&mut rng, w, false)
                });
                m.push(value(&mut rng, w, false));
                v.push(value(&mut rng, w, true));
            }
        }
        p.extend([0.5, -0.25, 3.0]); // and a tail after the last vector
        g.extend([0.0, 1e-3, f32::from_bits(7)]);
        m.extend([f32::from_bits(1), 0.1, 0.0]);
        v.extend([f32::from_bits(2), 1e-4, 0.0]);
        for k in [
            scalars(0.9, 0.999, 1e-3 / 0.271, 1e-8),
            scalars(0.99, 0.9999, 3e-6, 1e-12),
        ] {
            check_every_variant(&k, &p, &g, &m, &v);
        }
    }

    /// Dead units (subnormal `m`, zero `g` and `v`, so the denominator is ε
    /// and the step as large as a subnormal `m` allows) whose weights run
    /// through the magnitudes where the step stops moving them: vectors of
    /// eight at one magnitude, from 2⁻¹²⁰ to 2⁻⁴⁰, both signs. The exact path
    /// leaves `p` unchanged without computing the step above a threshold
    /// (`still_threshold`); below it the step must still be taken.
    #[test]
    fn dead_units_at_every_weight_magnitude_match_the_formula_bit_for_bit() {
        let mut rng = StdRng::seed_from_u64(2024);
        let (mut p, mut g, mut m, mut v) = (vec![], vec![], vec![], vec![]);
        for e in -120..=-40 {
            for _ in 0..4 {
                for _ in 0..8 {
                    let mant = 1.0 + rng.random_range(0.0..1.0f32);
                    let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
                    p.push(sign * mant * 2f32.powi(e));
                    // the largest subnormals, and some small ones
                    let bits = if rng.random::<bool>() {
                        0x007f_ffff - rng.random_range(0..1000)
                    } else {
                        rng.random_range(1..0x007f_ffff)
                    };
                    m.push(f32::from_bits(bits) * sign);
                    g.push(0.0);
                    v.push(0.0);
                }
            }
        }
        for k in [
            scalars(0.9, 0.999, 1e-3 / 0.271, 1e-8),
            scalars(0.99, 0.9999, 3e-6, 1e-12),
            scalars(0.5, 0.9, 0.3, 1e-4),
            scalars(0.9, 0.999, -2e-3, 1e-8), // a negative step
        ] {
            check_every_variant(&k, &p, &g, &m, &v);
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
        let k = AdamScalars::<f64>::usual();
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
