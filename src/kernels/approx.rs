//! Branch-free `exp` and `tanh` for `f32` that LLVM vectorises (the C library's
//! are scalar calls, a third of a transformer step's time in GELU). Accurate to a
//! few units in the last place; `f64` keeps the C library's versions, so
//! gradient checks in `f64` see exact functions.
//!
//! `exp(x) = 2ⁿ · eʳ` with `n = round(x / ln 2)` and `r = x − n·ln 2` in
//! `[−ln 2/2, ln 2/2]`, `eʳ` by its Taylor polynomial to degree 7 (error below
//! 2⁻²⁴ relative there), `2ⁿ` built from the exponent bits. Rounding uses the
//! `1.5·2²³` trick, so no SSE4.1 `round` is needed.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n · LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding this rounds a float of magnitude below 2²² to an integer.
const ROUND: f32 = 12_582_912.0;

/// `eˣ` for `f32`, to a few ulp; inputs are clamped to `[−87.3, 88.7]`, where the
/// result stays normal and finite (so `exp(-inf) = 0` exactly is handled by the
/// caller's clamp semantics: it returns about `1.2e-38`). NaN gives NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    let xc = x.clamp(-87.3, 88.7);
    let t = xc * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    // e^r, Taylor to degree 7 by Horner
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^n from the integer in the low mantissa bits of `t`
    let bits = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let scale = f32::from_bits(((bits + 127) << 23) as u32);
    let y = p * scale;
    if x.is_nan() {
        x
    } else if x < -87.3 {
        0.0
    } else {
        y
    }
}

/// `tanh(x)` for `f32`, to a few ulp: an odd Taylor polynomial near 0 (where
/// `(e²ˣ − 1)/(e²ˣ + 1)` would cancel) and the exponential form elsewhere, chosen
/// without a branch.
#[inline(always)]
pub(crate) fn tanh_f32(x: f32) -> f32 {
    let a = x.abs().min(9.1); // tanh(9.1) rounds to 1 in f32
                              // |x| < 0.3: x − x³/3 + 2x⁵/15 − 17x⁷/315 + 62x⁹/2835 (next term < 2⁻²⁵ relative)
    let z = a * a;
    let small =
        a + a * z * (-1.0 / 3.0 + z * (2.0 / 15.0 + z * (-17.0 / 315.0 + z * (62.0 / 2835.0))));
    let e = exp_f32(2.0 * a);
    let large = (e - 1.0) / (e + 1.0);
    let y = if a < 0.3 { small } else { large };
    if x.is_nan() {
        x
    } else {
        y.copysign(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest error in ulp of `f` against the f64 reference over a sweep.
    fn max_ulp(f: fn(f32) -> f32, reference: fn(f64) -> f64, lo: f32, hi: f32) -> f64 {
        let steps = 200_000;
        (0..=steps)
            .map(|i| lo + (hi - lo) * i as f32 / steps as f32)
            .map(|x| {
                let want = reference(x as f64);
                let got = f(x) as f64;
                let ulp = (want.abs() as f32).max(f32::MIN_POSITIVE);
                let ulp = (f32::from_bits(ulp.to_bits() + 1) - ulp) as f64;
                (got - want).abs() / ulp
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn exp_is_within_a_few_ulp() {
        assert!(max_ulp(exp_f32, f64::exp, -87.0, 88.0) <= 3.0);
        assert!(max_ulp(exp_f32, f64::exp, -1.0, 1.0) <= 2.0);
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-1000.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(88.0).is_finite());
    }

    #[test]
    fn tanh_is_within_a_few_ulp() {
        assert!(max_ulp(tanh_f32, f64::tanh, -10.0, 10.0) <= 3.0);
        assert!(max_ulp(tanh_f32, f64::tanh, -0.4, 0.4) <= 2.0);
        assert!(max_ulp(tanh_f32, f64::tanh, 1e-8, 1e-3) <= 1.0);
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(20.0), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
    }
}
