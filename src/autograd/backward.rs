//! The backward walk: discover the reachable graph, visit it in reverse creation
//! order, run each op's rule once its gradient is complete, and free it after use.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::{no_grad, BackwardCx, Gradients, Saves};
use crate::element::Element;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// Computes the gradient of this one-element tensor (a loss) with respect to
    /// every leaf that asked for one ([`requires_grad`](Tensor::requires_grad)) and
    /// leads to it.
    ///
    /// The graph is left intact: `backward` may run again, and each call returns
    /// fresh gradients (they are never stored on tensors, so passes never mix).
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2])?.requires_grad();
    /// let y = (&x * &x + &x).sum();          // dy/dx = 2x + 1
    /// let g = y.backward()?;
    /// assert_eq!(g.get(&x).unwrap().to_vec(), vec![3.0, 5.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NotScalar`] unless the tensor has exactly one element (use
    /// [`backward_with`](Tensor::backward_with) otherwise); [`Error::NoGraph`] when no
    /// gradient-requiring leaf leads to it; [`Error::ModifiedInPlace`] when a value a
    /// backward rule needs was updated in place after the forward pass.
    pub fn backward(&self) -> Result<Gradients<T>> {
        if self.numel() != 1 {
            return Err(Error::NotScalar {
                shape: self.shape().to_vec(),
            });
        }
        run(self, Tensor::ones(self.shape()))
    }

    /// Backward seeded with `upstream` (the gradient of some scalar with respect to
    /// this tensor, same shape): computes the vector-Jacobian product `upstreamᵀ·J`
    /// for every leaf.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0], &[3])?.requires_grad();
    /// let y = &x * 2.0;
    /// let v = Tensor::from_vec(vec![1.0, 0.0, -1.0], &[3])?;
    /// assert_eq!(y.backward_with(&v)?.get(&x).unwrap().to_vec(), vec![2.0, 0.0, -2.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `upstream`'s shape differs from this tensor's,
    /// and the errors of [`backward`](Tensor::backward) but `NotScalar`.
    pub fn backward_with(&self, upstream: &Tensor<T>) -> Result<Gradients<T>> {
        if upstream.shape() != self.shape() {
            return Err(Error::shape(
                "backward_with",
                self.shape(),
                upstream.shape(),
            ));
        }
        run(self, upstream.detach())
    }
}

/// Hashes the (unique, sequential) node ids with one multiply.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("IdHasher only hashes usize ids")
    }
    fn write_usize(&mut self, id: usize) {
        self.0 = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<usize, V, BuildHasherDefault<IdHasher>>;

fn run<T: Element>(root: &Tensor<T>, seed: Tensor<T>) -> Result<Gradients<T>> {
    if !root.needs_grad() {
        return Err(Error::NoGraph);
    }
    // Rules are tensor ops; here they run as plain arithmetic, recording nothing.
    let _guard = no_grad();

    // 1. Discovery: dense indices for the nodes that gradients can flow through.
    let mut nodes: Vec<&Tensor<T>> = vec![root];
    let mut index: IdMap<u32> = IdMap::default();
    index.insert(root.0.id, 0);
    let mut i = 0;
    while i < nodes.len() {
        if let Some(gf) = nodes[i].grad_fn() {
            for input in gf.inputs.iter().filter(|t| t.needs_grad()) {
                if let Entry::Vacant(e) = index.entry(input.0.id) {
                    e.insert(nodes.len() as u32);
                    nodes.push(input);
                }
            }
        }
        i += 1;
    }

    // 2. Ids grow with creation, so descending id is a reverse topological order:
    //    a node's gradient is complete when its turn comes.
    let mut order: Vec<u32> = (0..nodes.len() as u32).collect();
    order.sort_unstable_by_key(|&i| Reverse(nodes[i as usize].0.id));

    // 3. The walk. Each gradient is taken out of its slot when used, so
    //    intermediate gradients are freed as soon as they are passed on.
    let mut grads: Vec<Option<Tensor<T>>> = Vec::with_capacity(nodes.len());
    grads.resize_with(nodes.len(), || None);
    grads[0] = Some(seed);
    let mut leaves = Vec::new();
    for &i in &order {
        let Some(grad) = grads[i as usize].take() else {
            continue;
        };
        let node = nodes[i as usize];
        let Some(gf) = node.grad_fn() else {
            leaves.push((node.clone(), grad));
            continue;
        };
        let op = gf.op.name();
        check_versions(node, op, gf.op.saves())?;
        let cx = BackwardCx {
            inputs: &gf.inputs,
            output: node,
        };
        let input_grads = gf.op.backward(&cx, &grad);
        debug_assert_eq!(
            input_grads.len(),
            gf.inputs.len(),
            "internal error: backward of {op} returned the wrong number of gradients"
        );
        drop(grad);
        for (input, g) in gf.inputs.iter().zip(input_grads) {
            let Some(g) = g else { continue };
            if !input.needs_grad() {
                continue;
            }
            let g = if g.shape() == input.shape() {
                g
            } else {
                crate::ops::sum_to_shape(&g, input.shape()).unwrap_or_else(|e| {
                    panic!("internal error: backward of {op} returned a gradient of the wrong shape: {e}")
                })
            };
            let slot = &mut grads[index[&input.0.id] as usize];
            *slot = Some(match slot.take() {
                None => g,
                Some(prev) => accumulate(prev, &g),
            });
        }
    }

    // 4. Hand out gradients that are contiguous and own their buffers.
    Ok(Gradients::from_pairs(
        leaves
            .into_iter()
            .map(|(leaf, g)| {
                let g = if g.is_exclusive() { g } else { g.copy() };
                (leaf, g)
            })
            .collect(),
    ))
}

fn check_versions<T: Element>(node: &Tensor<T>, op: &'static str, saves: Saves) -> Result<()> {
    let gf = node
        .grad_fn()
        .expect("internal error: checked node has an op");
    let checked = |j: usize| match saves {
        Saves::Inputs | Saves::Both => true,
        Saves::Input(i) => i == j,
        Saves::Nothing | Saves::Output => false,
    };
    for (j, (input, &saved)) in gf.inputs.iter().zip(&gf.versions).enumerate() {
        if checked(j) {
            let current = input.storage().version();
            if current != saved {
                return Err(Error::ModifiedInPlace {
                    op,
                    which: format!("input {j}"),
                    saved,
                    current,
                });
            }
        }
    }
    if matches!(saves, Saves::Output | Saves::Both) {
        let current = node.storage().version();
        if current != gf.out_version {
            return Err(Error::ModifiedInPlace {
                op,
                which: "output".into(),
                saved: gf.out_version,
                current,
            });
        }
    }
    Ok(())
}

/// `prev + g`, written into `prev`'s buffer when nothing else can see it.
fn accumulate<T: Element>(prev: Tensor<T>, g: &Tensor<T>) -> Tensor<T> {
    if prev.is_exclusive() && prev.shape() == g.shape() {
        {
            let mut dst = prev.storage().write_fresh();
            let src = g.read();
            crate::kernels::elementwise::add_assign(&mut dst, &src, g.layout());
        }
        prev
    } else {
        prev.add(g)
    }
}
