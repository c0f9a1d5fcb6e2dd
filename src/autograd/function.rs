//! User-defined differentiable functions: the [`Function`] trait, applied with
//! [`Tensor::apply`], and [`with_slices`] for forwards written on raw slices.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;

use smallvec::SmallVec;

use super::{BackwardCx, InputGrads, Op, Saves};
use crate::element::Element;
use crate::error::{or_panic, Error, Result};
use crate::tensor::{Seen, Tensor};

/// An operation with its own backward rule, defined outside the crate (as
/// PyTorch's `torch.autograd.Function`).
///
/// [`forward`](Function::forward) computes the output from the inputs, with
/// tensor ops (nothing it does is recorded) or on raw slices through
/// [`with_slices`]; it saves what the backward rule needs with
/// [`ForwardCtx::save_for_backward`] and [`ForwardCtx::save_output`].
/// [`backward`](Function::backward) gets the gradient of the loss with respect
/// to the output and returns one optional gradient per input, written with
/// tensor ops. Apply the function with [`Tensor::apply`]: the output is
/// recorded as one op, named [`name`](Function::name) in `Display`
/// (`grad_fn=<name>`), errors and graph exports.
///
/// Saved tensors are version-checked as the built-in ops' are: updating one in
/// place between the forward and the backward pass makes `backward` return
/// [`Error::ModifiedInPlace`] instead of a wrong gradient.
///
/// Because the backward rule is made of tensor ops, it is differentiable
/// again: under [`grad`](crate::grad) with `create_graph`, its ops are
/// recorded, so [`gradgradcheck`](crate::gradcheck::gradgradcheck) and Hessians
/// work — they are correct when the rule is (a rule that is not the true
/// derivative, such as a straight-through estimator, is differentiated as written).
///
/// # Examples
///
/// A straight-through estimator: round in the forward pass, pass the
/// gradient through unchanged in the backward pass.
///
/// ```
/// use ferrograd::autograd::{with_slices, BackwardCtx, ForwardCtx, Function};
/// use ferrograd::{Result, Tensor};
///
/// #[derive(Clone)]
/// struct RoundSte;
///
/// impl Function<f64> for RoundSte {
///     fn name(&self) -> &'static str {
///         "round_ste"
///     }
///     fn forward(&self, _: &mut ForwardCtx<f64>, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
///         let rounded = with_slices(&[x[0]], |s| s[0].iter().map(|v| v.round()).collect());
///         Tensor::from_vec(rounded, x[0].shape())
///     }
///     fn backward(&self, _: &BackwardCtx<'_, f64>, g: &Tensor<f64>) -> Result<Vec<Option<Tensor<f64>>>> {
///         Ok(vec![Some(g.clone())])
///     }
/// }
///
/// let x = Tensor::<f64>::from_vec(vec![0.3, 1.7], &[2])?.requires_grad();
/// let y = Tensor::apply(&RoundSte, &[&x]);
/// assert_eq!(y.to_vec(), vec![0.0, 2.0]);
/// assert_eq!(y.op_name(), Some("round_ste"));
/// let grads = (&y * 3.0).sum().backward()?;
/// assert_eq!(grads.get(&x).unwrap().to_vec(), vec![3.0, 3.0]);
/// // `gradcheck` disagrees, by design: the rule is not round's derivative (0
/// // almost everywhere), so it fails, naming the element:
/// let f = |t: &[Tensor<f64>]| (Tensor::apply(&RoundSte, &[&t[0]]) * 3.0).sum();
/// assert!(ferrograd::gradcheck::gradcheck(f, &[x.clone()]).is_err());
/// // what can be checked is the rule's own derivative: the gradient it passes
/// // on (3 here) does not move with x, and the recorded rule says the same
/// ferrograd::gradcheck::gradgradcheck(f, &[x])?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// A surrogate gradient for a spiking neuron: a Heaviside step forward, the
/// derivative of `atan(α x)/π + 1/2` backward, `α / (π (1 + (α x)²))`.
/// Its rule is made of tensor ops, so [`gradcheck`](crate::gradcheck::gradcheck)
/// checks it against the smooth function it stands for (here through
/// `gradgradcheck`, which differentiates the rule once more).
///
/// ```
/// use ferrograd::autograd::{BackwardCtx, ForwardCtx, Function};
/// use ferrograd::gradcheck::gradgradcheck;
/// use ferrograd::{Result, Tensor};
///
/// #[derive(Clone)]
/// struct Spike {
///     alpha: f64,
/// }
///
/// impl Function<f64> for Spike {
///     fn name(&self) -> &'static str {
///         "spike"
///     }
///     fn forward(&self, ctx: &mut ForwardCtx<f64>, v: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
///         ctx.save_for_backward(&[v[0]]);
///         Ok(v[0].greater_scalar(0.0))                  // 1 where v > 0, else 0
///     }
///     fn backward(&self, ctx: &BackwardCtx<'_, f64>, g: &Tensor<f64>) -> Result<Vec<Option<Tensor<f64>>>> {
///         let v = &ctx.saved()[0];
///         let ax = v * self.alpha;
///         let surrogate = (ax.square() + 1.0).recip() * (self.alpha / std::f64::consts::PI);
///         Ok(vec![Some(g * &surrogate)])
///     }
/// }
///
/// let v = Tensor::<f64>::from_vec(vec![-0.5, 0.2, 1.0], &[3])?.requires_grad();
/// let spikes = Tensor::apply(&Spike { alpha: 2.0 }, &[&v]);
/// assert_eq!(spikes.to_vec(), vec![0.0, 1.0, 1.0]);
/// let g = spikes.sum().backward()?.get(&v).unwrap().to_vec();
/// assert!((g[0] - 2.0 / (std::f64::consts::PI * 2.0)).abs() < 1e-12);
/// // the rule's own derivative, checked by finite differences of the rule
/// let f = |x: &[Tensor<f64>]| Tensor::apply(&Spike { alpha: 2.0 }, &[&x[0]]).sum();
/// gradgradcheck(f, &[v.clone()])?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// A numerically stable `log(1 + exp(x))` written on raw slices (the crate
/// has [`Tensor::softplus`]; this shows how to write such an op yourself), with
/// its own backward `sigmoid(x)`, checked at first and second order:
///
/// ```
/// use ferrograd::autograd::{with_slices, BackwardCtx, ForwardCtx, Function};
/// use ferrograd::gradcheck::{gradcheck, gradgradcheck};
/// use ferrograd::{Result, Tensor};
///
/// #[derive(Clone)]
/// struct Softplus;
///
/// impl Function<f64> for Softplus {
///     fn name(&self) -> &'static str {
///         "my_softplus"
///     }
///     fn forward(&self, ctx: &mut ForwardCtx<f64>, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
///         ctx.save_for_backward(&[x[0]]);
///         // max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|
///         let out = with_slices(&[x[0]], |s| {
///             s[0].iter().map(|&v| v.max(0.0) + (-v.abs()).exp().ln_1p()).collect::<Vec<_>>()
///         });
///         Tensor::from_vec(out, x[0].shape())
///     }
///     fn backward(&self, ctx: &BackwardCtx<'_, f64>, g: &Tensor<f64>) -> Result<Vec<Option<Tensor<f64>>>> {
///         Ok(vec![Some(g * &ctx.saved()[0].sigmoid())])
///     }
/// }
///
/// let x = Tensor::<f64>::from_vec(vec![-800.0, -1.0, 0.5, 800.0], &[4])?.requires_grad();
/// let y = Tensor::apply(&Softplus, &[&x]);
/// assert_eq!(y.to_vec()[3], 800.0);                     // log(1 + e^800) without overflow
/// assert_eq!(y.to_vec()[0], 0.0);
/// let x = Tensor::<f64>::from_vec(vec![-2.0, -0.3, 0.4, 3.0], &[4])?.requires_grad();
/// let f = |x: &[Tensor<f64>]| Tensor::apply(&Softplus, &[&x[0]]);
/// gradcheck(f, &[x.clone()])?;
/// gradgradcheck(f, &[x])?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub trait Function<T: Element = f32>: Send + Sync + 'static {
    /// The op's name, as `Display` (`grad_fn=<name>`), errors and graph
    /// exports show it.
    fn name(&self) -> &'static str;

    /// Computes the output. Nothing here is recorded (it runs as under
    /// [`no_grad`](crate::no_grad)); save what `backward` needs through `ctx`.
    ///
    /// To read raw values use [`with_slices`] (or [`Tensor::to_vec`]), which
    /// holds the buffers' read locks only while its closure runs.
    fn forward(&self, ctx: &mut ForwardCtx<T>, inputs: &[&Tensor<T>]) -> Result<Tensor<T>>;

    /// Given the gradient of the loss with respect to the output, returns one
    /// entry per input: its gradient (the input's shape, or a shape the input
    /// broadcasts to, which is summed down), or `None` for no gradient (an
    /// integer-like input, or one that [`BackwardCtx::needs_input_grad`] says
    /// needs none).
    ///
    /// Written with tensor ops. It runs as plain arithmetic in a first-order
    /// backward pass and recorded under `grad(.., create_graph: true)`, so
    /// gradients of gradients flow through it.
    fn backward(
        &self,
        ctx: &BackwardCtx<'_, T>,
        grad_output: &Tensor<T>,
    ) -> Result<Vec<Option<Tensor<T>>>>;
}

