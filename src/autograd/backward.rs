//! The backward walk: discover the reachable graph, visit it in reverse creation
//! order, run each op's rule once its gradient is complete, and free it after use.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::{no_grad, BackwardCx, GradFn, Gradients, Saves};
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

    // 1. Discovery: dense indices for the nodes that gradients can flow through,
    //    and for each node the dense indices of its inputs (`NONE` for inputs
    //    that need no gradient), so that the walk below never hashes.
    const NONE: u32 = u32::MAX;
    let mut nodes: Vec<&Tensor<T>> = vec![root];
    let mut ids: Vec<usize> = vec![root.0.id];
    let mut edges: Vec<u32> = Vec::new();
    let mut first_edge: Vec<u32> = Vec::new();
    let mut index: IdMap<u32> = IdMap::default();
    index.insert(root.0.id, 0);
    let mut i = 0;
    while i < nodes.len() {
        first_edge.push(edges.len() as u32);
        if let Some(gf) = nodes[i].grad_fn() {
            for input in gf.inputs {
                if !input.needs_grad() {
                    edges.push(NONE);
                    continue;
                }
                let next = nodes.len() as u32;
                let slot = *index.entry(input.0.id).or_insert(next);
                if slot == next {
                    nodes.push(input);
                    ids.push(input.0.id);
                }
                edges.push(slot);
            }
        }
        i += 1;
    }

    // 2. Ids grow with creation, so descending id is a reverse topological order:
    //    a node's gradient is complete when its turn comes.
    let mut order: Vec<u32> = (0..nodes.len() as u32).collect();
    order.sort_unstable_by_key(|&i| Reverse(ids[i as usize]));

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
        check_versions(node, &gf)?;
        let cx = BackwardCx {
            inputs: gf.inputs,
            output: node,
        };
        // The rule owns the gradient: when nothing else holds it, the rule may
        // write its result into the same buffer.
        let input_grads = gf.op.backward(&cx, grad);
        debug_assert_eq!(
            input_grads.len(),
            gf.inputs.len(),
            "internal error: backward of {} returned the wrong number of gradients",
            gf.op.name()
        );
        let slots = &edges[first_edge[i as usize] as usize..][..gf.inputs.len()];
        for ((input, g), &slot) in gf.inputs.iter().zip(input_grads).zip(slots) {
            let Some(g) = g else { continue };
            if slot == NONE {
                continue;
            }
            let g = if g.shape() == input.shape() {
                g
            } else {
                crate::ops::sum_to_shape(&g, input.shape()).unwrap_or_else(|e| {
                    panic!(
                        "internal error: backward of {} returned a gradient of the wrong shape: {e}",
                        gf.op.name()
                    )
                })
            };
            let slot = &mut grads[slot as usize];
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

fn check_versions<T: Element>(node: &Tensor<T>, gf: &GradFn<'_, T>) -> Result<()> {
    let saves = gf.op.saves();
    if saves == Saves::Nothing {
        return Ok(());
    }
    let checked = |j: usize| match saves {
        Saves::Inputs | Saves::Both => true,
        Saves::Input(i) => i == j,
        Saves::Nothing | Saves::Output => false,
    };
    for (j, (input, &saved)) in gf.inputs.iter().zip(gf.versions).enumerate() {
        if checked(j) {
            let current = input.storage().version();
            if current != saved {
                return Err(Error::ModifiedInPlace {
                    op: gf.op.name(),
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
                op: gf.op.name(),
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
