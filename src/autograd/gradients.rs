//! `Gradients`: what `backward` returns, with norm and clipping tools.

use std::collections::HashMap;

use crate::element::Element;
use crate::tensor::{Tensor, TensorId};

/// The gradients computed by one backward pass, keyed by leaf.
///
/// Each gradient has its leaf's shape, is contiguous and owns its buffer (it never
/// aliases another gradient, a parameter or a broadcast view), so tools such as
/// [`clip_norm`](Gradients::clip_norm) and optimizers may update it in place.
///
/// ```
/// use ferrograd::Tensor;
/// let a = Tensor::<f64>::scalar(2.0).requires_grad();
/// let b = Tensor::<f64>::scalar(5.0).requires_grad();
/// let unused = Tensor::<f64>::scalar(1.0).requires_grad();
/// let grads = (&a * &b).backward()?;
/// assert_eq!(grads.len(), 2);
/// assert_eq!(grads.get(&a).unwrap().item(), 5.0);
/// assert_eq!(grads.get(&b).unwrap().item(), 2.0);
/// assert!(grads.get(&unused).is_none());
/// for (leaf, g) in &grads {
///     assert_eq!(leaf.shape(), g.shape());
/// }
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub struct Gradients<T: Element = f32> {
    entries: Vec<(Tensor<T>, Tensor<T>)>,
    by_id: HashMap<TensorId, usize>,
    /// Gradients of intermediates marked with [`Tensor::retain_grad`]: found by
    /// [`get`](Gradients::get), outside everything else (norms, iteration).
    retained: Vec<(Tensor<T>, Tensor<T>)>,
}

impl<T: Element> Gradients<T> {
    pub(crate) fn from_pairs(entries: Vec<(Tensor<T>, Tensor<T>)>) -> Self {
        let by_id = entries
            .iter()
            .enumerate()
            .map(|(i, (leaf, _))| (leaf.id(), i))
            .collect();
        Gradients {
            entries,
            by_id,
            retained: Vec::new(),
        }
    }

    /// Adds the gradients of retained intermediates.
    pub(crate) fn with_retained(mut self, retained: Vec<(Tensor<T>, Tensor<T>)>) -> Self {
        self.retained = retained;
        self
    }

    /// An empty set of gradients.
    pub fn new() -> Self {
        Gradients {
            entries: Vec::new(),
            by_id: HashMap::new(),
            retained: Vec::new(),
        }
    }

    /// The gradient of `leaf`, or `None` when backward did not reach it. An
    /// intermediate tensor marked with [`Tensor::retain_grad`] before the
    /// backward pass has its gradient here too.
    pub fn get(&self, leaf: &Tensor<T>) -> Option<&Tensor<T>> {
        self.get_by_id(leaf.id())
    }

    /// The gradient of the leaf (or retained intermediate) with this id.
    pub fn get_by_id(&self, id: TensorId) -> Option<&Tensor<T>> {
        match self.by_id.get(&id) {
            Some(&i) => Some(&self.entries[i].1),
            None => self
                .retained
                .iter()
                .find(|(t, _)| t.id() == id)
                .map(|(_, g)| g),
        }
    }

    /// Sets (or replaces) the gradient of `leaf`; returns the previous one.
    ///
    /// # Panics
    /// Panics when `grad`'s shape differs from `leaf`'s.
    #[track_caller]
    pub fn insert(&mut self, leaf: &Tensor<T>, grad: Tensor<T>) -> Option<Tensor<T>> {
        assert_eq!(
            leaf.shape(),
            grad.shape(),
            "Gradients::insert: gradient shape {:?} differs from the leaf's {:?}",
            grad.shape(),
            leaf.shape()
        );
        let grad = if grad.is_exclusive() {
            grad
        } else {
            grad.copy()
        };
        match self.by_id.get(&leaf.id()) {
            Some(&i) => Some(std::mem::replace(&mut self.entries[i].1, grad)),
            None => {
                self.by_id.insert(leaf.id(), self.entries.len());
                self.entries.push((leaf.clone(), grad));
                None
            }
        }
    }

    /// Removes and returns the gradient of `leaf`.
    pub fn remove(&mut self, leaf: &Tensor<T>) -> Option<Tensor<T>> {
        let i = self.by_id.remove(&leaf.id())?;
        let (_, g) = self.entries.swap_remove(i);
        if let Some((moved, _)) = self.entries.get(i) {
            self.by_id.insert(moved.id(), i);
        }
        Some(g)
    }

