//! Weight initialisation: Xavier/Glorot and Kaiming/He, uniform and normal, as PyTorch's `nn.init`.
//!
//! Each function returns a fresh tensor (not requiring a gradient) drawn from a
//! seeded RNG you pass. To initialise a layer, draw a new value for a parameter
//! and write it in place with [`Tensor::assign`], or build the layer from it
//! ([`Linear::from_tensors`](crate::nn::Linear::from_tensors)).
//!
//! Fans are computed as PyTorch's `_calculate_fan_in_and_fan_out` for weights laid
//! out `[out, in, k…]`: `fan_in = in · k…` and `fan_out = out · k…` (the product
//! of the trailing "receptive field" dimensions, 1 for a 2-D `[out, in]` weight).
//!
//! | function | distribution |
//! |---|---|
//! | [`xavier_uniform`] | `U(−b, b)`, `b = gain · √(6 / (fan_in + fan_out))` |
//! | [`xavier_normal`] | `N(0, σ²)`, `σ = gain · √(2 / (fan_in + fan_out))` |
//! | [`kaiming_uniform`] | `U(−b, b)`, `b = gain · √(3 / fan)` |
//! | [`kaiming_normal`] | `N(0, σ²)`, `σ = gain / √fan` |
//!
//! where `fan` is `fan_in` or `fan_out` by [`FanMode`]. PyTorch's
//! `kaiming_uniform_(w, a, mode, nonlinearity)` is
//! `kaiming_uniform(shape, calculate_gain(nonlinearity(a)), mode, rng)`: He
//! initialisation for ReLU networks is `gain = calculate_gain(Nonlinearity::Relu)`
//! (√2), and PyTorch's default for `nn.Linear` weights is
//! `calculate_gain(Nonlinearity::LeakyRelu(5f64.sqrt()))` with [`FanMode::FanIn`],
//! i.e. `U(−1/√in, 1/√in)`.
//!
//! ```
//! use ferrograd::nn::init::{calculate_gain, kaiming_normal, FanMode, Nonlinearity};
//! use ferrograd::nn::{Linear, Module};
//! use ferrograd::rand::{rngs::StdRng, SeedableRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let fc = Linear::<f32>::new(256, 128, true, &mut rng);
//! let gain = calculate_gain(Nonlinearity::Relu);
//! fc.weight().assign(&kaiming_normal(fc.weight().shape(), gain, FanMode::FanIn, &mut rng))?;
//! let w = fc.weight().to_vec();
//! let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
//! assert!((std - (2.0f32 / 256.0).sqrt()).abs() < 0.005);
//! # Ok::<(), ferrograd::Error>(())
//! ```

use rand::Rng;

use crate::element::{c, Element};
use crate::error::{or_panic, Error, Result};
use crate::tensor::Tensor;

/// Which fan Kaiming initialisation scales by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FanMode {
    /// The number of inputs of a unit (`in · k…`): preserves the variance of the
    /// activations in the forward pass. PyTorch's default.
    #[default]
    FanIn,
    /// The number of outputs (`out · k…`): preserves the variance of the
    /// gradients in the backward pass.
    FanOut,
}

/// A nonlinearity whose recommended gain [`calculate_gain`] returns.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Nonlinearity {
    /// No nonlinearity (also convolutions): gain 1.
    Linear,
    /// Sigmoid: gain 1.
    Sigmoid,
    /// Tanh: gain 5/3.
    Tanh,
    /// ReLU: gain √2.
    Relu,
    /// Leaky ReLU with this negative slope: gain √(2 / (1 + slope²)). PyTorch's
    /// default slope is 0.01.
    LeakyRelu(f64),
    /// SELU: gain 3/4.
    Selu,
}

