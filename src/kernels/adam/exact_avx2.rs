//! Adam's `f32` update with AVX2 without the microcode assists that
//! subnormal numbers cost on Intel's cores.
//!
//! The parameter is taken eight elements at a time. A vector whose `g`
//! and `m` (and `p`, when the step multiplies it) are all zero or above
//! their [`FLOORS`] in magnitude ("tame") takes the `f32` formula
//! ([`step`]): with the usual constants no operation of it then meets a
//! subnormal number. Any other vector (a dead unit's subnormal moments,
//! gradients of 10⁻¹⁸) goes through the same [`step`] with care, operation
//! by operation: an operation that could meet a subnormal number in one of
//! its lanes is done in `f64`, four lanes at a time, and rounded to `f32`
//! ([`exact`]); the others, and every addition (which takes no assist),
//! stay in `f32`. A dead unit's step takes one operation in `f64`
//! (β₁·m; the quotient and the step's product too if its weight is small
//! enough for the step to move it, see [`still_threshold`]), a tiny
//! gradient's one or two (the products of `g·g`).
//!
//! That gives the `f32` formula's bits: a product of two `f32` values is
//! exact in `f64`, and for a quotient or a square root, rounding first to
//! 53 bits and then to 24 gives the correctly rounded `f32` result
//! (rounding twice is harmless when the first precision is at least twice
//! the second plus two bits: 53 ≥ 2 · 24 + 2); the conversions that make
//! the subnormal `f32` values take no assist. Both paths give the bits of
//! [`super::plain`], which the tests check on every kind of value. A value
//! the checks let through that still meets a subnormal (with unusual
//! constants) costs an assist, never a different result.
//!
//! What it is worth depends on the CPU, so [`super::update`] measures it
//! once ([`super::exact_pays`]). On an Intel Xeon (Sapphire Rapids class)
//! an `f32` multiplication, division or square root with a subnormal
//! operand or result took 6–8 ns instead of 0.2–0.3 (35–50 times); on
//! 64K elements, dead units' moments took 28.6 ns an element in the plain
//! loop against 2.4–2.5 here, tiny gradients 11.6 against 2.3–2.5, tame
//! values 1.36–1.76 against 1.36–1.70. On the Zen 3 an
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

/// The smallest magnitude of a nonzero `v` whose product with β₂ (0.5 or
/// more) is normal.
const V_FLOOR: f32 = pow2(-125);

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

/// `x` (the `f64` result of one operation on `f32` values) hidden from the
/// compiler: without it, LLVM turns "widen, operate in `f64`, round to
/// `f32`" back into the `f32` operation (the same value, and the assist
/// this path avoids).
#[inline]
#[target_feature(enable = "avx2")]
fn hide(mut x: __m256d) -> __m256d {
    // SAFETY: the block has no instructions; it reads and writes only `x`.
    unsafe {
        std::arch::asm!("/* {0} */", inout(ymm_reg) x, options(pure, nomem, nostack, preserves_flags));
    }
    x
}

/// `op` on eight `f32` lanes done in `f64`, four lanes at a time, and
/// rounded to `f32`: the `f32` operation's bits, without an assist.
#[inline]
#[target_feature(enable = "avx2")]
fn exact(op: impl Fn(__m256d, __m256d) -> __m256d, a: __m256, b: __m256) -> __m256 {
    let lo = |x: __m256| _mm256_cvtps_pd(_mm256_castps256_ps128(x));
    let hi = |x: __m256| _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x));
    let l = _mm256_cvtpd_ps(hide(op(lo(a), lo(b))));
    let h = _mm256_cvtpd_ps(hide(op(hi(a), hi(b))));
    _mm256_set_m128(h, l)
}

/// `a · b`, in `f32` if `plain`, else through [`exact`].
#[inline]
#[target_feature(enable = "avx2")]
fn mul(plain: bool, a: __m256, b: __m256) -> __m256 {
    if plain {
        _mm256_mul_ps(a, b)
    } else {
        exact(|a, b| _mm256_mul_pd(a, b), a, b)
    }
}

/// A magnitude of `p` at and above which a step whose new first moment is
/// subnormal or zero leaves `p` unchanged; NaN (no `p` qualifies) unless
/// ε, the square root of `v`'s bias correction and the bound below are
/// positive and finite.
///
/// Why: the denominator is at least ε (a square root over a positive
/// number, plus ε, each rounded to nearest, which is monotonic), so with
/// `|m| < 2⁻¹²⁶` the `f32` step `step_size · (m / denom)` is at most
/// `B = RN(|step_size| · RN(2⁻¹²⁶ / ε))` in magnitude. For `|p|` in
/// `[2ᵉ, 2ᵉ⁺¹)` the nearest other `f32` values are at least `2ᵉ⁻²⁴` away,
/// so a change smaller than `2ᵉ⁻²⁵` rounds back to `p`; `|p| ≥ B · 2²⁶`
/// gives `B ≤ |p| · 2⁻²⁶ < 2ᵉ⁻²⁵`. With the usual constants (a step of
/// 10⁻³, ε = 10⁻⁸) that is `|p| ≥ 7.9·10⁻²⁵`: a dead unit's weight.
fn still_threshold(k: &AdamScalars<f32>) -> f32 {
    let bound = k.step_size.abs() * (f32::MIN_POSITIVE / k.eps);
    let usable = k.eps > 0.0 && k.bias2_sqrt > 0.0 && bound.is_finite();
    if usable {
        bound * pow2(26)
    } else {
        f32::NAN
    }
}

