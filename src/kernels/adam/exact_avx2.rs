//! Adam's `f32` update with AVX2 without the microcode assists that
//! subnormal numbers cost on Intel's cores.
//!
//! The parameter is taken in blocks of 64 elements. A block whose `g` and
//! `m` (and `p`, when the step multiplies it) are all zero or above their
//! [`FLOORS`] in magnitude ("tame") takes the plain loop: with the usual
//! constants no operation of the formula then meets a subnormal number. In
//! any other block (a dead unit's subnormal moments, gradients of 10⁻¹⁸),
//! each vector of eight that is not tame takes every operation of the
//! formula in `f64`, four lanes at a time, rounding its result to `f32`
//! before the next one. That gives the `f32` formula's bits: a product of
//! two `f32` values is exact in `f64`, and for a sum, a quotient or a
//! square root, rounding first to 53 bits and then to 24 gives the
//! correctly rounded `f32` result (rounding twice is harmless when the
//! first precision is at least twice the second plus two bits:
//! 53 ≥ 2 · 24 + 2); the conversions that make the subnormal `f32` values
//! take no assist.
//! Both paths give the bits of [`super::plain`], which the tests check on
//! every kind of value. A value the check lets through that still meets a
//! subnormal (with unusual constants) costs an assist, never a different
//! result.
//!
//! What it is worth depends on the CPU, so [`super::update`] measures it
//! once ([`super::exact_pays`]). On an Intel Xeon (Sapphire Rapids class)
//! an `f32` multiplication, division or square root with a subnormal
//! operand or result took 6–8 ns instead of 0.2–0.3 (35–50 times), and a
//! block of dead units' moments 31.2 ns an element in the plain loop
//! against 9.8 here (tame blocks: 1.56 against 1.85); on the Zen 3 an
//! assist cost 8–20 times the operation (`docs/performance-journal.md`,
//! "Later that morning (2026-12-03)").

use super::AdamScalars;
use std::arch::x86_64::*;

/// `2^e` (for `-126 <= e <= 127`).
const fn pow2(e: i32) -> f32 {
    f32::from_bits(((127 + e) as u32) << 23)
}

/// The smallest magnitudes of tame nonzero values of `g`, `m` and `p`.
/// Below them an operation of the formula can meet a subnormal number
/// with the usual constants: `(1 − β₂)·g·g` for `g` under 2⁻⁵⁶ (β₂ up to
/// 0.9999), the step `lr·m / denom` for `m` under about 2⁻¹⁰⁶ (a learning
/// rate from 10⁻⁶, `v` below about 1), AdamW's or L2's product with `p`.
/// `v` is not checked: it decays by β₂ (0.999), far slower than `m` by β₁,
/// so a `v` near the subnormal range comes after `g` and `m` have left the
/// tame range. Tighter floors would send values that meet no subnormal to
/// the slower `f64` path; a value that slips through costs an assist.
const FLOORS: [f32; 3] = [pow2(-56), pow2(-100), pow2(-100)];

/// Elements per block (eight vectors).
const BLOCK: usize = 64;

/// Which lanes of `x` are zero or at least `floor` in magnitude (all bits
/// set) or not (no bit set).
#[inline]
#[target_feature(enable = "avx2")]
fn tame(x: __m256, floor: f32) -> __m256i {
    // |x| − 1 as an unsigned integer (zero wraps to the largest), at least
    // `floor`'s bits minus one
    let magnitude = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7fff_ffff));
    let key = _mm256_sub_epi32(magnitude, _mm256_set1_epi32(1));
    let floor = _mm256_set1_epi32(floor.to_bits() as i32 - 1);
    _mm256_cmpeq_epi32(_mm256_max_epu32(key, floor), key)
}

/// Which lanes are tame in both `g` and `m` and, if `with_p` (the step
/// multiplies `p`), `p`.
#[inline]
#[target_feature(enable = "avx2")]
fn lanes(with_p: bool, p: __m256, g: __m256, m: __m256) -> __m256i {
    let [fg, fm, fp] = FLOORS;
    let ok = _mm256_and_si256(tame(g, fg), tame(m, fm));
    if with_p {
        _mm256_and_si256(ok, tame(p, fp))
    } else {
        ok
    }
}