/// The recommended gain for a nonlinearity, PyTorch's `nn.init.calculate_gain`:
/// the factor that keeps the activations' variance stable through the layers.
///
/// ```
/// use ferrograd::nn::init::{calculate_gain, Nonlinearity};
/// assert_eq!(calculate_gain(Nonlinearity::Linear), 1.0);
/// assert_eq!(calculate_gain(Nonlinearity::Relu), 2f64.sqrt());
/// assert_eq!(calculate_gain(Nonlinearity::Tanh), 5.0 / 3.0);
/// assert!((calculate_gain(Nonlinearity::LeakyRelu(0.01)) - 1.41414).abs() < 1e-5);
/// ```
pub fn calculate_gain(nonlinearity: Nonlinearity) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
        Nonlinearity::Selu => 0.75,
    }
}

/// `(fan_in, fan_out)` of a weight shaped `[out, in, k…]`: `(in · k…, out · k…)`.
///
/// ```
/// use ferrograd::nn::init::fan_in_and_fan_out;
/// assert_eq!(fan_in_and_fan_out(&[64, 32])?, (32, 64));
/// assert_eq!(fan_in_and_fan_out(&[16, 3, 5, 5])?, (75, 400)); // a conv kernel
/// assert!(fan_in_and_fan_out(&[10]).is_err());
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] for fewer than 2 dimensions, as PyTorch.
pub fn fan_in_and_fan_out(shape: &[usize]) -> Result<(usize, usize)> {
    fans("fan_in_and_fan_out", shape)
}

fn fans(op: &'static str, shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(Error::invalid(
            op,
            format!(
                "fan in and fan out cannot be computed for a shape with fewer than \
                 2 dimensions, got {shape:?}"
            ),
        ));
    }
    let receptive: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive, shape[0] * receptive))
}

/// Checks the gain and returns `scale · gain / √fan` (0 for an empty fan).
fn scaled(op: &'static str, gain: f64, scale: f64, fan: usize) -> Result<f64> {
    if !(gain.is_finite() && gain >= 0.0) {
        return Err(Error::invalid(
            op,
            format!("gain must be finite and non-negative, got {gain}"),
        ));
    }
    Ok(if fan == 0 {
        0.0
    } else {
        gain * (scale / fan as f64).sqrt()
    })
}

/// `U(−b, b)` with `b = gain · √(6 / (fan_in + fan_out))` (Glorot & Bengio, 2010),
/// PyTorch's `xavier_uniform_`. Use gain 1 for linear or sigmoid layers, and
/// [`calculate_gain`] for others.
///
/// ```
/// use ferrograd::nn::init::xavier_uniform;
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// let w = xavier_uniform::<f64, _>(&[30, 20], 1.0, &mut StdRng::seed_from_u64(0));
/// let b = (6.0f64 / 50.0).sqrt();
/// assert!(w.to_vec().iter().all(|v| v.abs() <= b));
/// ```
///
/// # Panics
/// Panics when `shape` has fewer than 2 dimensions or `gain` is negative or not finite.
#[track_caller]
pub fn xavier_uniform<T: Element, R: Rng + ?Sized>(
    shape: &[usize],
    gain: f64,
    rng: &mut R,
) -> Tensor<T> {
    let op = "xavier_uniform";
    let (fan_in, fan_out) = or_panic(fans(op, shape));
    let bound = or_panic(scaled(op, gain, 6.0, fan_in + fan_out));
    Tensor::rand_uniform(shape, c(-bound), c(bound), rng)
}

/// `N(0, σ²)` with `σ = gain · √(2 / (fan_in + fan_out))` (Glorot & Bengio, 2010),
/// PyTorch's `xavier_normal_`.
///
/// ```
/// use ferrograd::nn::init::xavier_normal;
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// let w = xavier_normal::<f32, _>(&[100, 100], 1.0, &mut StdRng::seed_from_u64(0));
/// let std = (w.square().mean().item()).sqrt();
/// assert!((std - 0.1).abs() < 0.003);
/// ```
///
/// # Panics
/// Panics when `shape` has fewer than 2 dimensions or `gain` is negative or not finite.
#[track_caller]
pub fn xavier_normal<T: Element, R: Rng + ?Sized>(
    shape: &[usize],
    gain: f64,
    rng: &mut R,
) -> Tensor<T> {
    let op = "xavier_normal";
    let (fan_in, fan_out) = or_panic(fans(op, shape));
    let std = or_panic(scaled(op, gain, 2.0, fan_in + fan_out));
    Tensor::randn(shape, rng).mul_scalar(c(std))
}

