//! The crate's error type and `Result` alias.

use std::fmt;

/// Everything that can go wrong in `ferrograd`, with the values involved.
///
/// Methods that combine shapes (`matmul`, `add`, `reshape`, …) panic with this
/// error's message; their `try_` twins (`try_matmul`, `try_add`, `try_reshape`, …)
/// return it instead.
///
/// ```
/// use ferrograd::{Error, Tensor};
/// let a = Tensor::<f32>::zeros(&[2, 3]);
/// let b = Tensor::<f32>::zeros(&[4, 5]);
/// let err = a.try_matmul(&b).unwrap_err();
/// assert!(matches!(err, Error::ShapeMismatch { op: "matmul", .. }));
/// assert_eq!(err.to_string(), "matmul: incompatible shapes [2, 3] and [4, 5]");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two shapes that an op combines do not fit together.
    #[error("{op}: incompatible shapes {lhs:?} and {rhs:?}")]
    ShapeMismatch {
        /// The op that was called.
        op: &'static str,
        /// The shape of the first operand.
        lhs: Vec<usize>,
        /// The shape of the second operand (or the requested shape).
        rhs: Vec<usize>,
    },
    /// An axis argument is out of range for the tensor's rank.
    #[error(
        "{op}: axis {axis} is out of range for shape {shape:?} ({valid})",
        valid = valid_axes(*ndim)
    )]
    InvalidAxis {
        /// The op that was called.
        op: &'static str,
        /// The axis that was given.
        axis: isize,
        /// The rank the axis was checked against (one more than the tensor's for
        /// ops that insert an axis: `unsqueeze`, `stack`).
        ndim: usize,
        /// The shape of the tensor.
        shape: Vec<usize>,
    },
    /// A buffer's length does not match the requested shape.
    #[error("{op}: {len} values cannot fill shape {shape:?} ({expected} elements)")]
    LengthMismatch {
        /// The constructor that was called.
        op: &'static str,
        /// The number of values given.
        len: usize,
        /// The requested shape.
        shape: Vec<usize>,
        /// The number of elements the shape holds.
        expected: usize,
    },
    /// `backward()` was called on a tensor that does not hold exactly one element.
    #[error(
        "backward: expected a tensor with exactly one element, got shape {shape:?} \
         (use backward_with(&upstream) for a vector-Jacobian product)"
    )]
    NotScalar {
        /// The shape of the tensor backward was called on.
        shape: Vec<usize>,
    },
    /// `backward` was called on a tensor that no gradient-requiring leaf leads to.
    #[error(
        "backward: the tensor does not require a gradient (no leaf made with \
         requires_grad() leads to it, or it was built under no_grad)"
    )]
    NoGraph,
    /// `backward` or [`grad`](crate::grad) was called on a tensor that needs no
    /// gradient because it was computed from a gradient taken without
    /// `create_graph`: such a gradient is a plain value with no graph behind it.
    #[error(
        "cannot differentiate a tensor that was computed from a gradient taken \
         without create_graph: such a gradient carries no graph; take it with \
         grad(.., GradOptions {{ create_graph: true, .. }}) to differentiate it again"
    )]
    GradientWithoutGraph,
    /// [`grad`](crate::grad) was asked for the gradient of an output with more than
    /// one element without an upstream gradient.
    #[error(
        "grad: the output has shape {shape:?}, not a single element; pass the \
         gradient to seed it with as GradOptions {{ upstream: Some(..), .. }} (a \
         tensor of that shape: the result is the vector-Jacobian product)"
    )]
    NeedsUpstream {
        /// The output's shape.
        shape: Vec<usize>,
    },
    /// [`grad`](crate::grad) was asked for the gradient with respect to a tensor
    /// the output does not depend on.
    #[error(
        "grad: input {position} (shape {shape:?}) is not used to compute the output \
         (or does not require a gradient); pass allow_unused: true in GradOptions \
         to get zeros for it"
    )]
    UnusedInput {
        /// The input's position in the slice given to `grad`.
        position: usize,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// An index is out of range for the axis it selects along.
    #[error("{op}: index {index} is out of range for an axis of size {size} (shape {shape:?})")]
    IndexOutOfRange {
        /// The op that was called.
        op: &'static str,
        /// The offending index.
        index: usize,
        /// The size of the axis.
        size: usize,
        /// The shape of the tensor indexed (the table, the scores, …).
        shape: Vec<usize>,
    },
    /// A tensor that a backward rule needs was updated in place after it was saved.
    #[error(
        "backward of {op}: its {which} was modified in place after the forward \
         pass saved it (version {saved}, now {current}); run the forward pass again \
         after updating parameters"
    )]
    ModifiedInPlace {
        /// The op whose backward rule needed the tensor.
        op: &'static str,
        /// Which of the op's tensors was modified (`"input 1"`, `"output"`).
        which: String,
        /// The buffer version when the op was recorded.
        saved: u64,
        /// The buffer version now.
        current: u64,
    },
    /// In [anomaly mode](crate::detect_anomaly), an op's backward rule produced
    /// a NaN or an infinity: the op, the shapes of its inputs, and where the op
    /// was created (the first stack frame outside ferrograd).
    #[error(
        "anomaly: the backward of `{op}` (input shapes {input_shapes:?}) produced {value} \
         in the gradient of input {input}; the op was created {location}"
    )]
    Anomaly {
        /// The op whose backward rule produced the value.
        op: &'static str,
        /// Which input's gradient holds it.
        input: usize,
        /// `"NaN"` or `"an infinity"`.
        value: &'static str,
        /// The shapes of the op's inputs.
        input_shapes: Vec<Vec<usize>>,
        /// Where the op was created: `at FILE:LINE:COL (in FUNCTION)`, or why
        /// that is not known.
        location: String,
    },
    /// An argument is outside the values an op accepts.
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The op that was called.
        op: &'static str,
        /// What is wrong with the argument.
        msg: String,
    },
    /// An analytic gradient disagrees with its finite-difference estimate.
    #[error(
        "gradcheck: input {input}, element {element} (index {index:?}), output element \
         {output}: analytic gradient {analytic:.8e} vs numeric {numeric:.8e} \
         (|difference| {diff:.3e} exceeds atol {atol:e} + rtol {rtol:e} * |numeric|)",
        diff = (analytic - numeric).abs()
    )]
    GradCheck {
        /// The position of the input in the slice given to `gradcheck`.
        input: usize,
        /// The row-major flat index of the element within that input.
        element: usize,
        /// The same element as a multi-index.
        index: Vec<usize>,
        /// The row-major flat index of the output element whose Jacobian row failed.
        output: usize,
        /// The gradient computed by backward.
        analytic: f64,
        /// The gradient estimated by central differences.
        numeric: f64,
        /// The absolute tolerance used.
        atol: f64,
        /// The relative tolerance used.
        rtol: f64,
    },
    /// An analytic gradient with respect to a module's parameter disagrees with
    /// its finite-difference estimate
    /// ([`gradcheck_module`](crate::gradcheck::gradcheck_module)).
    #[error(
        "gradcheck: parameter `{name}`, element {element} (index {index:?}), output \
         element {output}: analytic gradient {analytic:.8e} vs numeric {numeric:.8e} \
         (|difference| {diff:.3e} exceeds atol {atol:e} + rtol {rtol:e} * |numeric|)",
        diff = (analytic - numeric).abs()
    )]
    GradCheckParameter {
        /// The parameter's name, as `named_parameters` gives it.
        name: String,
        /// The row-major flat index of the element within that parameter.
        element: usize,
        /// The same element as a multi-index.
        index: Vec<usize>,
        /// The row-major flat index of the output element whose Jacobian row failed.
        output: usize,
        /// The gradient computed by backward.
        analytic: f64,
        /// The gradient estimated by central differences.
        numeric: f64,
        /// The absolute tolerance used.
        atol: f64,
        /// The relative tolerance used.
        rtol: f64,
    },
    /// An analytic second derivative disagrees with the central difference of the
    /// analytic gradient ([`gradgradcheck`](crate::gradcheck::gradgradcheck)).
    #[error(
        "gradgradcheck: d(gradient of input {grad_of}, element {grad_element} (index \
         {grad_index:?})) / d({wrt}, element {wrt_element} (index {wrt_index:?})): \
         analytic {analytic:.8e} vs numeric {numeric:.8e} (|difference| {diff:.3e} \
         exceeds atol {atol:e} + rtol {rtol:e} * |numeric|)",
        wrt = wrt_input.map_or("the upstream gradient".to_string(), |i| format!("input {i}")),
        diff = (analytic - numeric).abs()
    )]
    GradGradCheck {
        /// The input whose gradient was differentiated.
        grad_of: usize,
        /// The row-major flat index of the element within that gradient.
        grad_element: usize,
        /// The same element as a multi-index.
        grad_index: Vec<usize>,
        /// The input the gradient was differentiated with respect to; `None` for
        /// the random upstream gradient the check seeds the first backward with.
        wrt_input: Option<usize>,
        /// The row-major flat index of the perturbed element.
        wrt_element: usize,
        /// The same element as a multi-index.
        wrt_index: Vec<usize>,
        /// The second derivative computed by backward through the gradient.
        analytic: f64,
        /// The central difference of the analytic gradient.
        numeric: f64,
        /// The absolute tolerance used.
        atol: f64,
        /// The relative tolerance used.
        rtol: f64,
    },
    /// An optimizer found no gradient for a parameter while in strict mode.
    #[error(
        "optimizer: no gradient for parameter {param}; it did not take part in the \
         loss, or backward was called on another graph"
    )]
    MissingGradient {
        /// The parameter's name (or its position and shape when unnamed); when
        /// several parameters have no gradient, all of them, separated by `, `
        /// (as [`Gradients::missing`](crate::Gradients::missing) lists them).
        param: String,
    },
    /// A collective operation across the ranks of a
    /// [`distributed`](crate::distributed) group failed: another rank panicked or
    /// left the group, the ranks called different operations or gave buffers of
    /// different lengths, or MPI returned an error. Every rank that takes part in
    /// the failed operation gets an error (except under MPI when a rank crashed:
    /// the job is then aborted).
    #[error("{op} on rank {rank}: {msg}")]
    Collective {
        /// The collective operation (`"all_reduce_sum"`, `"broadcast"`, …).
        op: &'static str,
        /// The rank that reports the error.
        rank: usize,
        /// What went wrong, naming the ranks and values involved.
        msg: String,
    },
    /// The ranks of a data-parallel group hold different models: their parameter
    /// (or buffer) names, shapes, order or element types differ
    /// ([`DataParallel::new`](crate::distributed::DataParallel::new) checks them
    /// on every rank before training, so every rank gets the same error).
    #[error("DataParallel: rank {rank}'s model differs from rank 0's: {msg}")]
    ReplicaMismatch {
        /// The first rank whose model differs from rank 0's.
        rank: usize,
        /// The differences found (up to a few), with names and shapes.
        msg: String,
    },
    /// An I/O error (reading or writing a file).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A file or buffer is not in the expected format.
    #[error("format: {0}")]
    Format(String),
}

/// The axes valid for a rank, as the message of [`Error::InvalidAxis`] says it.
fn valid_axes(ndim: usize) -> String {
    match ndim {
        0 => "a 0-d tensor has no axis".to_string(),
        n => format!("valid axes are -{n}..={}", n - 1),
    }
}

/// `Result` with [`Error`] as its error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn shape(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
        }
    }

    pub(crate) fn invalid(op: &'static str, msg: impl fmt::Display) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.to_string(),
        }
    }
}

/// Unwraps a `Result`, panicking with the error's message at the caller's line.
#[track_caller]
pub(crate) fn or_panic<X>(r: Result<X>) -> X {
    match r {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    }
}