/// Whether every lane of `ok` ([`lanes`]) is tame.
#[inline]
#[target_feature(enable = "avx2")]
fn all(ok: __m256i) -> bool {
    _mm256_movemask_epi8(ok) == -1
}

/// `x` (the `f64` result of one operation on `f32` values) rounded to
/// `f32`, held in `f64` lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn round(mut x: __m256d) -> __m256d {
    // An empty `asm` block that the compiler cannot see through: without
    // it, LLVM turns "widen, operate in f64, round to f32" back into the
    // `f32` operation (the same value, and the assist this path avoids).
    // SAFETY: the block has no instructions; it reads and writes only `x`.
    unsafe {
        std::arch::asm!("/* {0} */", inout(ymm_reg) x, options(pure, nomem, nostack, preserves_flags));
    }
    _mm256_cvtps_pd(_mm256_cvtpd_ps(x))
}

/// The step's constants in both widths.
struct Constants<V> {
    beta1: V,
    beta2: V,
    one_m_b1: V,
    one_m_b2: V,
    step_size: V,
    bias2_sqrt: V,
    eps: V,
    l2: V,
    shrink: V,
}

impl<V: Copy> Constants<V> {
    #[inline(always)]
    fn of(k: &AdamScalars<f32>, splat: impl Fn(f32) -> V) -> Self {
        Constants {
            beta1: splat(k.beta1),
            beta2: splat(k.beta2),
            one_m_b1: splat(k.one_m_b1),
            one_m_b2: splat(k.one_m_b2),
            step_size: splat(k.step_size),
            bias2_sqrt: splat(k.bias2_sqrt),
            eps: splat(k.eps),
            l2: splat(k.l2),
            shrink: splat(k.shrink),
        }
    }
}

/// [`super::plain`]'s formula on eight `f32` lanes: `(p, m, v)` after the
/// step.
#[inline]
#[target_feature(enable = "avx2")]
fn narrow<const SHRINK: bool, const L2: bool>(
    k: &Constants<__m256>,
    mut p: __m256,
    g: __m256,
    m: __m256,
    v: __m256,
) -> (__m256, __m256, __m256) {
    if SHRINK {
        p = _mm256_mul_ps(p, k.shrink);
    }
    let g = if L2 {
        _mm256_add_ps(g, _mm256_mul_ps(k.l2, p))
    } else {
        g
    };
    let m = _mm256_add_ps(_mm256_mul_ps(k.beta1, m), _mm256_mul_ps(k.one_m_b1, g));
    let gg = _mm256_mul_ps(_mm256_mul_ps(k.one_m_b2, g), g);
    let v = _mm256_add_ps(_mm256_mul_ps(k.beta2, v), gg);
    let denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v), k.bias2_sqrt), k.eps);
    let p = _mm256_sub_ps(p, _mm256_mul_ps(k.step_size, _mm256_div_ps(m, denom)));
    (p, m, v)
}

/// The same formula on four lanes held in `f64`, each operation rounded to
/// `f32` ([`round`]).
#[inline]
#[target_feature(enable = "avx2")]
fn wide<const SHRINK: bool, const L2: bool>(
    k: &Constants<__m256d>,
    mut p: __m256d,
    g: __m256d,
    m: __m256d,
    v: __m256d,
) -> (__m256d, __m256d, __m256d) {
    if SHRINK {
        p = round(_mm256_mul_pd(p, k.shrink));
    }
    let g = if L2 {
        round(_mm256_add_pd(g, round(_mm256_mul_pd(k.l2, p))))
    } else {
        g
    };
    let bm = round(_mm256_mul_pd(k.beta1, m));
    let m = round(_mm256_add_pd(bm, round(_mm256_mul_pd(k.one_m_b1, g))));
    let gg = round(_mm256_mul_pd(round(_mm256_mul_pd(k.one_m_b2, g)), g));
    let v = round(_mm256_add_pd(round(_mm256_mul_pd(k.beta2, v)), gg));
    let root = round(_mm256_sqrt_pd(v));
    let denom = round(_mm256_add_pd(
        round(_mm256_div_pd(root, k.bias2_sqrt)),
        k.eps,
    ));
    let step = round(_mm256_mul_pd(k.step_size, round(_mm256_div_pd(m, denom))));
    let p = round(_mm256_sub_pd(p, step));
    (p, m, v)
}