/// `U(−b, b)` with `b = gain · √(3 / fan)` (He et al., 2015), PyTorch's
/// `kaiming_uniform_`; `fan` is `fan_in` or `fan_out` by `mode`. He initialisation
/// for ReLU layers is `gain = calculate_gain(Nonlinearity::Relu)`.
///
/// ```
/// use ferrograd::nn::init::{calculate_gain, kaiming_uniform, FanMode, Nonlinearity};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// let gain = calculate_gain(Nonlinearity::Relu);
/// let w = kaiming_uniform::<f64, _>(&[10, 24], gain, FanMode::FanIn, &mut StdRng::seed_from_u64(0));
/// assert!(w.to_vec().iter().all(|v| v.abs() <= 0.5)); // b = √2 · √(3/24) = 0.5
/// ```
///
/// # Panics
/// Panics when `shape` has fewer than 2 dimensions or `gain` is negative or not finite.
#[track_caller]
pub fn kaiming_uniform<T: Element, R: Rng + ?Sized>(
    shape: &[usize],
    gain: f64,
    mode: FanMode,
    rng: &mut R,
) -> Tensor<T> {
    let op = "kaiming_uniform";
    let fan = pick(or_panic(fans(op, shape)), mode);
    let bound = or_panic(scaled(op, gain, 3.0, fan));
    Tensor::rand_uniform(shape, c(-bound), c(bound), rng)
}

/// `N(0, σ²)` with `σ = gain / √fan` (He et al., 2015), PyTorch's
/// `kaiming_normal_`; `fan` is `fan_in` or `fan_out` by `mode`.
///
/// ```
/// use ferrograd::nn::init::{kaiming_normal, FanMode};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// let w = kaiming_normal::<f64, _>(&[400, 100], 2f64.sqrt(), FanMode::FanOut, &mut StdRng::seed_from_u64(0));
/// let std = w.square().mean().item().sqrt();
/// assert!((std - (2.0f64 / 400.0).sqrt()).abs() < 0.002);
/// ```
///
/// # Panics
/// Panics when `shape` has fewer than 2 dimensions or `gain` is negative or not finite.
#[track_caller]
pub fn kaiming_normal<T: Element, R: Rng + ?Sized>(
    shape: &[usize],
    gain: f64,
    mode: FanMode,
    rng: &mut R,
) -> Tensor<T> {
    let op = "kaiming_normal";
    let fan = pick(or_panic(fans(op, shape)), mode);
    let std = or_panic(scaled(op, gain, 1.0, fan));
    Tensor::randn(shape, rng).mul_scalar(c(std))
}

