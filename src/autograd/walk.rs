//! The backward walk shared by `backward`, `backward_with` and `grad`: discover
//! the reachable graph, visit it in reverse creation order, run each op's rule
//! once its gradient is complete, and free each gradient after use.
//!
//! With `create_graph` everything the walk does is recorded: the rules run with
//! recording on (in their differentiable form), fan-in is summed with a recorded
//! `add`, and results are handed out through a recorded copy, so the returned
//! gradients can be differentiated again. Without it the rules run as plain
//! arithmetic, fan-in is summed in place, and nothing is recorded.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::no_grad::with_grad_mode;
use super::{anomaly, flags, hooks, BackwardCx, GradFn, Saves};
use crate::element::Element;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// An edge to an input that gets no gradient (it needs none, or, for `grad`,
/// no requested tensor lies behind it).
pub(crate) const NONE: u32 = u32::MAX;

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

/// The part of the graph gradients can flow through, with dense indices so that
/// the walk never hashes: node `i`'s inputs are `edges[first_edge[i]..]`, each the
/// dense index of the input or [`NONE`].
pub(crate) struct Graph<'a, T: Element> {
    pub(crate) nodes: Vec<&'a Tensor<T>>,
    edges: Vec<u32>,
    first_edge: Vec<u32>,
    /// Dense index of each discovered id.
    index: Index,
    /// The dense indices by descending id: a reverse topological order.
    order: Vec<u32>,
}

/// Dense indices by id. Ids are sequential, and most of a graph's nodes were
/// created shortly before its root (a chain of ops, a forward pass), so the ids
/// near the root are kept in a table indexed by their distance below the
/// root's id, which also yields them in descending id order with no sort. Ids
/// farther away (parameters created long ago) go to a hash map, whose few
/// entries are sorted.
struct Index {
    root_id: usize,
    /// `near[d]`: the dense index of id `root_id - d`, or [`NONE`].
    near: Vec<u32>,
    far: IdMap<u32>,
    /// The smallest distance `d` of an id in `far` (`usize::MAX` while empty):
    /// an id closer than that is in `near` or nowhere.
    far_min: usize,
}

impl Index {
    fn new(root_id: usize) -> Self {
        Index {
            root_id,
            near: vec![0],
            far: IdMap::default(),
            far_min: usize::MAX,
        }
    }

    #[inline]
    fn get(&self, id: usize) -> Option<u32> {
        let d = self.root_id.checked_sub(id)?;
        if let Some(&i) = self.near.get(d) {
            if i != NONE {
                return Some(i);
            }
        }
        if d < self.far_min {
            return None;
        }
        self.far.get(&id).copied()
    }

    /// The dense index of `id`, given `next` (the number of nodes so far) when
    /// it is new. Only ids below the root's are ever looked up here.
    #[inline(always)]
    fn get_or_insert(&mut self, id: usize, next: u32) -> u32 {
        let d = self.root_id - id;
        if let Some(&slot) = self.near.get(d) {
            if slot != NONE {
                return slot;
            }
            if d < self.far_min {
                self.near[d] = next;
                return next;
            }
        }
        self.insert_slow(id, d, next)
    }

    /// [`get_or_insert`](Self::get_or_insert) beyond the table, or below an id of the map.
    #[inline(never)]
    fn insert_slow(&mut self, id: usize, d: usize, next: u32) -> u32 {
        // (a free slot of the table at or beyond `far_min`: the map may hold it)
        if d >= self.near.len() && d < 4 * (next as usize + 16) {
            // the table stays within 4 slots per node
            if d >= self.far_min {
                if let Some(&i) = self.far.get(&id) {
                    return i;
                }
            }
            let len = (2 * self.near.len()).clamp(d + 1, 4 * (next as usize + 16));
            self.near.resize(len, NONE);
            self.near[d] = next;
            return next;
        }
        let slot = *self.far.entry(id).or_insert(next);
        if slot == next {
            self.far_min = self.far_min.min(d);
        }
        slot
    }

    /// The dense indices by descending id: the table's in its order, merged
    /// with the hash map's, sorted.
    fn descending(&self, n: usize) -> Vec<u32> {
        let mut order = Vec::with_capacity(n);
        let mut far: Vec<(usize, u32)> = self.far.iter().map(|(&id, &i)| (id, i)).collect();
        far.sort_unstable_by_key(|&(id, _)| std::cmp::Reverse(id));
        let mut far = far.into_iter().peekable();
        for (d, &i) in self.near.iter().enumerate() {
            if i == NONE {
                continue;
            }
            let id = self.root_id - d;
            while let Some((_, j)) = far.next_if(|&(fid, _)| fid > id) {
                order.push(j);
            }
            order.push(i);
        }
        order.extend(far.map(|(_, j)| j));
        debug_assert_eq!(order.len(), n);
        order
    }
}

