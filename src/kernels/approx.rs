//! Branch-free `exp`, `tanh` and `erf` for `f32` that LLVM vectorises (the C
//! library's are scalar calls, a third of a transformer step's time in GELU);
//! `f64` keeps the C library's versions, so gradient checks in `f64` see exact
//! functions. (`erf_f32` serves the exact GELU; `Tensor::erf` itself stays on
//! the C library's `erff`.)
//!
//! Accuracy, measured against `f64` over every one of the 2³² `f32` inputs (the
//! `#[ignore]`d test `exhaustive_exp_tanh_f32` below; run it with
//! `cargo test --release --lib exhaustive_exp_tanh -- --ignored`):
//!
//! - [`exp_f32`]: at most **1.22 ulp** everywhere, subnormal results included;
//!   `+inf` exactly where the true value rounds to `+inf` (from `x ≈ 88.7228`),
//!   `0` where it rounds to 0 (below `x ≈ −103.97`), NaN for NaN.
//! - [`tanh_f32`]: at most **2.25 ulp** everywhere; odd (`tanh(−0) = −0`),
//!   `±1` exactly from `|x| ≈ 9.01`, NaN for NaN.
//! - [`erf_f32`]: at most **2.77 ulp** everywhere (measured maximum 2.7624, at
//!   `x ≈ 0.4769`); odd, `±1` from `|x| = 4`, NaN for NaN.
//!
//! (An ulp here is the spacing of `f32` values at the true result, `2⁻¹⁴⁹` for
//! subnormal results.)
//!
//! `exp(x) = 2ⁿ · eʳ` with `n = round(x / ln 2)` and `r = x − n·ln 2` in
//! `[−ln 2/2, ln 2/2]`, `eʳ` by its Taylor polynomial to degree 7 (error below
//! 2⁻²⁴ relative there), `2ⁿ` built from the exponent bits as two factors
//! `2^⌊n/2⌋ · 2^(n−⌊n/2⌋)`, each a normal `f32` for every `n` in `[−150, 128]`:
//! one factor alone overflows at `n = 128` (`x > 88.376`) and cannot reach the
//! subnormal results (`n < −126`), while the product rounds once, like a
//! correctly scaled result. Rounding to `n` uses the `1.5·2²³` trick, so no
//! SSE4.1 `round` is needed.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n · LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding this rounds a float of magnitude below 2²² to an integer.
const ROUND: f32 = 12_582_912.0;
/// Inputs are clamped to `[EXP_MIN, EXP_MAX]` before the range reduction (so `n`
/// stays in `[−150, 128]`): `e^EXP_MIN` rounds to 0 and `e^EXP_MAX` overflows to
/// `+inf`, as the true values do for every input beyond them.
const EXP_MIN: f32 = -104.0;
const EXP_MAX: f32 = 89.0;

/// `2^k` for an integer `k` in `[−126, 127]`, from its exponent bits.
#[inline(always)]
fn pow2i(k: i32) -> f32 {
    f32::from_bits(((k + 127) << 23) as u32)
}

/// `eˣ = p · 2ⁿ`: the polynomial part `p = eʳ` (in `[0.7, 1.42]`) and `n`, for
/// `|x| ≤ 104`.
#[inline(always)]
fn exp_parts(x: f32) -> (f32, i32) {
    let t = x * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // e^r, Taylor to degree 7: the three low-order steps by Horner, as
    // `1 + r·(1 + r·(1/2 + r·h))`, and `h` (degree 4) by Estrin's scheme, in
    // pairs of terms joined by r², which shortens the dependency chain of the
    // whole (`exp`, `tanh` and GELU 5–7% faster) with the same worst errors
    let r2 = r * r;
    let h01 = 1.0 / 6.0 + r * (1.0 / 24.0);
    let h23 = 1.0 / 120.0 + r * (1.0 / 720.0);
    let h = h01 + r2 * (h23 + r2 * (1.0 / 5040.0));
    let p = 1.0 + r * (1.0 + r * (0.5 + r * h));
    // n, the integer in the low mantissa bits of `t`
    (p, (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32))
}