fn pick((fan_in, fan_out): (usize, usize), mode: FanMode) -> usize {
    match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// (mean, std, max |v|) of a tensor.
    fn stats(t: &Tensor<f64>) -> (f64, f64, f64) {
        let v = t.to_vec();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        (mean, var.sqrt(), max)
    }

    #[test]
    fn xavier_uniform_bounds_and_std() {
        let mut rng = StdRng::seed_from_u64(1);
        // fan_in 300, fan_out 200: b = 2·√(6/500)
        let w = xavier_uniform::<f64, _>(&[200, 300], 2.0, &mut rng);
        let b = 2.0 * (6.0f64 / 500.0).sqrt();
        let (mean, std, max) = stats(&w);
        assert!(max <= b && max > 0.99 * b, "max {max} vs bound {b}");
        assert!(mean.abs() < 0.01 * b, "mean {mean}");
        // U(−b, b) has std b/√3
        assert!((std / (b / 3f64.sqrt()) - 1.0).abs() < 0.01, "std {std}");
    }

    #[test]
    fn xavier_normal_std() {
        let mut rng = StdRng::seed_from_u64(2);
        let w = xavier_normal::<f64, _>(&[250, 150], 1.5, &mut rng);
        let target = 1.5 * (2.0f64 / 400.0).sqrt();
        let (mean, std, _) = stats(&w);
        assert!(mean.abs() < 0.01 * target, "mean {mean}");
        assert!((std / target - 1.0).abs() < 0.01, "std {std} vs {target}");
    }

    #[test]
    fn kaiming_uniform_bounds_both_modes() {
        let mut rng = StdRng::seed_from_u64(3);
        let gain = calculate_gain(Nonlinearity::Relu);
        for (mode, fan) in [(FanMode::FanIn, 50.0f64), (FanMode::FanOut, 400.0)] {
            let w = kaiming_uniform::<f64, _>(&[400, 50], gain, mode, &mut rng);
            let b = gain * (3.0 / fan).sqrt();
            let (mean, std, max) = stats(&w);
            assert!(max <= b && max > 0.99 * b, "{mode:?}: max {max} vs {b}");
            assert!(mean.abs() < 0.01 * b);
            // std is gain/√fan
            assert!(
                (std / (gain / fan.sqrt()) - 1.0).abs() < 0.01,
                "{mode:?}: std {std}"
            );
        }
        assert_eq!(FanMode::default(), FanMode::FanIn);
    }

    #[test]
    fn kaiming_normal_std_with_receptive_field() {
        let mut rng = StdRng::seed_from_u64(4);
        // [out 32, in 16, 5, 5]: fan_in 400, fan_out 800
        let w = kaiming_normal::<f64, _>(&[32, 16, 5, 5], 1.0, FanMode::FanOut, &mut rng);
        let target = 1.0 / 800f64.sqrt();
        let (mean, std, _) = stats(&w);
        assert!(mean.abs() < 0.02 * target);
        assert!((std / target - 1.0).abs() < 0.015, "std {std} vs {target}");
    }

    #[test]
    fn pytorch_linear_default_is_kaiming_uniform_with_a_sqrt5() {
        let gain = calculate_gain(Nonlinearity::LeakyRelu(5f64.sqrt()));
        let bound = scaled("t", gain, 3.0, 64).unwrap();
        assert!((bound - 1.0 / 8.0).abs() < 1e-15);
    }

    #[test]
    fn reproducible_for_a_seed_and_generic() {
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (
                xavier_uniform::<f32, _>(&[8, 4], 1.0, &mut rng).to_vec(),
                xavier_normal::<f32, _>(&[8, 4], 1.0, &mut rng).to_vec(),
                kaiming_uniform::<f32, _>(&[8, 4], 1.0, FanMode::FanIn, &mut rng).to_vec(),
                kaiming_normal::<f32, _>(&[8, 4], 1.0, FanMode::FanIn, &mut rng).to_vec(),
            )
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let w = xavier_uniform::<f32, _>(&[3, 2], 1.0, &mut StdRng::seed_from_u64(0));
        assert!(!w.needs_grad());
        // an empty fan gives an empty or zero tensor, not NaN
        let e =
            kaiming_normal::<f32, _>(&[4, 0], 1.0, FanMode::FanIn, &mut StdRng::seed_from_u64(0));
        assert_eq!(e.shape(), &[4, 0]);
    }

    #[test]
    fn gains() {
        assert_eq!(calculate_gain(Nonlinearity::Sigmoid), 1.0);
        assert_eq!(calculate_gain(Nonlinearity::Selu), 0.75);
        assert!((calculate_gain(Nonlinearity::LeakyRelu(0.0)) - 2f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn errors_name_the_shape_and_gain() {
        let e = fan_in_and_fan_out(&[7]).unwrap_err();
        assert!(e.to_string().contains("[7]"), "{e}");
        assert!(scaled("kaiming_normal", -1.0, 1.0, 4).is_err());
        assert!(scaled("kaiming_normal", f64::NAN, 1.0, 4).is_err());
    }

    #[test]
    #[should_panic(expected = "xavier_uniform: fan in and fan out cannot be computed")]
    fn one_dimensional_shape_panics() {
        xavier_uniform::<f32, _>(&[5], 1.0, &mut StdRng::seed_from_u64(0));
    }
}
