//! Finite-difference gradient checking: compare what `backward` computes with
//! central differences, element by element ([`gradcheck`]), and second
//! derivatives with central differences of the analytic gradient
//! ([`gradgradcheck`]). Meant for users' own unit tests.
//!
//! ```
//! use ferrograd::{gradcheck::gradcheck, Tensor};
//! let x = Tensor::<f64>::from_vec(vec![0.3, -1.2, 2.0], &[3])?.requires_grad();
//! let w = Tensor::<f64>::from_vec(vec![0.5, 0.1, -0.7, 1.1, 0.2, 0.0], &[3, 2])?.requires_grad();
//! let report = gradcheck(|t| t[0].matmul(&t[1]).tanh(), &[x, w])?;
//! assert_eq!(report.elements_checked, 9);
//! # Ok::<(), ferrograd::Error>(())
//! ```

use std::cell::RefCell;

use crate::autograd::{enable_grad, grad, no_grad, GradOptions};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::nn::Module;
use crate::shape::unravel;
use crate::storage::Storage;
use crate::tensor::Tensor;
use rand::SeedableRng;

/// What the checked function returns: a [`Tensor`], or a [`Result`] of one (so
/// that `f` can use `?`, e.g. on a loss). An `Err` from `f` ends the check
/// with that error.
///
/// ```
/// use ferrograd::{gradcheck::gradcheck, loss::mse, Tensor};
/// let p = Tensor::<f64>::from_vec(vec![0.2, 0.9], &[2])?.requires_grad();
/// let y = Tensor::<f64>::from_vec(vec![0.0, 1.0], &[2])?;
/// gradcheck(|t| mse(&t[0].tanh(), &y), &[p])?;      // f returns Result<Tensor>
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub trait CheckOutput {
    /// The output tensor, or the error `f` returned.
    fn into_output(self) -> Result<Tensor<f64>>;
}

impl CheckOutput for Tensor<f64> {
    fn into_output(self) -> Result<Tensor<f64>> {
        Ok(self)
    }
}

impl CheckOutput for Result<Tensor<f64>> {
    fn into_output(self) -> Result<Tensor<f64>> {
        self
    }
}

/// Settings of a gradient check; `Default` is PyTorch's (`eps` 1e-6, `atol` 1e-5,
/// `rtol` 1e-3).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GradCheck {
    /// The step of the central difference `(f(x + eps) − f(x − eps)) / 2eps`.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (relative to the numeric value).
    pub rtol: f64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
        }
    }
}

/// What a passing check covered.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheckReport {
    /// How many inputs required a gradient and were checked.
    pub inputs_checked: usize,
    /// How many input elements were perturbed.
    pub elements_checked: usize,
    /// How many output elements (Jacobian rows) were compared.
    pub outputs: usize,
    /// The largest `|analytic − numeric|` seen.
    pub max_abs_error: f64,
}

/// Checks `f`'s gradients with the default settings; see [`GradCheck::check`].
///
/// # Errors
/// [`Error::GradCheck`] naming the input, element and output where the analytic
/// and numeric gradients disagree, with both values.
pub fn gradcheck<F, R>(f: F, inputs: &[Tensor<f64>]) -> Result<GradCheckReport>
where
    F: Fn(&[Tensor<f64>]) -> R,
    R: CheckOutput,
{
    GradCheck::default().check(f, inputs)
}