/// One Adam step over `p`, `g`, `m` and `v` (equal lengths), bit for bit
/// [`super::plain`]'s.
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn update<const SHRINK: bool, const L2: bool>(
    k: &AdamScalars<f32>,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let n = p.len();
    assert!(g.len() == n && m.len() == n && v.len() == n);
    let k32 = Constants::of(k, |x| _mm256_set1_ps(x));
    let k64 = Constants::of(k, |x| _mm256_set1_pd(f64::from(x)));
    let (pp, mp, vp, gp) = (p.as_mut_ptr(), m.as_mut_ptr(), v.as_mut_ptr(), g.as_ptr());
    // SAFETY: every access is at `i..i + 8` with `i + 8 <= n`, the length
    // of all four slices.
    let load = |i: usize| unsafe {
        let at = |x: *const f32| _mm256_loadu_ps(x.add(i));
        (at(pp), at(gp), at(mp), at(vp))
    };
    // SAFETY: as for `load`.
    let store = |i: usize, (p8, m8, v8): (__m256, __m256, __m256)| unsafe {
        _mm256_storeu_ps(pp.add(i), p8);
        _mm256_storeu_ps(mp.add(i), m8);
        _mm256_storeu_ps(vp.add(i), v8);
    };
    let wide8 = |(p8, g8, m8, v8): (__m256, __m256, __m256, __m256)| {
        let lo = |x: __m256| _mm256_cvtps_pd(_mm256_castps256_ps128(x));
        let hi = |x: __m256| _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x));
        let (pl, ml, vl) = wide::<SHRINK, L2>(&k64, lo(p8), lo(g8), lo(m8), lo(v8));
        let (ph, mh, vh) = wide::<SHRINK, L2>(&k64, hi(p8), hi(g8), hi(m8), hi(v8));
        let join = |l, h| _mm256_set_m128(_mm256_cvtpd_ps(h), _mm256_cvtpd_ps(l));
        (join(pl, ph), join(ml, mh), join(vl, vh))
    };
    let blocks = n / BLOCK * BLOCK;
    for b in (0..blocks).step_by(BLOCK) {
        let mut ok = _mm256_set1_epi32(-1);
        for i in (b..b + BLOCK).step_by(8) {
            // (`v`'s load is unused here, and dropped by the compiler)
            let (p8, g8, m8, _) = load(i);
            ok = _mm256_and_si256(ok, lanes(SHRINK || L2, p8, g8, m8));
        }
        if all(ok) {
            // SAFETY: `b + BLOCK <= n`; the slices do not overlap (they
            // come from four distinct `&mut`/`&` slices).
            let (p, g, m, v) = unsafe {
                let part = |x: *mut f32| std::slice::from_raw_parts_mut(x.add(b), BLOCK);
                (
                    part(pp),
                    std::slice::from_raw_parts(gp.add(b), BLOCK),
                    part(mp),
                    part(vp),
                )
            };
            super::plain::<f32, SHRINK, L2>(k, p, g, m, v);
        } else {
            for i in (b..b + BLOCK).step_by(8) {
                let (p8, g8, m8, v8) = load(i);
                if all(lanes(SHRINK || L2, p8, g8, m8)) {
                    store(i, narrow::<SHRINK, L2>(&k32, p8, g8, m8, v8));
                } else {
                    store(i, wide8((p8, g8, m8, v8)));
                }
            }
        }
    }
    super::plain::<f32, SHRINK, L2>(
        k,
        &mut p[blocks..],
        &g[blocks..],
        &mut m[blocks..],
        &mut v[blocks..],
    );
}