/// What a [`Function`]'s forward pass leaves for its backward pass.
pub struct ForwardCtx<T: Element = f32> {
    /// Per input: its id and the buffer version noted before the forward read it.
    inputs: SmallVec<[(usize, u64); 2]>,
    needs: SmallVec<[bool; 2]>,
    saved: SmallVec<[Tensor<T>; 2]>,
    versions: SmallVec<[u64; 2]>,
    save_output: bool,
}

impl<T: Element> ForwardCtx<T> {
    /// Saves tensors for the backward pass (inputs, or values computed in the
    /// forward pass), in order: [`BackwardCtx::saved`] returns them. Saved
    /// inputs stay connected to the graph, so a backward rule that uses them
    /// can be differentiated again. Their buffer versions are noted: an
    /// in-place update before the backward pass is then an error.
    pub fn save_for_backward(&mut self, tensors: &[&Tensor<T>]) {
        for t in tensors {
            // an input's version as noted before the forward pass read it
            let version = self
                .inputs
                .iter()
                .find(|&&(id, _)| id == t.0.id)
                .map_or_else(|| t.storage().version(), |&(_, v)| v);
            self.saved.push((*t).clone());
            self.versions.push(version);
        }
    }

    /// Lets the backward pass read the output ([`BackwardCtx::output`]), as
    /// the rules of `exp`, `tanh` or `sigmoid` do, version-checked like the
    /// saved tensors. (The output cannot be saved as a tensor: it does not
    /// exist yet while the forward pass runs.)
    pub fn save_output(&mut self) {
        self.save_output = true;
    }