/// `eˣ` for `f32`, within 1.22 ulp of the true value for every input (see the
/// module docs): `exp(−inf) = 0`, `exp(+inf) = +inf`, NaN gives NaN (through
/// the arithmetic: `clamp` keeps NaN).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    let (p, n) = exp_parts(x.clamp(EXP_MIN, EXP_MAX));
    // n is in [−150, 128]: p·2^half is normal, and the second factor rounds once
    // into the subnormals, or overflows to +inf, exactly when p·2ⁿ does
    let half = n >> 1;
    p * pow2i(half) * pow2i(n - half)
}

/// `tanh(x)` for `f32`, within 2.25 ulp of the true value for every input (see
/// the module docs): an odd Taylor polynomial for `|x| < 0.3` (where
/// `(e²ˣ − 1)/(e²ˣ + 1)` would cancel) and that quotient elsewhere, chosen
/// without a branch.
///
/// (`1 − 2/(e²ˣ + 1)` above `|x| ≈ 0.6` would bring the bound to 1.65 ulp, but
/// the extra selects cost a tenth more instructions per element.)
#[inline(always)]
pub(crate) fn tanh_f32(x: f32) -> f32 {
    let a = x.abs().min(9.1); // tanh(9.1) rounds to 1 in f32
                              // |x| < 0.3: x − x³/3 + 2x⁵/15 − 17x⁷/315 + 62x⁹/2835
    let z = a * a;
    let small =
        a + a * z * (-1.0 / 3.0 + z * (2.0 / 15.0 + z * (-17.0 / 315.0 + z * (62.0 / 2835.0))));
    // e^(2a) with 2a in [0, 18.2]: one factor 2ⁿ, n ≤ 27
    let (p, n) = exp_parts(2.0 * a);
    let e = p * pow2i(n);
    let large = (e - 1.0) / (e + 1.0);
    let y = if a < 0.3 { small } else { large };
    if x.is_nan() {
        x
    } else {
        y.copysign(x)
    }
}