thread_local! {
    /// The number of nodes and edges of the last graph discovered on this thread.
    static GRAPH_SIZE: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// The most nodes or edges reserved from [`GRAPH_SIZE`]: beyond it the vectors
/// grow as needed (a few doublings are cheap next to walking that many nodes).
const MAX_HINT: usize = 1 << 14;

impl<'a, T: Element> Graph<'a, T> {
    /// Discovers the nodes behind `root` that need a gradient, not descending
    /// below id `min_id` (nothing there can lead to a tensor created later).
    pub(crate) fn discover(root: &'a Tensor<T>, min_id: usize) -> Self {
        // A training loop walks a graph of the same size every step: start from
        // the last walk's sizes on this thread instead of growing from empty.
        let (n_hint, e_hint) = GRAPH_SIZE.get();
        let mut nodes = Vec::with_capacity(n_hint.clamp(1, MAX_HINT));
        nodes.push(root);
        let mut g = Graph {
            nodes,
            edges: Vec::with_capacity(e_hint.min(MAX_HINT)),
            first_edge: Vec::with_capacity(n_hint.min(MAX_HINT)),
            index: Index::new(root.0.id),
            order: Vec::new(),
        };
        let mut i = 0;
        while i < g.nodes.len() {
            g.first_edge.push(g.edges.len() as u32);
            let node = &g.nodes[i].0;
            if node.recorded {
                for input in &node.inputs {
                    if !input.needs_grad() || input.0.id < min_id {
                        g.edges.push(NONE);
                        continue;
                    }
                    let next = g.nodes.len() as u32;
                    let slot = g.index.get_or_insert(input.0.id, next);
                    if slot == next {
                        g.nodes.push(input);
                    }
                    g.edges.push(slot);
                }
            }
            i += 1;
        }
        g.order = g.index.descending(g.nodes.len());
        GRAPH_SIZE.set((g.nodes.len(), g.edges.len()));
        g
    }

    /// The dense index of a discovered tensor.
    pub(crate) fn dense_index(&self, t: &Tensor<T>) -> Option<u32> {
        self.index.get(t.0.id)
    }

    #[inline]
    fn edges_of(&self, i: usize, n_inputs: usize) -> &[u32] {
        &self.edges[self.first_edge[i] as usize..][..n_inputs]
    }

    /// Cuts every edge that leads to no node in `wanted` (by dense index), so that
    /// rules compute only what the wanted gradients need. Returns, per node,
    /// whether a wanted node lies behind it (or is it).
    pub(crate) fn prune(&mut self, wanted: &[u32]) -> Vec<bool> {
        let mut needed = vec![false; self.nodes.len()];
        for &w in wanted {
            needed[w as usize] = true;
        }
        // Inputs have smaller ids: ascending id order sees them first.
        for &i in self.order.iter().rev() {
            let i = i as usize;
            let start = self.first_edge[i] as usize;
            let end = self
                .first_edge
                .get(i + 1)
                .map_or(self.edges.len(), |&e| e as usize);
            for e in &mut self.edges[start..end] {
                if *e != NONE {
                    if needed[*e as usize] {
                        needed[i] = true;
                    } else {
                        *e = NONE;
                    }
                }
            }
        }
        needed
    }
}

/// Which gradients the walk hands back.
pub(crate) enum Keep<'a> {
    /// Every leaf's (`backward`).
    Leaves,
    /// Those of the nodes marked by dense index (`grad`): leaves or not.
    Marked(&'a [bool]),
}

/// What the walk hands back: per dense node index, the gradient it received,
/// for the nodes `keep` asks for. Gradients that nothing keeps are freed as soon
/// as they are passed on.
pub(crate) fn run<T: Element>(
    graph: &Graph<'_, T>,
    seed: Tensor<T>,
    create_graph: bool,
    keep: Keep<'_>,
) -> Result<Vec<(usize, Tensor<T>)>> {
    // Rules are tensor ops: recorded with create_graph, plain arithmetic without.
    with_grad_mode(create_graph, || walk(graph, seed, create_graph, keep))
}

fn walk<T: Element>(
    graph: &Graph<'_, T>,
    seed: Tensor<T>,
    create_graph: bool,
    keep: Keep<'_>,
) -> Result<Vec<(usize, Tensor<T>)>> {
    let n = graph.nodes.len();
    let mut grads: Vec<Option<Tensor<T>>> = Vec::with_capacity(n);
    grads.resize_with(n, || None);
    grads[0] = Some(seed);
    let mut kept = Vec::new();
    // Hooks and retained gradients: per-node flags, read only while some node
    // anywhere has one. Anomaly mode: per-rule checks, only while it is on.
    let flagged = flags::any();
    let anomaly = anomaly::on_for_walk();
    let _in_walk = anomaly.then(anomaly::WalkScope::enter);
    // Ids grow with creation, so descending id is a reverse topological order:
    // a node's gradient is complete when its turn comes.
    for &i in &graph.order {
        let i = i as usize;
        let Some(mut grad) = grads[i].take() else {
            continue;
        };
        let node = graph.nodes[i];
        let mut retain = false;
        if flagged {
            let f = flags::get(node);
            if f & flags::HOOKED != 0 {
                grad = hooks::run(node, grad)?;
            }
            retain = f & flags::RETAIN != 0 && matches!(keep, Keep::Leaves);
        }
        let Some(gf) = node.grad_fn() else {
            if matches!(keep, Keep::Leaves) || matches!(keep, Keep::Marked(m) if m[i]) {
                kept.push((i, grad));
            }
            continue;
        };
        let edges = graph.edges_of(i, gf.inputs.len());
        let grad = match keep {
            Keep::Marked(m) if m[i] => {
                if edges.iter().all(|&e| e == NONE) {
                    // nothing wanted lies behind it: no need to run its rule
                    kept.push((i, grad));
                    continue;
                }
                kept.push((i, grad.clone()));
                grad
            }
            _ if retain => {
                kept.push((i, grad.clone()));
                grad
            }
            _ => grad,
        };
        let saves = gf.op.saves();
        check_versions(node, &gf, saves)?;
        #[cfg(test)]
        super::test_hooks::run(super::test_hooks::Point::BetweenCheckAndRule, gf.op.name());
        if !create_graph && !anomaly && add_into_region(&gf, edges, &mut grads, &grad) {
            #[cfg(test)]
            super::test_hooks::rule_ran();
            continue;
        }
        let cx = BackwardCx {
            inputs: gf.inputs,
            output: node,
            edges,
            create_graph,
        };
        // The rule owns the gradient: when nothing else holds it, the rule may
        // write its result into the same buffer.
        // (only user-defined rules can fail: built-in ones skip the `Result`)
        let input_grads = if saves == Saves::Custom {
            gf.op.try_backward(&cx, grad)?
        } else {
            gf.op.backward(&cx, grad)
        };
        #[cfg(test)]
        super::test_hooks::rule_ran();
        // Seqlock: a value the rule read may have been updated in place while it
        // ran; the versions tell, and the gradient is refused rather than wrong.
        check_versions(node, &gf, saves)?;
        if anomaly {
            anomaly::check_rule(node, gf.op.name(), gf.inputs, &input_grads)?;
        }
        debug_assert_eq!(
            input_grads.len(),
            gf.inputs.len(),
            "internal error: backward of {} returned the wrong number of gradients",
            gf.op.name()
        );
        let mut input_grads = input_grads;
        for (j, (input, &slot)) in gf.inputs.iter().zip(edges).enumerate() {
            if slot == NONE {
                continue;
            }
            let Some(g) = input_grads.get_mut(j).and_then(Option::take) else {
                continue;
            };
            let g = if crate::ops::same_shape(g.shape(), input.shape()) {
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
                // A recorded sum keeps both contributions in the gradient's graph.
                Some(prev) if create_graph => prev.add(&g),
                Some(prev) => accumulate(prev, g),
            });
        }
    }
    Ok(kept)
}