    /// True when input `i` will want a gradient (the function is recorded and
    /// the input needs one): skip saving what only its gradient would use.
    pub fn needs_input_grad(&self, i: usize) -> bool {
        self.needs.get(i).copied().unwrap_or(false)
    }
}

/// What a [`Function`]'s backward rule may look at.
pub struct BackwardCtx<'a, T: Element = f32> {
    cx: &'a BackwardCx<'a, T>,
    /// The function's name, for messages.
    name: &'static str,
    saved: &'a [Tensor<T>],
    save_output: bool,
}

impl<T: Element> BackwardCtx<'_, T> {
    /// The tensors saved by [`ForwardCtx::save_for_backward`], in order.
    pub fn saved(&self) -> &[Tensor<T>] {
        self.saved
    }

    /// The output of the forward pass.
    ///
    /// # Panics
    /// Panics unless the forward pass called [`ForwardCtx::save_output`].
    #[track_caller]
    pub fn output(&self) -> &Tensor<T> {
        assert!(
            self.save_output,
            "{}: backward reads the output, but forward did not call ctx.save_output()",
            self.name
        );
        self.cx.output
    }

    /// True when input `i` wants a gradient in this backward pass (return
    /// `None` for the others to save work).
    pub fn needs_input_grad(&self, i: usize) -> bool {
        i < self.cx.edges.len() && self.cx.needs(i)
    }

    /// How many inputs the function was applied to.
    pub fn num_inputs(&self) -> usize {
        self.cx.inputs.len()
    }

    /// The shape of input `i`.
    ///
    /// # Panics
    /// Panics when `i` is out of range.
    #[track_caller]
    pub fn input_shape(&self, i: usize) -> &[usize] {
        self.cx.inputs[i].shape()
    }

    /// True when the backward pass records (`grad(.., create_graph: true)`):
    /// the returned gradients will be differentiated again.
    pub fn create_graph(&self) -> bool {
        self.cx.create_graph
    }
}

/// Runs `f` on the elements of each tensor as a row-major slice (strided
/// tensors are copied), holding the buffers' read locks only while `f` runs.
///
/// Use it in a [`Function`]'s forward (or anywhere) to compute on raw values.
/// Inside `f`, do not call tensor ops on the same tensors, nor update them:
/// a read lock held while another thread waits to write would block them.
///
/// ```
/// use ferrograd::{autograd::with_slices, Tensor};
/// let a = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?;
/// let dot = with_slices(&[&a, &a.t()], |s| {
///     assert_eq!(s[1], &[1.0, 3.0, 2.0, 4.0]);          // the transpose, row-major
///     s[0].iter().zip(s[1]).map(|(x, y)| x * y).sum::<f32>()
/// });
/// assert_eq!(dot, 1.0 + 6.0 + 6.0 + 16.0);
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub fn with_slices<T: Element, R>(tensors: &[&Tensor<T>], f: impl FnOnce(&[&[T]]) -> R) -> R {
    let read = crate::ops::ReadMany::new(tensors);
    let views: Vec<Cow<'_, [T]>> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let buf = read.get(i);
            match t.layout().contiguous_range() {
                Some(r) => Cow::Borrowed(&buf[r]),
                None => Cow::Owned(crate::kernels::elementwise::map(
                    buf,
                    t.layout(),
                    crate::ops::Cheap,
                    |v| v,
                )),
            }
        })
        .collect();
    let slices: Vec<&[T]> = views.iter().map(|c| &**c).collect();
    f(&slices)
}

