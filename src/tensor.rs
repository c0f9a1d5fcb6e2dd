//! The `Tensor` handle: identity, accessors, gradient flags, and how op outputs are built.

mod cast;
mod create;
mod display;
mod operators;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::RwLockReadGuard;

use crate::autograd::{is_grad_enabled, GradFn, NoOp, Node, Op};
use crate::element::{mono, Element};
use crate::error::{or_panic, Error, Result};
use crate::kernels::elementwise::Cheap;
use crate::layout::Layout;
use crate::shared::Shared;
use crate::storage::{Buf, Storage};
use smallvec::SmallVec;

/// An n-dimensional array of `T` (`f32` by default) that records the operations it
/// comes from, so that [`backward`](Tensor::backward) can compute gradients.
///
/// A `Tensor` is a cheap handle: `clone()` bumps a reference count and shares the
/// data and the graph. Tensors are immutable (views such as [`transpose`](Tensor::transpose)
/// share the buffer); the one exception is an in-place update of a parameter by an
/// optimizer or by [`assign`](Tensor::assign), which every handle and view sees.
/// `Tensor` is `Send + Sync`.
///
/// ```
/// use ferrograd::Tensor;
/// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?;
/// let w = Tensor::<f32>::ones(&[2, 1]).requires_grad();
/// let loss = x.matmul(&w).relu().sum();
/// assert_eq!(loss.item(), 10.0);
/// let grads = loss.backward()?;
/// assert_eq!(grads.get(&w).unwrap().to_vec(), vec![4.0, 6.0]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub struct Tensor<T: Element = f32>(pub(crate) Shared<Node<T>>);

impl<T: Element> Clone for Tensor<T> {
    #[inline]
    fn clone(&self) -> Self {
        Tensor(self.0.clone())
    }
}

/// Clones of the input handles, with plain pushes (the generic `collect` is
/// measurably slower on this per-op path).
#[inline]
fn handles<T: Element>(inputs: &[&Tensor<T>]) -> SmallVec<[Tensor<T>; 2]> {
    let mut v = SmallVec::new();
    for t in inputs {
        v.push((*t).clone());
    }
    v
}

/// The buffer versions of an op's inputs, noted *before* its kernel reads them,
/// when the op is going to be recorded (`None` otherwise).
///
/// Every op follows the same order: note, read, record ([`Tensor::from_op`]).
/// A writer ([`Tensor::assign`], an optimizer) bumps the version while it holds
/// the buffer's write lock, so a version noted before the read is never newer
/// than the values read: an update that slips in between makes the versions
/// differ at backward time, which is an error, never a gradient computed from
/// values the forward pass did not see.
pub(crate) struct Seen(Option<SmallVec<[u64; 2]>>);

impl Seen {
    /// Notes the inputs' versions if the op will be recorded: recording is on and
    /// an input needs a gradient.
    #[inline]
    pub(crate) fn note<T: Element>(inputs: &[&Tensor<T>]) -> Seen {
        let record = inputs.iter().any(|t| t.needs_grad()) && is_grad_enabled();
        Seen(record.then(|| {
            let mut v = SmallVec::new();
            for t in inputs {
                v.push(t.0.storage.version());
            }
            v
        }))
    }