impl GradCheck {
    /// Compares, for every input that requires a gradient, every element and every
    /// output element, the gradient from `backward` with the central difference
    /// `(f(x + eps) − f(x − eps)) / 2eps`. They agree when
    /// `|analytic − numeric| ≤ atol + rtol·|numeric|`.
    ///
    /// `f` may return any shape: each output element's row of the Jacobian is
    /// checked (one backward pass per output element). Inputs that do not
    /// require a gradient are held constant. A strided input (a transposed or
    /// narrowed view made a leaf) is perturbed through its own layout, so `f`
    /// sees the same strides it would in training.
    ///
    /// ```
    /// use ferrograd::{gradcheck::GradCheck, Error, Tensor};
    /// let x = Tensor::<f64>::from_vec(vec![0.5, 1.5], &[2])?.requires_grad();
    /// // a wrong derivative: detach hides x from backward on one side
    /// let err = GradCheck::default().check(|t| &t[0] * &t[0].detach(), &[x]).unwrap_err();
    /// assert!(matches!(err, Error::GradCheck { input: 0, element: 0, .. }));
    /// assert!(err.to_string().starts_with("gradcheck: input 0, element 0 (index [0]), output element 0"));
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::GradCheck`] at the first disagreement; [`Error::InvalidArgument`]
    /// when no input requires a gradient, an input requiring one is not a leaf, or
    /// `f` returns differently shaped outputs for perturbed inputs.
    pub fn check<F, R>(&self, f: F, inputs: &[Tensor<f64>]) -> Result<GradCheckReport>
    where
        F: Fn(&[Tensor<f64>]) -> R,
        R: CheckOutput,
    {
        let wanted: Vec<usize> = (0..inputs.len())
            .filter(|&i| inputs[i].needs_grad())
            .collect();
        if wanted.is_empty() {
            return Err(Error::invalid(
                "gradcheck",
                "no input requires a gradient; mark inputs with requires_grad()",
            ));
        }
        if let Some(&i) = wanted.iter().find(|&&i| !inputs[i].is_leaf()) {
            return Err(Error::invalid(
                "gradcheck",
                format!("input {i} requires a gradient but is not a leaf; pass leaves made with requires_grad()"),
            ));
        }

        // Analytic Jacobian rows, one backward pass per output element.
        let out = f(inputs).into_output()?;
        let out_shape = out.shape().to_vec();
        let m = out.numel();
        let leaves: Vec<&Tensor<f64>> = wanted.iter().map(|&i| &inputs[i]).collect();
        let analytic = jacobian_rows(out, &leaves)?;

        // Numeric columns, two forward passes per input element.
        let _guard = no_grad();
        let mut report = GradCheckReport {
            inputs_checked: wanted.len(),
            elements_checked: 0,
            outputs: m,
            max_abs_error: 0.0,
        };
        for (w, &i) in wanted.iter().enumerate() {
            let x = &inputs[i];
            let n = x.numel();
            for k in 0..n {
                let eval = |delta: f64| -> Result<Vec<f64>> {
                    let mut args = inputs.to_vec();
                    args[i] = perturbed(x, k, delta);
                    same_shape("gradcheck", "input", f(&args).into_output()?, &out_shape)
                };
                let (plus, minus) = (eval(self.eps)?, eval(-self.eps)?);
                let column = |j: usize| analytic[w][j * n + k];
                if let Some((output, analytic, numeric)) =
                    self.compare(&plus, &minus, column, &mut report)
                {
                    return Err(Error::GradCheck {
                        input: i,
                        element: k,
                        index: unravel(k, x.shape()),
                        output,
                        analytic,
                        numeric,
                        atol: self.atol,
                        rtol: self.rtol,
                    });
                }
            }
        }
        Ok(report)
    }
}

/// Checks `f`'s second derivatives with the default settings; see
/// [`GradCheck::check_gradgrad`].
///
/// ```
/// use ferrograd::{gradcheck::gradgradcheck, Tensor};
/// let x = Tensor::<f64>::from_vec(vec![0.3, -1.2, 2.0], &[3])?.requires_grad();
/// let w = Tensor::<f64>::from_vec(vec![0.5, 0.1, -0.7, 1.1, 0.2, 0.0], &[3, 2])?.requires_grad();
/// gradgradcheck(|t| t[0].matmul(&t[1]).tanh(), &[x, w])?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::GradGradCheck`] naming the gradient element and the input element
/// where the analytic and numeric second derivatives disagree, with both values.
pub fn gradgradcheck<F, R>(f: F, inputs: &[Tensor<f64>]) -> Result<GradCheckReport>
where
    F: Fn(&[Tensor<f64>]) -> R,
    R: CheckOutput,
{
    GradCheck::default().check_gradgrad(f, inputs)
}

impl GradCheck {
    /// Checks second derivatives, as PyTorch's `gradgradcheck`: the gradient of
    /// `f` (seeded with a random upstream `u` that itself requires a gradient, so
    /// that a rule which cuts its incoming gradient from the graph is caught)
    /// is taken with `create_graph`, and [`check`](GradCheck::check) compares its
    /// derivatives with respect to every input and to `u` with central
    /// differences of the analytic gradient.
    ///
    /// The report counts `u` among the inputs checked. `u` is drawn from a
    /// fixed seed, so a check is repeatable.
    ///
    /// ```
    /// use ferrograd::{gradcheck::GradCheck, Error, Tensor};
    /// let x = Tensor::<f64>::from_vec(vec![0.5, 1.5], &[2])?.requires_grad();
    /// // x·stopgrad(x): the first derivative is right at x = x₀ only in value
    /// let err = GradCheck::default().check_gradgrad(|t| &t[0] * &t[0].detach() * &t[0], &[x]).unwrap_err();
    /// assert!(matches!(err, Error::GradGradCheck { grad_of: 0, .. }));
    /// assert!(err.to_string().starts_with("gradgradcheck: d(gradient of input 0, element 0 (index [0])) / d(input 0"));
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::GradGradCheck`] at the first disagreement; the errors of
    /// [`check`](GradCheck::check) for bad inputs; any error the inner
    /// [`grad`] returns.
    pub fn check_gradgrad<F, R>(&self, f: F, inputs: &[Tensor<f64>]) -> Result<GradCheckReport>
    where
        F: Fn(&[Tensor<f64>]) -> R,
        R: CheckOutput,
    {
        let wanted: Vec<usize> = (0..inputs.len())
            .filter(|&i| inputs[i].needs_grad())
            .collect();
        let n = inputs.len();
        let out_shape = {
            let _on = enable_grad();
            f(inputs).into_output()?.shape().to_vec()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let mut args = inputs.to_vec();
        args.push(Tensor::randn(&out_shape, &mut rng).requires_grad());
        let failure: RefCell<Option<Error>> = RefCell::new(None);
        // The gradients of f with respect to the wanted inputs, seeded with the
        // last argument and recorded, flattened into one vector.
        let gradient = |args: &[Tensor<f64>]| -> Tensor<f64> {
            // recording on even in gradcheck's numeric passes (which run under no_grad)
            let _on = enable_grad();
            let xs: Vec<Tensor<f64>> = args[..n]
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    if wanted.contains(&i) && !a.needs_grad() {
                        a.requires_grad()
                    } else {
                        a.clone()
                    }
                })
                .collect();
            let targets: Vec<&Tensor<f64>> = wanted.iter().map(|&i| &xs[i]).collect();
            let options = GradOptions {
                create_graph: true,
                allow_unused: true,
                upstream: Some(args[n].clone()),
            };
            match f(&xs)
                .into_output()
                .and_then(|y| grad(&y, &targets, options))
            {
                Ok(gs) => {
                    let flat: Vec<Tensor<f64>> =
                        gs.iter().map(|g| g.reshape(&[g.numel()])).collect();
                    let refs: Vec<&Tensor<f64>> = flat.iter().collect();
                    if refs.is_empty() {
                        Tensor::zeros(&[0])
                    } else {
                        Tensor::cat(&refs, 0)
                    }
                }
                Err(e) => {
                    failure.borrow_mut().get_or_insert(e);
                    Tensor::zeros(&[wanted.iter().map(|&i| args[i].numel()).sum()])
                }
            }
        };
        let result = self.check(gradient, &args);
        if let Some(e) = failure.into_inner() {
            return Err(e);
        }
        result.map_err(|e| match e {
            Error::GradCheck {
                input,
                element,
                index,
                output,
                analytic,
                numeric,
                atol,
                rtol,
            } => {
                // `output` indexes the concatenated gradients: find whose it is
                let mut start = 0;
                let mut grad_of = wanted[0];
                for &i in &wanted {
                    if output < start + inputs[i].numel() {
                        grad_of = i;
                        break;
                    }
                    start += inputs[i].numel();
                }
                let grad_element = output - start;
                Error::GradGradCheck {
                    grad_of,
                    grad_element,
                    grad_index: unravel(grad_element, inputs[grad_of].shape()),
                    wrt_input: (input < n).then_some(input),
                    wrt_element: element,
                    wrt_index: index,
                    analytic,
                    numeric,
                    atol,
                    rtol,
                }
            }
            other => other,
        })
    }
}

/// Checks the gradients of `f(module)` with respect to the module's own
/// parameters, with the default settings; see [`GradCheck::check_module`].
///
/// ```
/// use ferrograd::gradcheck::gradcheck_module;
/// use ferrograd::nn::{Activation, Mlp, Module};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// use ferrograd::Tensor;
/// let mut rng = StdRng::seed_from_u64(0);
/// let model = Mlp::<f64>::new(&[3, 5, 2], Activation::Tanh, &mut rng);
/// let x = Tensor::<f64>::randn(&[4, 3], &mut rng);
/// let report = gradcheck_module(&model, |m| m.forward(&x).square().sum())?;
/// assert_eq!(report.inputs_checked, 4);                    // 2 weights, 2 biases
/// assert_eq!(report.elements_checked, 3 * 5 + 5 + 5 * 2 + 2);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::GradCheckParameter`] naming the parameter, element and output
/// where the analytic and numeric gradients disagree.
pub fn gradcheck_module<M, F, R>(module: &M, f: F) -> Result<GradCheckReport>
where
    M: Module<f64> + ?Sized,
    F: Fn(&M) -> R,
    R: CheckOutput,
{
    GradCheck::default().check_module(module, f)
}

impl GradCheck {
    /// Compares the gradients of `f(module)` with respect to every parameter of
    /// `module` that requires a gradient (frozen ones are left out) with central
    /// differences, as [`check`](GradCheck::check) does for explicit inputs.
    /// The parameters are moved by `±eps` in place, one element at a time, and
    /// restored exactly afterwards (also when the check fails), so `f` calls the
    /// module as training would, through its own `forward`.
    ///
    /// The report's `inputs_checked` counts the parameters checked.
    ///
    /// # Errors
    /// [`Error::GradCheckParameter`] at the first disagreement;
    /// [`Error::InvalidArgument`] when no parameter requires a gradient or `f`
    /// returns differently shaped outputs; any error `f` returns.
    pub fn check_module<M, F, R>(&self, module: &M, f: F) -> Result<GradCheckReport>
    where
        M: Module<f64> + ?Sized,
        F: Fn(&M) -> R,
        R: CheckOutput,
    {
        let params: Vec<(String, Tensor<f64>)> = module
            .named_parameters()
            .into_iter()
            .filter(|(_, p)| p.needs_grad())
            .collect();
        if params.is_empty() {
            return Err(Error::invalid(
                "gradcheck_module",
                "no parameter of the module requires a gradient",
            ));
        }
        let out = {
            let _on = enable_grad();
            f(module).into_output()?
        };
        let out_shape = out.shape().to_vec();
        let m = out.numel();
        let leaves: Vec<&Tensor<f64>> = params.iter().map(|(_, p)| p).collect();
        let analytic = jacobian_rows(out, &leaves)?;

        let _guard = no_grad();
        let mut report = GradCheckReport {
            inputs_checked: params.len(),
            elements_checked: 0,
            outputs: m,
            max_abs_error: 0.0,
        };
        for ((name, p), rows) in params.iter().zip(&analytic) {
            let n = p.numel();
            let values = p.to_vec();
            for (k, &original) in values.iter().enumerate() {
                let eval = |value: f64| -> Result<Vec<f64>> {
                    p.update_with(|d| d[k] = value);
                    let y = f(module).into_output();
                    p.update_with(|d| d[k] = original);
                    same_shape("gradcheck_module", "parameter", y?, &out_shape)
                };
                let plus = eval(original + self.eps)?;
                let minus = eval(original - self.eps)?;
                let column = |j: usize| rows[j * n + k];
                if let Some((output, analytic, numeric)) =
                    self.compare(&plus, &minus, column, &mut report)
                {
                    return Err(Error::GradCheckParameter {
                        name: name.clone(),
                        element: k,
                        index: unravel(k, p.shape()),
                        output,
                        analytic,
                        numeric,
                        atol: self.atol,
                        rtol: self.rtol,
                    });
                }
            }
        }
        Ok(report)
    }
}

impl GradCheck {
    /// Compares one input element's column of the Jacobian: the central
    /// differences from the outputs at `+eps` and `−eps` against `analytic(j)`
    /// for each output element `j`. Returns the first disagreement as
    /// `(j, analytic, numeric)`; otherwise counts the element in `report`.
    fn compare(
        &self,
        plus: &[f64],
        minus: &[f64],
        analytic: impl Fn(usize) -> f64,
        report: &mut GradCheckReport,
    ) -> Option<(usize, f64, f64)> {
        for (j, (p, m)) in plus.iter().zip(minus).enumerate() {
            let numeric = (p - m) / (2.0 * self.eps);
            let a = analytic(j);
            let diff = (a - numeric).abs();
            if diff.is_nan() || diff > self.atol + self.rtol * numeric.abs() {
                return Some((j, a, numeric));
            }
            report.max_abs_error = report.max_abs_error.max(diff);
        }
        report.elements_checked += 1;
        None
    }
}

/// The analytic Jacobian of `out` with respect to each of `leaves`, one row per
/// output element (one backward pass each): entry `[w][j·n + k]` is
/// `∂out[j] / ∂leaves[w][k]`, zero where backward does not reach the leaf.
fn jacobian_rows(out: Tensor<f64>, leaves: &[&Tensor<f64>]) -> Result<Vec<Vec<f64>>> {
    let m = out.numel();
    let mut rows: Vec<Vec<f64>> = leaves.iter().map(|x| vec![0.0; m * x.numel()]).collect();
    if out.needs_grad() {
        for j in 0..m {
            let mut e = vec![0.0; m];
            e[j] = 1.0;
            let grads = out.backward_with(&Tensor::from_vec(e, out.shape())?)?;
            for (x, row) in leaves.iter().zip(&mut rows) {
                if let Some(g) = grads.get(x) {
                    let n = x.numel();
                    row[j * n..(j + 1) * n].copy_from_slice(&g.to_vec());
                }
            }
        }
    }
    Ok(rows)
}

/// `y`'s values, or the error of `op` when a perturbed `what` changed the
/// output's shape from `shape`.
fn same_shape(op: &'static str, what: &str, y: Tensor<f64>, shape: &[usize]) -> Result<Vec<f64>> {
    if y.shape() != shape {
        return Err(Error::invalid(
            op,
            format!(
                "f returned shape {:?} for a perturbed {what}, {shape:?} before",
                y.shape()
            ),
        ));
    }
    Ok(y.to_vec())
}

/// A copy of `x` with its `k`-th element (row-major) moved by `delta`, keeping
/// `x`'s strides when no two elements share a slot.
fn perturbed(x: &Tensor<f64>, k: usize, delta: f64) -> Tensor<f64> {
    let layout = x.layout();
    if layout.is_non_overlapping() {
        let mut data = x.read().to_vec();
        data[layout.offset_of(&unravel(k, x.shape()))] += delta;
        Tensor::from_parts(Storage::new(data), layout.clone(), false)
    } else {
        let mut data = x.to_vec();
        data[k] += delta;
        Tensor::from_parts(Storage::new(data), Layout::contiguous(x.shape()), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_correct_and_catches_wrong_gradients() {
        let x = Tensor::<f64>::from_vec(vec![0.5, -1.0, 2.0, 0.25], &[2, 2])
            .unwrap()
            .requires_grad();
        let r = gradcheck(|t| t[0].matmul(&t[0]).exp(), &[x.clone()]).unwrap();
        assert_eq!(r.elements_checked, 4);
        assert_eq!(r.outputs, 4);
        // f(x) = x * stopgrad(x): analytic gradient x, numeric 2x
        let e = gradcheck(|t| t[0].mul(&t[0].detach()).sum(), &[x.clone()]).unwrap_err();
        match e {
            Error::GradCheck {
                input,
                element,
                analytic,
                numeric,
                ..
            } => {
                assert_eq!((input, element), (0, 0));
                assert!((analytic - 0.5).abs() < 1e-12);
                assert!((numeric - 1.0).abs() < 1e-6);
            }
            other => panic!("unexpected {other}"),
        }
        // constants are held fixed; a strided leaf keeps its strides
        let c = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2]).unwrap();
        gradcheck(|t| t[0].mul(&t[1]), &[x.t().requires_grad(), c.clone()]).unwrap();
        assert!(
            gradcheck(|t| t[0].clone(), &[c]).is_err(),
            "nothing requires a gradient"
        );
        let nonleaf = &x * 2.0;
        assert!(gradcheck(|t| t[0].clone(), &[nonleaf]).is_err());
    }
}
