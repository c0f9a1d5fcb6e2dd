//! Tensor hooks (`register_hook`) and retained intermediate gradients
//! (`retain_grad`).
//!
//! Hooks live in a global table keyed by node id, outside the node, so nodes
//! without hooks pay nothing and a hook that captures a handle of its own
//! tensor makes no reference cycle inside the graph. The table holds the hook
//! (and what it captured) until [`HookHandle::remove`] or until the tensor's
//! node is dropped; a hook that captures its own tensor keeps that node alive
//! through the table, so it lives until the handle removes it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::flags;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A hook as stored: called with a gradient, returns its replacement or `None`.
type HookFn<T> = Arc<dyn Fn(&Tensor<T>) -> Option<Tensor<T>> + Send + Sync>;

/// One registered hook: its key (for removal) and the `HookFn<T>` behind `Any`
/// (the table is shared by every element type).
type Entry = (u64, Box<dyn Any + Send + Sync>);

static TABLE: Mutex<Option<HashMap<usize, Vec<Entry>>>> = Mutex::new(None);
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

fn table() -> MutexGuard<'static, Option<HashMap<usize, Vec<Entry>>>> {
    // A hook never runs while the lock is held, so a poisoned lock only means
    // a panic between two plain map operations: the map is still consistent.
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a hook registered with [`Tensor::register_hook`].
///
/// Dropping the handle keeps the hook (as PyTorch's `RemovableHandle`); call
/// [`remove`](HookHandle::remove) to take it off. A hook also goes away with
/// its tensor's last handle.
#[derive(Debug)]
pub struct HookHandle {
    id: usize,
    key: u64,
}

impl HookHandle {
    /// Takes the hook off its tensor (and drops what it captured). Returns
    /// false when it was gone already (its tensor was dropped).
    pub fn remove(self) -> bool {
        let removed = {
            let mut guard = table();
            let Some(map) = guard.as_mut() else {
                return false;
            };
            let Some(list) = map.get_mut(&self.id) else {
                return false;
            };
            let Some(pos) = list.iter().position(|(k, _)| *k == self.key) else {
                return false;
            };
            let removed = list.remove(pos);
            if list.is_empty() {
                // (the node keeps its HOOKED flag: its drop finds nothing to remove)
                map.remove(&self.id);
            }
            removed
        };
        // Dropped outside the lock: the hook may hold the last handle of a
        // tensor, whose drop comes back to this table.
        drop(removed);
        true
    }
}

/// Drops every hook of a node (called from its `Drop`).
pub(crate) fn forget(id: usize) {
    let removed = table().as_mut().and_then(|m| m.remove(&id));
    drop(removed);
}

/// The hooks of node `id` for element type `T`, in registration order.
fn hooks_of<T: Element>(id: usize) -> Vec<HookFn<T>> {
    let guard = table();
    let Some(list) = guard.as_ref().and_then(|m| m.get(&id)) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|(_, h)| h.downcast_ref::<HookFn<T>>().cloned())
        .collect()
}

/// Runs the hooks of `t` on its summed gradient, in registration order, each
/// seeing the previous one's replacement.
pub(crate) fn run<T: Element>(t: &Tensor<T>, mut grad: Tensor<T>) -> Result<Tensor<T>> {
    for hook in hooks_of::<T>(t.0.id) {
        if let Some(g) = hook(&grad) {
            if g.shape() != grad.shape() {
                return Err(Error::invalid(
                    "register_hook",
                    format!(
                        "a hook on a tensor of shape {:?} returned a gradient of shape {:?}",
                        t.shape(),
                        g.shape()
                    ),
                ));
            }
            grad = g;
        }
    }
    Ok(grad)
}

impl<T: Element> Tensor<T> {
    /// Registers `hook` to be called with this tensor's gradient during every
    /// backward pass ([`backward`](Tensor::backward), [`grad`](crate::grad)) that
    /// reaches it: once, with the gradient summed over all its uses. Returning
    /// `Some(g)` replaces the gradient (for everything behind this tensor, and
    /// in what backward returns for a leaf); `None` leaves it as it is. Several
    /// hooks run in registration order, each seeing the previous one's result.
    ///
    /// Uses: clipping the gradient of one layer, reversing it (domain-adversarial
    /// training), logging it. The hook runs inside the walk: with recording on
    /// when the walk records (`create_graph`), so what it returns may carry a graph.
    ///
    /// The hook is kept in a table outside the graph until the returned handle's
    /// [`remove`](HookHandle::remove), or until this tensor's last handle is
    /// dropped. A hook that captures a clone of its own tensor keeps the tensor
    /// alive until the handle removes it.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2])?.requires_grad();
    /// let h = &x * 3.0;
    /// // gradient reversal: everything before `h` is trained to do the opposite
    /// let handle = h.register_hook(|g| Some(-g))?;
    /// let grads = h.sum().backward()?;
    /// assert_eq!(grads.get(&x).unwrap().to_vec(), vec![-3.0, -3.0]);
    /// handle.remove();
    /// assert_eq!(h.sum().backward()?.get(&x).unwrap().to_vec(), vec![3.0, 3.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when this tensor needs no gradient (no
    /// backward pass would reach it). A hook that returns a gradient of another
    /// shape makes the backward pass fail with [`Error::InvalidArgument`].
    pub fn register_hook<F>(&self, hook: F) -> Result<HookHandle>
    where
        F: Fn(&Tensor<T>) -> Option<Tensor<T>> + Send + Sync + 'static,
    {
        if !self.needs_grad() {
            return Err(Error::invalid(
                "register_hook",
                format!(
                    "the tensor (shape {:?}) does not require a gradient, so no backward \
                     pass reaches it",
                    self.shape()
                ),
            ));
        }
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        let f: HookFn<T> = Arc::new(hook);
        table()
            .get_or_insert_with(HashMap::new)
            .entry(self.0.id)
            .or_default()
            .push((key, Box::new(f)));
        flags::set(self, flags::HOOKED);
        Ok(HookHandle { id: self.0.id, key })
    }

    /// Keeps this intermediate tensor's gradient: after [`backward`](Tensor::backward),
    /// [`Gradients::get`](crate::Gradients::get) returns it (for a leaf it does
    /// anyway). Retained gradients are not part of the leaves' gradients: they
    /// are not in [`Gradients::len`](crate::Gradients::len), `iter`, norms or
    /// clipping, and optimizers never see them.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2])?.requires_grad();
    /// let h = &x * 3.0;
    /// h.retain_grad()?;
    /// let grads = (&h * &h).sum().backward()?;     // d/dh = 2h
    /// assert_eq!(grads.get(&h).unwrap().to_vec(), vec![6.0, 12.0]);
    /// assert_eq!(grads.len(), 1);                  // the leaf x only
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when this tensor needs no gradient.
    pub fn retain_grad(&self) -> Result<()> {
        if !self.needs_grad() {
            return Err(Error::invalid(
                "retain_grad",
                format!(
                    "the tensor (shape {:?}) does not require a gradient, so backward \
                     computes none for it",
                    self.shape()
                ),
            ));
        }
        if !self.is_leaf() {
            flags::set(self, flags::RETAIN);
        }
        Ok(())
    }
}