/// `erf(x)` for `f32`, within 2.77 ulp of the true value for every input (see
/// the module docs), without a branch: for `|x| < 1`, `x · P(x²)` with `P` a
/// polynomial of degree 6 fitted to `erf(a)/a` (relative error 1.4e-9); for
/// `1 ≤ |x| < 4`, `1 − e^(−x²) · R(t)` with `t = 1/(1 + |x|/2)` and `R` a
/// polynomial of degree 7 fitted to `erfc(a)·e^(a²)` (relative error 4e-10);
/// from `|x| = 4` on, `±1` (`erf(4)` rounds to 1 in `f32`). Odd, NaN for NaN.
#[inline(always)]
pub(crate) fn erf_f32(x: f32) -> f32 {
    let a = x.abs().min(4.0);
    let z = a * a;
    let small = a
        * (std::f32::consts::FRAC_2_SQRT_PI
            + z * (-0.376_126_3
                + z * (0.112_836_12
                    + z * (-0.026_854_806
                        + z * (0.005_190_05 + z * (-0.000_802_432_07 + z * 7.898_098e-5))))));
    let t = 1.0 / (1.0 + 0.5 * a);
    let r = -0.000_154_543_4
        + t * (0.284_917
            + t * (0.259_666_74
                + t * (0.347_843_6
                    + t * (-0.103_617_705
                        + t * (0.563_166_86 + t * (-0.471_049_8 + t * 0.119_280_6))))));
    let large = 1.0 - exp_f32(-z) * r;
    let y = if a < 1.0 { small } else { large };
    if x.is_nan() {
        x
    } else {
        y.copysign(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    /// The error of `got` in ulp of the true value `exact` (the spacing of `f32`
    /// at `|exact|`, `2⁻¹⁴⁹` below the normal range); infinite when `got` is not
    /// finite and differs from the correctly rounded result (an overflow or NaN
    /// where there should be none, or the reverse).
    fn ulp_error(got: f32, exact: f64) -> f64 {
        let want = exact as f32;
        if !(want.is_finite() && got.is_finite()) {
            let same = got == want || (got.is_nan() && want.is_nan());
            return if same { 0.0 } else { f64::INFINITY };
        }
        let binade = (((exact.to_bits() >> 52) & 0x7ff) as i32 - 1023).max(-126);
        let ulp = f64::from_bits(((binade - 23 + 1023) as u64) << 52);
        (got as f64 - exact).abs() / ulp
    }

    /// The largest error in ulp of `f` against `reference` over `inputs`, with
    /// the input where it occurs.
    fn worst(f: fn(f32) -> f32, reference: fn(f64) -> f64, inputs: &[f32]) -> (f64, f32) {
        // the same vectorisable loop as the kernels'
        let got: Vec<f32> = inputs.iter().map(|&x| f(x)).collect();
        got.iter()
            .zip(inputs)
            .map(|(&y, &x)| (ulp_error(y, reference(x as f64)), x))
            .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
    }

    /// Bounds asserted here and stated in the module docs (measured maxima over
    /// all 2³² inputs: 1.2183 and 2.2500 ulp).
    const EXP_ULP: f64 = 1.22;
    const TANH_ULP: f64 = 2.26;
    const ERF_ULP: f64 = 2.77;

    /// The inputs where things change: zeros, subnormals, infinities, NaN, the
    /// overflow and underflow thresholds and their neighbours, and the points
    /// where `tanh` switches form.
    fn edge_cases() -> Vec<f32> {
        let mut v = vec![
            0.0,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(0x007f_ffff),
            1e-30,
            f32::EPSILON,
            1.0,
            f32::MAX,
            f32::INFINITY,
            f32::NAN,
            -f32::NAN,
            // exp: 2ⁿ overflowed for 88.376 < x ≤ 88.72 before
            88.0,
            88.3763,
            88.4,
            88.7,
            88.72,
            88.722_83,
            88.722_84,
            89.0,
            100.0,
            // exp: subnormal results, then 0
            -87.3,
            -87.336_54,
            -87.5,
            -100.0,
            -103.27,
            -103.972,
            -103.973,
            -104.0,
            -1000.0,
            // tanh: the switch between forms, where it is least accurate, and where
            // it reaches 1
            0.3,
            8.384_527,
            9.01,
            9.1,
            20.0,
        ];
        for x in v.clone() {
            // both signs and both neighbours of each
            for y in [
                x,
                f32::from_bits(x.to_bits() + 1),
                f32::from_bits(x.to_bits().max(1) - 1),
            ] {
                v.extend([y, -y]);
            }
        }
        v
    }

    #[test]
    fn exp_meets_its_bound_on_edge_cases_and_samples() {
        let edges = edge_cases();
        let (e, at) = worst(exp_f32, f64::exp, &edges);
        assert!(e <= EXP_ULP, "exp: {e} ulp at {at:e}");
        // 1M inputs spread over the whole range that does not saturate
        let step = (EXP_MAX - EXP_MIN) / (1 << 20) as f32;
        let inputs: Vec<f32> = (0..1 << 20).map(|i| EXP_MIN + step * i as f32).collect();
        let (e, at) = worst(exp_f32, f64::exp, &inputs);
        assert!(e <= EXP_ULP, "exp: {e} ulp at {at:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(88.4) > 2.46e38 && exp_f32(88.7) > 3.32e38);
        assert_eq!(exp_f32(88.722_84), f32::INFINITY);
        assert!(exp_f32(-100.0) > 0.0);
    }

    #[test]
    fn tanh_meets_its_bound_on_edge_cases_and_samples() {
        let edges = edge_cases();
        let (e, at) = worst(tanh_f32, f64::tanh, &edges);
        assert!(e <= TANH_ULP, "tanh: {e} ulp at {at:e}");
        let step = 20.0 / (1 << 20) as f32;
        let inputs: Vec<f32> = (0..1 << 20).map(|i| -10.0 + step * i as f32).collect();
        let (e, at) = worst(tanh_f32, f64::tanh, &inputs);
        assert!(e <= TANH_ULP, "tanh: {e} ulp at {at:e}");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert!(tanh_f32(-0.0).is_sign_negative());
        assert_eq!(tanh_f32(20.0), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
        let tiny = f32::from_bits(1);
        assert_eq!(tanh_f32(tiny), tiny);
    }

    #[test]
    fn erf_meets_its_bound_on_edge_cases_and_samples() {
        let mut edges = edge_cases();
        // the switch between forms, and where the result reaches 1
        for x in [0.999_999_9f32, 1.0, 1.000_000_1, 3.9, 3.919, 3.92, 4.0] {
            edges.extend([x, -x]);
        }
        let (e, at) = worst(erf_f32, libm::erf, &edges);
        assert!(e <= ERF_ULP, "erf: {e} ulp at {at:e}");
        let step = 10.0 / (1 << 20) as f32;
        let inputs: Vec<f32> = (0..1 << 20).map(|i| -5.0 + step * i as f32).collect();
        let (e, at) = worst(erf_f32, libm::erf, &inputs);
        assert!(e <= ERF_ULP, "erf: {e} ulp at {at:e}");
        // tiny inputs: erf(x) ≈ 2x/√π, relative accuracy kept
        let tiny: Vec<f32> = (0..4096)
            .map(|i| f32::from_bits(1 + i * 0x0010_0000))
            .collect();
        let (e, at) = worst(erf_f32, libm::erf, &tiny);
        assert!(e <= ERF_ULP, "erf: {e} ulp at {at:e}");
        assert_eq!(erf_f32(0.0), 0.0);
        assert!(erf_f32(-0.0).is_sign_negative());
        assert_eq!(erf_f32(4.0), 1.0);
        assert_eq!(erf_f32(f32::INFINITY), 1.0);
        assert_eq!(erf_f32(f32::NEG_INFINITY), -1.0);
        assert!(erf_f32(f32::NAN).is_nan());
    }

    /// Every `f32` input, against `f64`. Takes minutes: run it in release with
    /// `cargo test --release --lib exhaustive_exp_tanh -- --ignored`.
    #[test]
    #[ignore = "exhaustive over 2³² inputs: cargo test --release --lib exhaustive_exp_tanh -- --ignored"]
    fn exhaustive_exp_tanh_f32() {
        const CHUNK: u64 = 1 << 16;
        let run = |f: fn(f32) -> f32, reference: fn(f64) -> f64| {
            (0..(1u64 << 32) / CHUNK)
                .into_par_iter()
                .map(|c| {
                    let inputs: Vec<f32> = (c * CHUNK..(c + 1) * CHUNK)
                        .map(|b| f32::from_bits(b as u32))
                        .collect();
                    worst(f, reference, &inputs)
                })
                .reduce(|| (0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
        };
        let (e, at) = run(exp_f32, f64::exp);
        eprintln!("exp_f32: at most {e:.4} ulp (at {at:e})");
        let (t, t_at) = run(tanh_f32, f64::tanh);
        eprintln!("tanh_f32: at most {t:.4} ulp (at {t_at:e})");
        let (r, r_at) = run(erf_f32, libm::erf);
        eprintln!("erf_f32: at most {r:.4} ulp (at {r_at:e})");
        assert!(r <= ERF_ULP, "erf: {r} ulp at {r_at:e}");
        assert!(e <= EXP_ULP, "exp: {e} ulp at {at:e}");
        assert!(t <= TANH_ULP, "tanh: {t} ulp at {t_at:e}");
    }
}