    /// The noted versions (`None` when the op will not be recorded).
    pub(crate) fn versions(&self) -> Option<&[u64]> {
        self.0.as_deref()
    }
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

#[inline]
fn next_id() -> usize {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

impl<T: Element> Tensor<T> {
    // ----- construction of nodes (crate-internal) -----

    /// A node with no recorded op.
    #[inline]
    pub(crate) fn from_parts(
        storage: Shared<Storage<T>>,
        layout: Layout,
        requires_grad: bool,
    ) -> Self {
        Self::plain(storage, layout, requires_grad, false)
    }

    /// A node with no recorded op; `grad_no_graph` marks a gradient computed
    /// without `create_graph` (or a value computed from one).
    #[inline]
    fn plain(
        storage: Shared<Storage<T>>,
        layout: Layout,
        requires_grad: bool,
        grad_no_graph: bool,
    ) -> Self {
        crate::autograd::live_nodes::created();
        let node = Node::shared(Node {
            id: next_id(),
            storage,
            layout,
            requires_grad: AtomicBool::new(requires_grad),
            recorded: false,
            grad_no_graph,
            flags: AtomicU8::new(0),
            inputs: SmallVec::new(),
            versions: SmallVec::new(),
            out_version: 0,
            op: NoOp,
        });
        Tensor(node)
    }

    /// A fresh contiguous tensor that records nothing.
    #[inline]
    pub(crate) fn from_data(data: Vec<T>, shape: &[usize]) -> Self {
        Self::from_buf(Buf::from_vec(data), shape)
    }

    /// [`from_data`](Self::from_data) over a [`Buf`] (small outputs are inline).
    #[inline]
    pub(crate) fn from_buf(data: Buf<T>, shape: &[usize]) -> Self {
        debug_assert_eq!(data.len(), crate::shape::numel(shape));
        Self::from_parts(Storage::new(data), Layout::contiguous(shape), false)
    }

    /// Builds an op's output over `storage`/`layout`, recording `op` with its
    /// inputs and the versions `seen` noted before the kernel read them, when
    /// recording was on and an input needs a gradient.
    #[inline]
    pub(crate) fn from_op(
        seen: Seen,
        storage: Shared<Storage<T>>,
        layout: Layout,
        op: impl Op<T>,
        inputs: &[&Tensor<T>],
    ) -> Self {
        #[cfg(test)]
        crate::autograd::test_hooks::run(
            crate::autograd::test_hooks::Point::BetweenReadAndRecord,
            op.name(),
        );
        let name = op.name();
        let Some(versions) = seen.0 else {
            let from_grad = inputs.iter().any(|t| t.0.grad_no_graph);
            let out = Self::plain(storage, layout, false, from_grad);
            if crate::autograd::anomaly::maybe_on() {
                crate::autograd::anomaly::forward(&out, name, inputs);
            }
            return out;
        };
        crate::autograd::live_nodes::created();
        let node = Node::shared(Node {
            id: next_id(),
            out_version: storage.version(),
            storage,
            layout,
            requires_grad: AtomicBool::new(true),
            recorded: true,
            grad_no_graph: false,
            flags: AtomicU8::new(0),
            inputs: handles(inputs),
            versions,
            op,
        });
        let out = Tensor(node);
        if crate::autograd::anomaly::maybe_on() {
            crate::autograd::anomaly::forward(&out, name, inputs);
        }
        out
    }

    /// A fresh contiguous output of `op` with the shape of `like` (reusing its
    /// layout when it is dense from offset 0, instead of recomputing strides).
    #[inline]
    pub(crate) fn from_op_data_like(
        seen: Seen,
        data: Buf<T>,
        like: &Tensor<T>,
        op: impl Op<T>,
        inputs: &[&Tensor<T>],
    ) -> Self {
        let l = like.layout();
        let layout = if l.offset == 0 && l.is_contiguous() {
            l.clone()
        } else {
            Layout::contiguous(&l.shape)
        };
        Self::from_op(seen, Storage::new(data), layout, op, inputs)
    }

    /// A fresh contiguous output of `op`.
    #[inline]
    pub(crate) fn from_op_data(
        seen: Seen,
        data: Vec<T>,
        shape: &[usize],
        op: impl Op<T>,
        inputs: &[&Tensor<T>],
    ) -> Self {
        Self::from_op_buf(seen, Buf::from_vec(data), shape, op, inputs)
    }

    /// [`from_op_data`](Self::from_op_data) over a [`Buf`] (small outputs are inline).
    #[inline]
    pub(crate) fn from_op_buf(
        seen: Seen,
        data: Buf<T>,
        shape: &[usize],
        op: impl Op<T>,
        inputs: &[&Tensor<T>],
    ) -> Self {
        debug_assert_eq!(data.len(), crate::shape::numel(shape));
        Self::from_op(
            seen,
            Storage::new(data),
            Layout::contiguous(shape),
            op,
            inputs,
        )
    }

    /// A view of `self` (same buffer) under another layout, produced by `op`
    /// (which reads no values: views save nothing).
    #[inline]
    pub(crate) fn view_op(&self, layout: Layout, op: impl Op<T>) -> Self {
        let seen = Seen::note(&[self]);
        Self::from_op(seen, self.0.storage.clone(), layout, op, &[self])
    }

    // ----- crate-internal access -----

    #[inline]
    pub(crate) fn layout(&self) -> &Layout {
        &self.0.layout
    }

    #[inline]
    pub(crate) fn storage(&self) -> &Shared<Storage<T>> {
        &self.0.storage
    }

    /// Read access to the whole buffer (index it through `layout()`).
    #[inline]
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Buf<T>> {
        self.0.storage.read()
    }

    /// True when both tensors look at the same buffer.
    #[inline]
    pub(crate) fn shares_storage(&self, other: &Tensor<T>) -> bool {
        Shared::ptr_eq(&self.0.storage, &other.0.storage)
    }

    /// Runs `f` on the elements as one contiguous row-major slice (copying only
    /// when the layout is strided).
    pub(crate) fn with_contiguous<R>(&self, f: impl FnOnce(&[T]) -> R) -> R {
        let data = self.read();
        match self.layout().contiguous_range() {
            Some(r) => f(&data[r]),
            None => {
                let copy = crate::kernels::elementwise::map(&data, self.layout(), Cheap, |v| v);
                drop(data);
                f(&copy)
            }
        }
    }

    /// The op that produced this tensor, if it was recorded.
    pub(crate) fn grad_fn(&self) -> Option<GradFn<'_, T>> {
        self.0.grad_fn()
    }

    /// True when this handle and its buffer are referenced nowhere else, and the
    /// layout covers the whole buffer densely: it may then be written in place.
    pub(crate) fn is_exclusive(&self) -> bool {
        Shared::count(&self.0) == 1
            && Shared::count(&self.0.storage) == 1
            && self.0.layout.is_whole(self.0.storage.len())
    }

    /// The buffer, mutably, when [`is_exclusive`](Self::is_exclusive) holds:
    /// through the sole handles of the node and of its storage, so without
    /// taking the buffer's lock. Not an update (nothing else can see it).
    #[inline]
    pub(crate) fn exclusive_buf(&mut self) -> Option<&mut Buf<T>> {
        let node = Shared::get_mut(&mut self.0)?;
        if !node.layout.is_whole(node.storage.len()) {
            return None;
        }
        Shared::get_mut(&mut node.storage).map(Storage::data_mut)
    }

    /// True when the elements fill the whole buffer from offset 0, in some order
    /// (a contiguous tensor, or a permutation of one such as a transpose).
    pub(crate) fn is_dense(&self) -> bool {
        let l = &self.0.layout;
        l.offset == 0 && self.0.storage.len() == self.numel() && l.is_non_overlapping()
    }

    // ----- public inspection -----

    /// The size of each dimension; `[]` for a 0-d (scalar) tensor.
    #[inline]
    pub fn shape(&self) -> &[usize] {
        &self.0.layout.shape
    }

    /// The number of dimensions.
    #[inline]
    pub fn ndim(&self) -> usize {
        self.0.layout.shape.len()
    }

    /// The number of elements (1 for a 0-d tensor).
    #[inline]
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }

    /// The distance, in elements, between neighbours along each dimension.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::zeros(&[2, 3]);
    /// assert_eq!(x.strides(), &[3, 1]);
    /// assert_eq!(x.t().strides(), &[1, 3]);
    /// ```
    #[inline]
    pub fn strides(&self) -> &[usize] {
        &self.0.layout.strides
    }

    /// True when the elements lie row-major and dense in the buffer.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }

    /// A unique identity for this handle's node (shared by its clones).
    #[inline]
    pub fn id(&self) -> TensorId {
        TensorId(self.0.id)
    }

    /// The elements in row-major order, whatever the strides.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], &[2, 2])?;
    /// assert_eq!(x.t().to_vec(), vec![1., 3., 2., 4.]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        mono!(|this: &Tensor<T>| -> Vec<T> { this.to_vec_body() }, (self))
    }

    fn to_vec_body(&self) -> Vec<T> {
        let data = self.read();
        match self.layout().contiguous_range() {
            Some(r) => data[r].to_vec(),
            None => crate::kernels::elementwise::map(&data, self.layout(), Cheap, |v| v),
        }
    }

    /// The single element of a tensor with exactly one element.
    ///
    /// # Panics
    /// Panics unless `numel() == 1`, naming the shape.
    #[track_caller]
    pub fn item(&self) -> T {
        or_panic(self.try_item())
    }

    // ----- gradient flags -----

    /// A new leaf handle sharing this tensor's data, whose gradient `backward`
    /// will compute. The new handle has its own identity: look its gradient up with it.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let w = Tensor::<f64>::scalar(3.0).requires_grad();
    /// let y = &w * &w;
    /// assert_eq!(y.backward()?.get(&w).unwrap().item(), 6.0);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn requires_grad(&self) -> Tensor<T> {
        mono!(
            |this: &Tensor<T>| -> Tensor<T> { this.requires_grad_body() },
            (self)
        )
    }

    fn requires_grad_body(&self) -> Tensor<T> {
        Self::from_parts(self.0.storage.clone(), self.0.layout.clone(), true)
    }

    /// Turns gradient tracking of this leaf on or off, in place: every handle of
    /// the leaf (a model's, an optimizer's) sees the change, and its
    /// [`id`](Tensor::id) stays the same, so optimizers, [`Gradients`](crate::Gradients)
    /// and checkpoints still know it. This is how a parameter is *frozen*: ops
    /// on a frozen leaf are not recorded (unless another input needs a
    /// gradient), so no gradient is computed for it — backward does less work,
    /// not merely the optimizer skipping it — and an optimizer lists it in
    /// [`StepReport::skipped`](crate::optim::StepReport::skipped). The flag is
    /// read when an op is recorded and when backward walks the graph, so a leaf
    /// frozen after a forward pass gets no gradient from that pass either.
    ///
    /// Unlike [`requires_grad`](Tensor::requires_grad), which returns a new leaf
    /// handle, this changes the leaf itself (PyTorch's `requires_grad_`).
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let w = Tensor::<f64>::scalar(3.0).requires_grad();
    /// let b = Tensor::<f64>::scalar(1.0).requires_grad();
    /// w.set_requires_grad(false);                     // freeze w
    /// let grads = (&w * &b).backward()?;
    /// assert!(grads.get(&w).is_none());
    /// assert_eq!(grads.get(&b).unwrap().item(), 3.0);
    /// w.set_requires_grad(true);                      // and thaw it
    /// assert_eq!((&w * &b).backward()?.get(&w).unwrap().item(), 1.0);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when turning tracking off on the output of a recorded op (only
    /// leaves can be frozen; use [`detach`](Tensor::detach) to cut a computed
    /// tensor from the graph).
    #[track_caller]
    pub fn set_requires_grad(&self, on: bool) {
        if self.0.recorded {
            assert!(
                on,
                "set_requires_grad: only a leaf can stop requiring a gradient; this \
                 tensor is the output of `{}` (use detach() to cut it from the graph)",
                self.0.op.name()
            );
            return;
        }
        self.0.requires_grad.store(on, Ordering::Relaxed);
    }

    /// True when backward will flow into this tensor: it is a leaf made with
    /// [`requires_grad`](Tensor::requires_grad), or an op recorded it.
    #[inline]
    pub fn needs_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// True when no recorded op produced this tensor.
    #[inline]
    pub fn is_leaf(&self) -> bool {
        !self.0.recorded
    }

    /// The name of the op that produced this tensor, when it was recorded.
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.recorded.then(|| self.0.op.name())
    }

    /// The same data, cut from the graph: nothing flows back through the result.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f64>::scalar(2.0).requires_grad();
    /// let y = &x * &x.detach(); // d/dx = x.detach() = 2, not 2x = 4
    /// assert_eq!(y.backward()?.get(&x).unwrap().item(), 2.0);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn detach(&self) -> Tensor<T> {
        mono!(
            |this: &Tensor<T>| -> Tensor<T> { this.detach_body() },
            (self)
        )
    }

    fn detach_body(&self) -> Tensor<T> {
        Self::from_parts(self.0.storage.clone(), self.0.layout.clone(), false)
    }

    // ----- in-place update -----

    /// Overwrites this tensor's elements with `values` (broadcast to this shape),
    /// in place: every handle and view of the buffer sees the new values.
    ///
    /// This is how a hand-written training loop updates a parameter
    /// (`w.assign(&(&w - &(g * lr)).detach())`). It is never recorded in the graph, and it
    /// bumps the buffer's version: backward through an op that saved the old values
    /// then returns [`Error::ModifiedInPlace`] instead of a wrong gradient.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let w = Tensor::<f32>::from_vec(vec![0.17], &[1])?.requires_grad();
    /// let grad = Tensor::<f32>::from_vec(vec![200.0], &[1])?;
    /// w.assign(&(&w - &grad * 0.01))?;                  // new = old − lr × grad
    /// assert!((w.item() - (-1.83)).abs() < 1e-6);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `values` does not broadcast to this shape;
    /// [`Error::InvalidArgument`] when this tensor is a broadcast view (several of
    /// its elements share one slot of the buffer, so they cannot take different values).
    pub fn assign(&self, values: &Tensor<T>) -> Result<()> {
        mono!(
            |this: &Tensor<T>, values: &Tensor<T>| -> Result<()> { this.assign_body(values) },
            (self, values)
        )
    }

    fn assign_body(&self, values: &Tensor<T>) -> Result<()> {
        if !self.layout().is_non_overlapping() {
            return Err(Error::invalid(
                "assign",
                format!(
                    "cannot write into a broadcast view of shape {:?} (strides {:?}); \
                     assign to the tensor it was broadcast from",
                    self.shape(),
                    self.strides()
                ),
            ));
        }
        if crate::shape::broadcast_shapes(values.shape(), self.shape()).as_deref()
            != Some(self.shape())
        {
            return Err(Error::shape("assign", self.shape(), values.shape()));
        }
        let src_layout = values.layout().broadcast_to(self.shape());
        // Read the source first: it may share this buffer (w.assign(&w.t())).
        let src = {
            let d = values.read();
            crate::kernels::elementwise::map(&d, &src_layout, Cheap, |v| v)
        };
        self.update_with(|dst| dst.copy_from_slice(&src));
        Ok(())
    }

    /// Applies `f` to the elements (row-major, as one contiguous slice) in place and
    /// bumps the buffer version. Strided tensors are gathered, updated and scattered back.
    pub(crate) fn update_with(&self, f: impl FnOnce(&mut [T])) {
        let layout = self.layout();
        let mut data = self.0.storage.write();
        match layout.contiguous_range() {
            Some(r) => f(&mut data[r]),
            None => {
                let offsets = layout.offsets();
                let mut vals: Vec<T> = offsets.iter().map(|&o| data[o]).collect();
                f(&mut vals);
                for (o, v) in offsets.into_iter().zip(vals) {
                    data[o] = v;
                }
            }
        }
    }
}

/// Fallible forms: each `try_x` is `x` returning [`Result`] instead of
/// panicking (the error carries the message the panic would print).
impl<T: Element> Tensor<T> {
    /// Like [`item`](Tensor::item), returning an error instead of panicking.
    pub fn try_item(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "item",
                format!(
                    "expected a tensor with exactly one element, got shape {:?}",
                    self.shape()
                ),
            ));
        }
        let data = self.read();
        Ok(data[self.layout().offset])
    }
}

/// The identity of a tensor node, shared by clones of one handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub(crate) usize);

impl TensorId {
    /// The raw id: ids grow with creation order.
    pub fn get(self) -> usize {
        self.0
    }
}