    /// How many leaves have a gradient.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no leaf has a gradient.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `(leaf, gradient)` pairs.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Tensor<T>, &Tensor<T>)> {
        self.entries.iter().map(|(l, g)| (l, g))
    }

    /// The L2 norm of all gradients taken together, `sqrt(Σ g²)`: watch it during
    /// training to see vanishing (→ 0) or exploding (→ ∞) gradients.
    pub fn global_norm(&self) -> T {
        let sq: f64 = self
            .entries
            .iter()
            .map(|(_, g)| super::inspect::sum_of_squares(g))
            .sum();
        T::from_f64_lossy(sq.sqrt())
    }

    /// Scales all gradients in place so that their global norm is at most
    /// `max_norm` (as PyTorch's `clip_grad_norm_`: by `max_norm / (norm + 1e-6)`
    /// when the norm exceeds it). Returns the norm before clipping.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let w = Tensor::<f64>::from_vec(vec![3.0, 4.0], &[2])?.requires_grad();
    /// let mut grads = (&w * &w).sum().backward()?;    // gradient (6, 8), norm 10
    /// assert_eq!(grads.clip_norm(1.0), 10.0);
    /// assert!((grads.global_norm() - 1.0).abs() < 1e-6);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn clip_norm(&mut self, max_norm: T) -> T {
        let norm = self.global_norm();
        let coef = max_norm / (norm + T::from_f64_lossy(1e-6));
        if coef < T::one() {
            for (_, g) in &self.entries {
                g.update_with(|d| d.iter_mut().for_each(|v| *v *= coef));
            }
        }
        norm
    }

    /// Adds `other`'s gradients into these, leaf by leaf: a leaf in both gets the
    /// sum, a leaf only in `other` gets a copy of its gradient. This is gradient
    /// accumulation over micro-batches: run backward on each micro-batch and
    /// accumulate, then step once (scale by `1 / micro_batches` first when each
    /// loss is a mean, so the sum is the mean over the whole batch).
    ///
    /// The sums are written into these gradients' buffers in place (each
    /// gradient owns its buffer, so no other gradient changes; a handle cloned
    /// from one of them sees the sum). A gradient that is itself recorded (from
    /// [`grad`](crate::grad) with `create_graph`, inserted by hand) is replaced
    /// by a recorded sum instead, so it stays differentiable.
    ///
    /// ```
    /// use ferrograd::{Gradients, Tensor};
    /// let w = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2])?.requires_grad();
    /// let batch = [3.0, 5.0];
    /// let mut total = Gradients::new();
    /// for x in batch {
    ///     let loss = (&w * x).sum();          // one micro-batch
    ///     total.accumulate(&loss.backward()?);
    /// }
    /// total.scale(0.5);                       // the mean over the 2 micro-batches
    /// assert_eq!(total.get(&w).unwrap().to_vec(), vec![4.0, 4.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn accumulate(&mut self, other: &Gradients<T>) {
        for (leaf, o) in &other.entries {
            let Some(&i) = self.by_id.get(&leaf.id()) else {
                self.by_id.insert(leaf.id(), self.entries.len());
                let own = if o.needs_grad() { o.clone() } else { o.copy() };
                self.entries.push((leaf.clone(), own));
                continue;
            };
            let g = &mut self.entries[i].1;
            if g.needs_grad() || o.needs_grad() || g.shares_storage(o) || !g.is_contiguous() {
                // out of place: stays recorded when either side is, and never
                // reads and writes one buffer at once
                *g = g.add(o);
            } else {
                o.with_contiguous(|od| {
                    g.update_with(|gd| gd.iter_mut().zip(od).for_each(|(a, &b)| *a += b))
                });
            }
        }
    }

    /// Multiplies every gradient by `factor`, in place (out of place for a
    /// recorded gradient, as [`accumulate`](Gradients::accumulate) does).
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let w = Tensor::<f32>::from_vec(vec![1.0, -2.0], &[2])?.requires_grad();
    /// let mut grads = (&w * &w).sum().backward()?;   // 2w
    /// grads.scale(0.25);
    /// assert_eq!(grads.get(&w).unwrap().to_vec(), vec![0.5, -1.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn scale(&mut self, factor: T) {
        for (_, g) in &mut self.entries {
            if g.needs_grad() || !g.is_contiguous() {
                *g = g.mul_scalar(factor);
            } else {
                g.update_with(|d| d.iter_mut().for_each(|v| *v *= factor));
            }
        }
    }

    /// Clamps every gradient element to `[-v, v]` in place.
    pub fn clip_value(&mut self, v: T) {
        for (_, g) in &self.entries {
            g.update_with(|d| {
                d.iter_mut().for_each(|x| {
                    if *x > v {
                        *x = v;
                    } else if *x < -v {
                        *x = -v;
                    }
                })
            });
        }
    }
}

/// `a += &b` is [`a.accumulate(&b)`](Gradients::accumulate).
impl<T: Element> std::ops::AddAssign<&Gradients<T>> for Gradients<T> {
    fn add_assign(&mut self, other: &Gradients<T>) {
        self.accumulate(other);
    }
}

/// `a += b` is [`a.accumulate(&b)`](Gradients::accumulate).
impl<T: Element> std::ops::AddAssign<Gradients<T>> for Gradients<T> {
    fn add_assign(&mut self, other: Gradients<T>) {
        self.accumulate(&other);
    }
}

/// `a *= k` is [`a.scale(k)`](Gradients::scale).
impl<T: Element> std::ops::MulAssign<T> for Gradients<T> {
    fn mul_assign(&mut self, factor: T) {
        self.scale(factor);
    }
}

impl<T: Element> Default for Gradients<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> std::fmt::Debug for Gradients<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(l, g)| (l.id(), g.shape())))
            .finish()
    }
}

impl<'a, T: Element> IntoIterator for &'a Gradients<T> {
    type Item = (&'a Tensor<T>, &'a Tensor<T>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Tensor<T>, Tensor<T>)>,
        fn(&'a (Tensor<T>, Tensor<T>)) -> (&'a Tensor<T>, &'a Tensor<T>),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(l, g)| (l, g))
    }
}

impl<T: Element> IntoIterator for Gradients<T> {
    type Item = (Tensor<T>, Tensor<T>);
    type IntoIter = std::vec::IntoIter<(Tensor<T>, Tensor<T>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}