/// The step's constants.
struct Constants {
    beta1: __m256,
    beta2: __m256,
    one_m_b1: __m256,
    one_m_b2: __m256,
    step_size: __m256,
    bias2_sqrt: __m256,
    eps: __m256,
    l2: __m256,
    shrink: __m256,
    /// [`still_threshold`]'s magnitude of `p`.
    still: __m256,
}

impl Constants {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn of(k: &AdamScalars<f32>) -> Self {
        let splat = |x: f32| _mm256_set1_ps(x);
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
            still: splat(still_threshold(k)),
        }
    }
}

/// [`super::plain`]'s formula on eight `f32` lanes: `(p, m, v)` after the
/// step. If `CAREFUL`, an operation that could meet a subnormal number in
/// some lane (an operand or, with the usual constants, the result) goes
/// through [`exact`]; the others, and every addition (which takes no
/// assist), stay in `f32`. Otherwise (a tame vector) every operation is
/// the `f32` one.
#[inline]
#[target_feature(enable = "avx2")]
fn step<const CAREFUL: bool, const SHRINK: bool, const L2: bool>(
    k: &Constants,
    mut p: __m256,
    g: __m256,
    m: __m256,
    v: __m256,
) -> (__m256, __m256, __m256) {
    let [fg, fm, fp] = FLOORS;
    let ok = |x: __m256, floor: f32| !CAREFUL || all(tame(x, floor));
    if SHRINK || L2 {
        let p_ok = ok(p, fp);
        if SHRINK {
            p = mul(p_ok, p, k.shrink);
        }
        if L2 {
            return step::<CAREFUL, false, false>(k, p, _mm256_add_ps(g, mul(p_ok, k.l2, p)), m, v);
        }
    }
    let small_g = ok(g, fm);
    let m = _mm256_add_ps(mul(ok(m, fm), k.beta1, m), mul(small_g, k.one_m_b1, g));
    let gg = mul(ok(g, fg), mul(small_g, k.one_m_b2, g), g);
    let v = _mm256_add_ps(mul(ok(v, V_FLOOR), k.beta2, v), gg);
    let root = if ok(v, f32::MIN_POSITIVE) {
        _mm256_sqrt_ps(v)
    } else {
        exact(|v, _| _mm256_sqrt_pd(v), v, v)
    };
    let denom = _mm256_add_ps(_mm256_div_ps(root, k.bias2_sqrt), k.eps);
    let m_tame = tame(m, fm);
    let m_ok = !CAREFUL || all(m_tame);
    if !m_ok {
        // Lanes whose new `m` is subnormal or zero and whose `p` is large
        // enough that the step cannot move it ([`still_threshold`]; the
        // denominator not NaN): their `m` is left out of the quotient, so
        // their step is zero, and the other lanes' `m` is tame.
        let abs = |x: __m256| _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff)));
        let subnormal = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
            _mm256_set1_epi32(f32::MIN_POSITIVE.to_bits() as i32),
            _mm256_castps_si256(abs(m)),
        ));
        let large_p = _mm256_cmp_ps::<_CMP_GE_OQ>(abs(p), k.still);
        let finite = _mm256_cmp_ps::<_CMP_ORD_Q>(denom, denom);
        let still = _mm256_and_ps(subnormal, _mm256_and_ps(large_p, finite));
        let covered = _mm256_or_si256(_mm256_castps_si256(still), m_tame);
        if all(covered) {
            let moving = _mm256_andnot_ps(still, m);
            let step = _mm256_mul_ps(k.step_size, _mm256_div_ps(moving, denom));
            return (_mm256_sub_ps(p, step), m, v);
        }
    }
    let ratio = if m_ok {
        _mm256_div_ps(m, denom)
    } else {
        exact(|a, b| _mm256_div_pd(a, b), m, denom)
    };
    let p = _mm256_sub_ps(p, mul(m_ok, k.step_size, ratio));
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
    let k8 = Constants::of(k);
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
    let body = n / 8 * 8;
    for i in (0..body).step_by(8) {
        let (p8, g8, m8, v8) = load(i);
        if all(lanes(SHRINK || L2, p8, g8, m8)) {
            store(i, step::<false, SHRINK, L2>(&k8, p8, g8, m8, v8));
        } else {
            store(i, step::<true, SHRINK, L2>(&k8, p8, g8, m8, v8));
        }
    }
    super::plain::<f32, SHRINK, L2>(
        k,
        &mut p[body..],
        &g[body..],
        &mut m[body..],
        &mut v[body..],
    );
}