/// The shortcut of [`Op::grad_region`](super::Op::grad_region): adds `grad`
/// into its region of the gradient already held for the op's one input, when
/// nothing else sees that gradient. `false` (nothing done) otherwise.
fn add_into_region<T: Element>(
    gf: &GradFn<'_, T>,
    edges: &[u32],
    grads: &mut [Option<Tensor<T>>],
    grad: &Tensor<T>,
) -> bool {
    let ([input], &[slot]) = (gf.inputs, edges) else {
        return false;
    };
    // Cheapest first: in a chain the input has no gradient yet, and the
    // virtual call below is then never made.
    if slot == NONE {
        return false;
    }
    let Some(held) = grads[slot as usize].as_mut() else {
        return false;
    };
    let Some(region) = gf.op.grad_region(input.shape(), grad.shape()) else {
        return false;
    };
    let Some(d) = held.exclusive_buf() else {
        return false;
    };
    crate::kernels::elementwise::add_into_view(d, &region, &grad.read(), grad.layout());
    #[cfg(test)]
    REGION_ADDS.with(|c| c.set(c.get() + 1));
    true
}

#[cfg(test)]
thread_local! {
    /// Gradients this thread's walks added into a region (tests check the path runs).
    pub(super) static REGION_ADDS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Refuses to run (or to keep the result of) a rule whose saved values were
/// updated in place since the forward pass recorded them.
#[inline(always)]
fn check_versions<T: Element>(node: &Tensor<T>, gf: &GradFn<'_, T>, saves: Saves) -> Result<()> {
    if saves == Saves::Nothing {
        return Ok(());
    }
    check_saved(node, gf, saves)
}

fn check_saved<T: Element>(node: &Tensor<T>, gf: &GradFn<'_, T>, saves: Saves) -> Result<()> {
    let input = |j: usize| {
        let (saved, current) = (gf.versions[j], gf.inputs[j].storage().version());
        if current == saved {
            Ok(())
        } else {
            Err(modified(gf, format!("input {j}"), saved, current))
        }
    };
    match saves {
        Saves::Nothing => {}
        Saves::Custom => return gf.op.check_custom(node),
        Saves::Input(j) => input(j)?,
        Saves::Inputs | Saves::Both => (0..gf.inputs.len()).try_for_each(input)?,
        Saves::Output => {}
    }
    if matches!(saves, Saves::Output | Saves::Both) {
        let current = node.storage().version();
        if current != gf.out_version {
            return Err(modified(gf, "output".into(), gf.out_version, current));
        }
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn modified<T: Element>(gf: &GradFn<'_, T>, which: String, saved: u64, current: u64) -> Error {
    Error::ModifiedInPlace {
        op: gf.op.name(),
        which,
        saved,
        current,
    }
}

/// `prev + g` for two gradients of one node (same shape), without a strided
/// pass when it can be avoided: into whichever buffer nothing else can see, or,
/// when both are dense in the same memory order (two transposed weight
/// gradients), buffer to buffer in that order.
fn accumulate<T: Element>(mut prev: Tensor<T>, mut g: Tensor<T>) -> Tensor<T> {
    debug_assert_eq!(prev.shape(), g.shape());
    // (an exclusive buffer is shared with nothing: the other's lock is free)
    if let Some(d) = prev.exclusive_buf() {
        crate::kernels::elementwise::add_assign(d, &g.read(), g.layout());
        return prev;
    }
    if let Some(d) = g.exclusive_buf() {
        crate::kernels::elementwise::add_assign(d, &prev.read(), prev.layout());
        return g;
    }
    if prev.layout().strides == g.layout().strides && prev.is_dense() && g.is_dense() {
        let r = crate::ops::ReadMany::new(&[&prev, &g]);
        let sum = crate::kernels::elementwise::zip(
            r.get(0),
            &crate::layout::Layout::contiguous(&[prev.numel()]),
            r.get(1),
            &crate::layout::Layout::contiguous(&[g.numel()]),
            crate::ops::Cheap,
            |a, b| a + b,
        );
        let storage = crate::storage::Storage::new(sum);
        return Tensor::from_parts(storage, prev.layout().clone(), false);
    }
    prev.add(&g)
}

#[cfg(test)]
mod tests {
    use super::{Index, NONE};
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use std::collections::HashMap;

    #[test]
    fn index_agrees_with_a_map_and_a_sort() {
        // Ids below a root, near (a chain) and far (old parameters), in random
        // order with repeats: the table and map give each id one dense index,
        // find it again, and list the indices by descending id.
        let mut rng = StdRng::seed_from_u64(7);
        for case in 0..200 {
            let root = 1_000_000;
            let mut index = Index::new(root);
            let mut reference: HashMap<usize, u32> = HashMap::from([(root, 0)]);
            let mut next = 1u32;
            for _ in 0..rng.random_range(1..300) {
                let d = match rng.random_range(0..4) {
                    0 => rng.random_range(1..8),
                    1 => rng.random_range(1..200),
                    2 => rng.random_range(200..5_000),
                    _ => rng.random_range(5_000..root),
                };
                let id = root - d;
                let want = *reference.entry(id).or_insert(next);
                let got = index.get_or_insert(id, next);
                assert_eq!(got, want, "case {case}: id {id}");
                if got == next {
                    next += 1;
                }
            }
            for (&id, &i) in &reference {
                if id != root {
                    assert_eq!(index.get(id), Some(i), "case {case}: id {id}");
                }
            }
            assert_eq!(index.get(root + 1), None);
            assert_eq!(
                index.get(root - 123_457).is_some(),
                reference.contains_key(&(root - 123_457))
            );
            let mut by_id: Vec<(usize, u32)> = reference.into_iter().collect();
            by_id.sort_unstable_by_key(|&(id, _)| std::cmp::Reverse(id));
            let want: Vec<u32> = by_id.into_iter().map(|(_, i)| i).collect();
            assert_eq!(index.descending(next as usize), want, "case {case}");
            assert!(!want.contains(&NONE));
        }
    }
}