/// A [`Function`] as recorded in the graph, with what it saved.
struct CustomOp<T: Element, F> {
    f: AssertUnwindSafe<F>,
    saved: SmallVec<[Tensor<T>; 2]>,
    versions: SmallVec<[u64; 2]>,
    save_output: bool,
}

impl<T: Element, F: Function<T>> Op<T> for CustomOp<T, F> {
    fn name(&self) -> &'static str {
        self.f.name()
    }

    fn saves(&self) -> Saves {
        Saves::Custom
    }

    fn backward(&self, _: &BackwardCx<'_, T>, _: Tensor<T>) -> InputGrads<T> {
        unreachable!("internal error: a Function's rule runs through try_backward")
    }

    fn try_backward(&self, cx: &BackwardCx<'_, T>, grad: Tensor<T>) -> Result<InputGrads<T>> {
        let name = self.f.name();
        let ctx = BackwardCtx {
            cx,
            name,
            saved: &self.saved,
            save_output: self.save_output,
        };
        let grads = self.f.backward(&ctx, &grad)?;
        drop(grad);
        if grads.len() != cx.inputs.len() {
            return Err(Error::invalid(
                name,
                format!(
                    "backward returned {} gradients for {} inputs",
                    grads.len(),
                    cx.inputs.len()
                ),
            ));
        }
        let mut out = InputGrads::new();
        for (i, (g, input)) in grads.into_iter().zip(cx.inputs).enumerate() {
            let g = match g {
                Some(g) if cx.needs(i) => g,
                _ => {
                    out.push(None);
                    continue;
                }
            };
            let fits = g.shape() == input.shape()
                || crate::shape::broadcast_shapes(input.shape(), g.shape()).as_deref()
                    == Some(g.shape());
            if !fits {
                return Err(Error::invalid(
                    name,
                    format!(
                        "backward returned a gradient of shape {:?} for input {i} of shape {:?}",
                        g.shape(),
                        input.shape()
                    ),
                ));
            }
            out.push(Some(g));
        }
        Ok(out)
    }

    fn check_custom(&self, output: &Tensor<T>) -> Result<()> {
        let name = self.f.name();
        for (j, (t, &saved)) in self.saved.iter().zip(&self.versions).enumerate() {
            let current = t.storage().version();
            if current != saved {
                return Err(Error::ModifiedInPlace {
                    op: name,
                    which: format!("saved tensor {j}"),
                    saved,
                    current,
                });
            }
        }
        if self.save_output {
            let saved = output.0.out_version;
            let current = output.storage().version();
            if current != saved {
                return Err(Error::ModifiedInPlace {
                    op: name,
                    which: "output".into(),
                    saved,
                    current,
                });
            }
        }
        Ok(())
    }
}

impl<T: Element> Tensor<T> {
    /// Applies a user-defined [`Function`] to `inputs`: runs its forward pass
    /// and, when recording is on and an input needs a gradient, records it as
    /// one op whose backward is the function's (see [`Function`] for examples).
    /// The function is cloned into the graph (keep it small, or behind an `Arc`).
    ///
    /// # Panics
    /// Panics with the function's error when its forward pass fails; see
    /// [`try_apply`](Tensor::try_apply).
    #[track_caller]
    pub fn apply<F: Function<T> + Clone>(f: &F, inputs: &[&Tensor<T>]) -> Tensor<T> {
        or_panic(Self::try_apply(f, inputs))
    }

    /// Like [`apply`](Tensor::apply), returning the forward pass's error
    /// instead of panicking.
    pub fn try_apply<F: Function<T> + Clone>(f: &F, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let seen = Seen::note(inputs);
        let recording = seen.versions().is_some();
        let mut ctx = ForwardCtx {
            inputs: match seen.versions() {
                Some(v) => inputs
                    .iter()
                    .map(|t| t.0.id)
                    .zip(v.iter().copied())
                    .collect(),
                None => SmallVec::new(),
            },
            needs: inputs.iter().map(|t| recording && t.needs_grad()).collect(),
            saved: SmallVec::new(),
            versions: SmallVec::new(),
            save_output: false,
        };
        let out = {
            let _off = super::no_grad();
            f.forward(&mut ctx, inputs)?
        };
        let op = CustomOp {
            f: AssertUnwindSafe(f.clone()),
            saved: ctx.saved,
            versions: ctx.versions,
            save_output: ctx.save_output,
        };
        Ok(Self::from_op(
            seen,
            out.storage().clone(),
            out.layout().clone(),
            op,
            inputs,
        ))
    }
}
