//! The `f32` elementwise functions built on the crate's vectorised `exp` and
//! `tanh` (`exp`, `tanh`, `sigmoid`, `softplus`, `silu`, `gelu`), through the
//! public ops, against the same formulas in `f64`: 2²⁰ random inputs (random bit
//! patterns, so every magnitude, and uniform values where the functions change)
//! plus the edge cases (±0, subnormals, ±inf, NaN, the overflow and underflow
//! thresholds of `exp`). The exhaustive check of `exp` and `tanh` over all 2³²
//! inputs is the `#[ignore]`d unit test in `src/kernels/approx.rs`:
//! `cargo test --release --lib exhaustive_exp_tanh -- --ignored`.

use ferrograd::rand::{rngs::StdRng, RngExt, SeedableRng};
use ferrograd::Tensor;

/// The spacing of `f32` values at `|v|` (`2⁻¹⁴⁹` below the normal range).
fn ulp(v: f64) -> f64 {
    let binade = (((v.to_bits() >> 52) & 0x7ff) as i32 - 1023).clamp(-126, 127);
    2f64.powi(binade - 23)
}

/// The inputs: edge cases, then random bit patterns and uniform values in `±range`.
fn inputs(seed: u64, range: f32) -> Vec<f32> {
    let mut v = vec![
        0.0,
        f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        f32::MIN_POSITIVE,
        f32::EPSILON,
        0.3,
        8.384_527,
        1.0,
        9.01,
        9.1,
        20.0,
        87.3,
        87.336_54,
        88.0,
        88.3763,
        88.4,
        88.7,
        88.72,
        88.722_83,
        88.722_84,
        89.0,
        100.0,
        103.972,
        103.973,
        104.0,
        1e10,
        f32::MAX,
        f32::INFINITY,
        f32::NAN,
    ];
    for x in v.clone() {
        for y in [
            x,
            f32::from_bits(x.to_bits() + 1),
            f32::from_bits(x.to_bits().max(1) - 1),
        ] {
            v.extend([y, -y]);
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    v.extend((0..1 << 19).map(|_| f32::from_bits(rng.random::<u32>())));
    v.extend((0..1 << 19).map(|_| rng.random_range(-range..range)));
    v
}

/// How far `got` is from `want` in units of `tolerance(x, want)`; infinite where
/// one is NaN or infinite and the other is not the same.
fn worst(
    xs: &[f32],
    got: &[f32],
    want: impl Fn(f64) -> f64,
    tolerance: impl Fn(f64, f64) -> f64,
) -> (f64, f32) {
    xs.iter()
        .zip(got)
        .map(|(&x, &g)| {
            let w = want(f64::from(x));
            let w32 = w as f32;
            let e = if !(w32.is_finite() && g.is_finite()) {
                if g == w32 || (g.is_nan() && w32.is_nan()) {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                (f64::from(g) - w).abs() / tolerance(f64::from(x), w)
            };
            (e, x)
        })
        .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
}

/// Applies a tensor op to all inputs at once, as a model would.
fn apply(xs: &[f32], op: impl Fn(&Tensor<f32>) -> Tensor<f32>) -> Vec<f32> {
    op(&Tensor::from_vec(xs.to_vec(), &[xs.len()]).unwrap()).to_vec()
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Checks `op` against `reference` within `bound` units of `tolerance`.
fn check(
    name: &str,
    xs: &[f32],
    op: impl Fn(&Tensor<f32>) -> Tensor<f32>,
    reference: impl Fn(f64) -> f64,
    tolerance: impl Fn(f64, f64) -> f64,
    bound: f64,
) {
    let (e, at) = worst(xs, &apply(xs, op), reference, tolerance);
    eprintln!("{name}: at most {e:.3} (at {at:e})");
    assert!(
        e <= bound,
        "{name}: error {e} at x = {at:e} (bound {bound})"
    );
}

/// In ulp of the true result.
fn in_ulp(_x: f64, want: f64) -> f64 {
    ulp(want)
}

#[test]
fn exp_and_tanh_are_within_their_ulp_bounds() {
    let xs = inputs(1, 110.0);
    check("exp", &xs, Tensor::exp, f64::exp, in_ulp, 1.22);
    let xs = inputs(2, 10.0);
    check("tanh", &xs, Tensor::tanh, f64::tanh, in_ulp, 2.26);
}

#[test]
fn the_functions_built_on_them_are_accurate() {
    let xs = inputs(3, 110.0);
    // bounds with some room above the largest errors seen here (2.18, 1.52,
    // 2.83 and 0.51)
    check("sigmoid", &xs, Tensor::sigmoid, sigmoid, in_ulp, 3.0);
    check(
        "softplus",
        &xs,
        Tensor::softplus,
        |x| x.max(0.0) + (-x.abs()).exp().ln_1p(),
        in_ulp,
        2.0,
    );
    // silu(x) = x·sigmoid(x): where sigmoid(x) is subnormal (x < −87.3), its
    // rounding error (half of 2⁻¹⁴⁹) is multiplied by |x|
    check(
        "silu",
        &xs,
        Tensor::silu,
        |x| x * sigmoid(x),
        |x, want| ulp(want) + x.abs() * 2f64.powi(-149),
        4.0,
    );
    // gelu(x) = ½x(1 + tanh u) cancels for x < 0, where tanh u → −1: its error
    // there is bounded relative to |x|, not to the result
    let xs = inputs(4, 12.0);
    const K: f64 = 0.797_884_560_802_865_4;
    check(
        "gelu",
        &xs,
        Tensor::gelu,
        |x| 0.5 * x * (1.0 + (K * (x + 0.044715 * x * x * x)).tanh()),
        |x, want| ulp(want) + x.abs() * f64::from(f32::EPSILON),
        1.0,
    );
}
