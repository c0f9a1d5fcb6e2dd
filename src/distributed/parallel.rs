//! [`DataParallel`]: one model replicated across the ranks of a group, its
//! gradients averaged in buckets after each backward pass.

use std::cell::RefCell;
use std::fmt;

use super::collective::{Collective, CollectiveExt};
use crate::autograd::Gradients;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::nn::ModuleParams;
use crate::tensor::Tensor;

/// Data-parallel training on the ranks of a [`Collective`] group: keeps the
/// replicas of a model equal by averaging their gradients.
///
/// - [`new`](DataParallel::new) (or [`from_module`](DataParallel::from_module))
///   checks on every rank, with one all-gather, that all ranks hold parameters
///   of the same names, shapes, order and element type (a difference is an
///   [`Error::ReplicaMismatch`] on every rank, before any training), then
///   copies rank 0's values into every rank's parameters (and buffers).
/// - [`all_reduce_gradients`](DataParallel::all_reduce_gradients) takes the
///   [`Gradients`] of a rank's backward pass and returns them averaged over the
///   ranks: `(g₀ + g₁ + … + g_{N−1}) / N`, added in rank order, the same bits on
///   every rank, so every replica's optimizer makes the same update. Feed them
///   to your optimizer as usual:
///   `opt.step(&dp.all_reduce_gradients(loss.backward()?)?)?`.
///
/// # Buckets and order
///
/// The gradients travel in a few large flat buffers ("buckets", 16 MiB each by
/// default, [`bucket_bytes`](DataParallel::bucket_bytes) to change it): the
/// parameters' gradients are laid end to end in the order the parameters were
/// given, cut into buckets, and each bucket is one all-reduce. Before them, one
/// small all-reduce of a flag per parameter tells every rank which parameters
/// have a gradient on *some* rank.
///
/// # Parameters without a gradient
///
/// A parameter that has a gradient on any rank gets one on every rank: a rank
/// where backward did not reach it contributes zeros (the mean then counts it as
/// a rank whose loss does not depend on it, as a single process would over the
/// whole batch). A parameter that no rank has a gradient for gets none, on every
/// rank. So the optimizers update the same parameters on every rank, and their
/// per-parameter state (Adam's step counts) never diverges.
///
/// Gradients of leaves that are not this helper's parameters are returned as
/// they came, not averaged.
///
/// ```
/// use ferrograd::distributed::{local, Collective, DataParallel};
/// use ferrograd::optim::{Adam, AdamConfig, Optimizer};
/// use ferrograd::Tensor;
///
/// let out = local::spawn(2, |comm| -> ferrograd::Result<(Vec<f32>, usize)> {
///     let w = Tensor::<f32>::full(&[2], 1.0 + comm.rank() as f32).requires_grad();
///     let b = Tensor::<f32>::zeros(&[1]).requires_grad();
///     let dp = DataParallel::new(&comm, vec![("w".into(), w.clone()), ("b".into(), b.clone())])?;
///     assert_eq!(w.to_vec(), [1.0, 1.0]);                   // rank 0's values everywhere
///     let mut opt = Adam::new(vec![w.clone(), b.clone()], AdamConfig::default());
///     // rank 0's loss uses w only, rank 1's uses w and b
///     let loss = if comm.rank() == 0 { (&w * 2.0).sum() } else { (&w * 4.0).sum() + &b };
///     let grads = dp.all_reduce_gradients(loss.backward()?)?;
///     assert_eq!(grads.get(&w).unwrap().to_vec(), [3.0, 3.0]);   // (2 + 4) / 2
///     assert_eq!(grads.get(&b).unwrap().to_vec(), [0.5]);        // (0 + 1) / 2: on both ranks
///     opt.step(&grads)?;
///     Ok((w.to_vec(), opt.state(1).unwrap().step))
/// });
/// let (r0, r1) = (out[0].as_ref().unwrap(), out[1].as_ref().unwrap());
/// assert_eq!(r0, r1);
/// assert_eq!(r0.1, 1);                                        // b was updated on both ranks
/// ```
pub struct DataParallel<'c, T: Element = f32> {
    comm: &'c dyn Collective,
    params: Vec<(String, Tensor<T>)>,
    buffers: Vec<(String, Tensor<T>)>,
    bucket_elems: usize,
    /// The bucket, kept from call to call (fresh memory every step costs page
    /// faults).
    bucket: RefCell<Vec<T>>,
}

/// Parameters or buffers, for the start-up check's messages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Parameter,
    Buffer,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Parameter => "parameter",
            Kind::Buffer => "buffer",
        })
    }
}

/// One parameter or buffer as the start-up check compares it.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Entry {
    kind: Kind,
    name: String,
    dtype: String,
    shape: Vec<usize>,
}

impl<'c, T: Element> DataParallel<'c, T> {
    /// The default bucket size: 16 MiB (4 Mi `f32` gradients per all-reduce).
    pub const DEFAULT_BUCKET_BYTES: usize = 16 << 20;

    /// Replicates the parameters `params` (as
    /// [`named_parameters`](ModuleParams::named_parameters) gives them) across the
    /// ranks of `comm`: checks that every rank has the same names, shapes, order
    /// and element type, then copies rank 0's values into every rank's
    /// parameters, in place (the optimizer's and the model's handles see them).
    ///
    /// Every rank must call it, at the same point.
    ///
    /// # Errors
    /// [`Error::ReplicaMismatch`], on every rank, when the ranks' parameters
    /// differ (naming the first rank that differs from rank 0 and up to four
    /// differences: a missing or unexpected name, a shape, the order, the element
    /// type); [`Error::Collective`] when the group fails.
    pub fn new(comm: &'c dyn Collective, params: Vec<(String, Tensor<T>)>) -> Result<Self> {
        Self::build(comm, params, Vec::new())
    }

    /// Like [`new`](DataParallel::new) with a module's
    /// [`named_parameters`](ModuleParams::named_parameters), and its
    /// [`named_buffers`](ModuleParams::named_buffers) too: those are checked and
    /// copied from rank 0 as well, but not averaged (they have no gradient).
    ///
    /// # Errors
    /// As [`new`](DataParallel::new).
    pub fn from_module<M: ModuleParams<T> + ?Sized>(
        comm: &'c dyn Collective,
        model: &M,
    ) -> Result<Self> {
        Self::build(comm, model.named_parameters(), model.named_buffers())
    }

    fn build(
        comm: &'c dyn Collective,
        params: Vec<(String, Tensor<T>)>,
        buffers: Vec<(String, Tensor<T>)>,
    ) -> Result<Self> {
        let dp = DataParallel {
            comm,
            params,
            buffers,
            bucket_elems: Self::DEFAULT_BUCKET_BYTES / std::mem::size_of::<T>(),
            bucket: RefCell::new(Vec::new()),
        };
        dp.check_replicas()?;
        dp.broadcast_parameters(0)?;
        Ok(dp)
    }

    /// Sets the bucket size, in bytes (rounded down to whole elements, at least
    /// one): the largest buffer each all-reduce of
    /// [`all_reduce_gradients`](DataParallel::all_reduce_gradients) moves, and the
    /// extra memory it takes. Larger buckets mean fewer all-reduces (each has a
    /// fixed latency); the sums are the same bits whatever the size. Every rank
    /// must use the same size.
    #[must_use]
    pub fn bucket_bytes(mut self, bytes: usize) -> Self {
        self.bucket_elems = (bytes / std::mem::size_of::<T>()).max(1);
        self
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.comm.world_size()
    }

    /// The group.
    pub fn comm(&self) -> &'c dyn Collective {
        self.comm
    }

    /// The parameters, by name, in the order their gradients travel.
    pub fn parameters(&self) -> &[(String, Tensor<T>)] {
        &self.params
    }

    /// How many all-reduces (buckets) the gradients of all parameters take,
    /// besides the one of the flags.
    pub fn num_buckets(&self) -> usize {
        let total: usize = self.params.iter().map(|(_, p)| p.numel()).sum();
        total.div_ceil(self.bucket_elems)
    }

    /// Averages `grads` over the ranks (see [the type](DataParallel)): returns
    /// them with each parameter's gradient replaced by the mean of all ranks'
    /// (a zero gradient inserted where this rank had none and another rank had
    /// one). The averaged values are written into the gradients' own buffers.
    /// Every rank must call it, once per step.
    ///
    /// A gradient that is itself recorded (taken with `create_graph`) is
    /// replaced by a plain tensor: the mean across processes is not
    /// differentiable.
    ///
    /// # Errors
    /// [`Error::Collective`] when the group fails; [`Error::ShapeMismatch`] when a
    /// gradient's shape is not its parameter's.
    pub fn all_reduce_gradients(&self, mut grads: Gradients<T>) -> Result<Gradients<T>> {
        // which parameters have a gradient on some rank
        let mut flags: Vec<T> = self
            .params
            .iter()
            .map(|(_, p)| {
                if grads.get(p).is_some() {
                    T::one()
                } else {
                    T::zero()
                }
            })
            .collect();
        self.comm.all_reduce_sum(&mut flags)?;
        let mut tensors = Vec::new();
        for ((_, p), &flag) in self.params.iter().zip(&flags) {
            if flag == T::zero() {
                continue;
            }
            let g = match grads.get(p) {
                Some(g) if g.shape() != p.shape() => {
                    return Err(Error::shape("all_reduce_gradients", p.shape(), g.shape()));
                }
                Some(g) if !g.needs_grad() && g.is_contiguous() => g.clone(),
                other => {
                    // a plain copy of a recorded gradient, or zeros; handed to
                    // `grads` first (it keeps an exclusive tensor as it is), then
                    // shared, so that the averages land in its buffer
                    let plain = match other {
                        Some(g) => Tensor::from_vec(g.to_vec(), g.shape())?,
                        None => Tensor::zeros(p.shape()),
                    };
                    grads.insert(p, plain);
                    grads.get(p).expect("just inserted").clone()
                }
            };
            tensors.push(g);
        }
        self.for_each_bucket(&tensors, |bucket| self.comm.all_reduce_mean(bucket), true)?;
        Ok(grads)
    }

    /// Copies rank `root`'s parameters and buffers into every other rank's, in
    /// place, bucket by bucket (as [`new`](DataParallel::new) does from rank 0).
    /// Every rank must call it.
    ///
    /// # Errors
    /// [`Error::Collective`] when the group fails or `root` is not a rank.
    pub fn broadcast_parameters(&self, root: usize) -> Result<()> {
        let all: Vec<Tensor<T>> = self
            .params
            .iter()
            .chain(&self.buffers)
            .map(|(_, t)| t.clone())
            .collect();
        let receive = self.comm.rank() != root;
        self.for_each_bucket(&all, |bucket| self.comm.broadcast(bucket, root), receive)
    }

    /// Lays `tensors` end to end, cuts them into buckets of at most
    /// `bucket_elems`, runs `f` on each bucket, and (with `write_back`) copies
    /// the bucket's values back into the tensors.
    fn for_each_bucket(
        &self,
        tensors: &[Tensor<T>],
        mut f: impl FnMut(&mut [T]) -> Result<()>,
        write_back: bool,
    ) -> Result<()> {
        let total: usize = tensors.iter().map(Tensor::numel).sum();
        if total == 0 {
            return Ok(());
        }
        let mut bucket = self.bucket.borrow_mut();
        bucket.clear();
        bucket.reserve(total.min(self.bucket_elems));
        // the pieces of tensors in the bucket: (tensor, offset in the tensor, length)
        let mut pieces: Vec<(usize, usize, usize)> = Vec::new();
        let mut flush = |bucket: &mut Vec<T>, pieces: &mut Vec<(usize, usize, usize)>| {
            f(bucket)?;
            if write_back {
                let mut at = 0;
                for &(i, offset, len) in pieces.iter() {
                    let src = &bucket[at..at + len];
                    tensors[i].update_with(|d| d[offset..offset + len].copy_from_slice(src));
                    at += len;
                }
            }
            bucket.clear();
            pieces.clear();
            Ok::<(), Error>(())
        };
        for (i, t) in tensors.iter().enumerate() {
            let n = t.numel();
            let mut offset = 0;
            while offset < n {
                let len = (n - offset).min(self.bucket_elems - bucket.len());
                t.with_contiguous(|d| bucket.extend_from_slice(&d[offset..offset + len]));
                pieces.push((i, offset, len));
                offset += len;
                if bucket.len() == self.bucket_elems {
                    flush(&mut bucket, &mut pieces)?;
                }
            }
        }
        if !bucket.is_empty() {
            flush(&mut bucket, &mut pieces)?;
        }
        Ok(())
    }

    /// Compares every rank's parameters and buffers with rank 0's.
    fn check_replicas(&self) -> Result<()> {
        let mine = self.entries();
        let gathered = self.comm.all_gather_bytes(&encode(&mine))?;
        let all: Vec<Vec<Entry>> = gathered
            .iter()
            .enumerate()
            .map(|(r, bytes)| {
                decode(bytes).ok_or_else(|| Error::Collective {
                    op: "DataParallel::new",
                    rank: self.comm.rank(),
                    msg: format!("rank {r} sent an unreadable description of its model"),
                })
            })
            .collect::<Result<_>>()?;
        for (r, entries) in all.iter().enumerate().skip(1) {
            let diffs = differences(&all[0], entries, r);
            if !diffs.is_empty() {
                let shown = diffs.len().min(4);
                let mut msg = diffs[..shown].join("; ");
                if diffs.len() > shown {
                    msg.push_str(&format!("; and {} more", diffs.len() - shown));
                }
                return Err(Error::ReplicaMismatch { rank: r, msg });
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<Entry> {
        let entry = |kind, (name, t): &(String, Tensor<T>)| Entry {
            kind,
            name: name.clone(),
            dtype: T::DTYPE.to_string(),
            shape: t.shape().to_vec(),
        };
        self.params
            .iter()
            .map(|p| entry(Kind::Parameter, p))
            .chain(self.buffers.iter().map(|b| entry(Kind::Buffer, b)))
            .collect()
    }
}

impl<T: Element> fmt::Debug for DataParallel<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataParallel")
            .field("rank", &self.comm.rank())
            .field("world_size", &self.comm.world_size())
            .field(
                "parameters",
                &self.params.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "buffers",
                &self.buffers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("bucket_elems", &self.bucket_elems)
            .finish()
    }
}

/// What differs between rank 0's entries and rank `r`'s, in words.
fn differences(base: &[Entry], other: &[Entry], r: usize) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(a), Some(b)) = (base.first(), other.first()) {
        if a.dtype != b.dtype {
            out.push(format!(
                "its elements are {}, rank 0's are {}",
                b.dtype, a.dtype
            ));
            return out;
        }
    }
    let find = |list: &[Entry], e: &Entry| {
        list.iter()
            .position(|x| x.kind == e.kind && x.name == e.name)
    };
    for e in base {
        match find(other, e) {
            None => out.push(format!(
                "rank {r} has no {} `{}` (rank 0's has shape {:?})",
                e.kind, e.name, e.shape
            )),
            Some(j) if other[j].shape != e.shape => out.push(format!(
                "{} `{}` has shape {:?} on rank {r} and {:?} on rank 0",
                e.kind, e.name, other[j].shape, e.shape
            )),
            Some(_) => {}
        }
    }
    for e in other {
        if find(base, e).is_none() {
            out.push(format!(
                "rank {r} has a {} `{}` (shape {:?}) that rank 0 does not have",
                e.kind, e.name, e.shape
            ));
        }
    }
    if out.is_empty() && base != other {
        // the same entries in another order
        let i = base
            .iter()
            .zip(other)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        out.push(format!(
            "the same {}s in another order: at position {i}, rank 0 has `{}` and rank {r} has `{}`",
            base[i].kind, base[i].name, other[i].name
        ));
    }
    out
}

/// The entries as bytes: for each, kind (1 byte), name, dtype (length-prefixed),
/// rank, dims (u64, little-endian).
fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let put = |out: &mut Vec<u8>, v: usize| out.extend_from_slice(&(v as u64).to_le_bytes());
    put(&mut out, entries.len());
    for e in entries {
        out.push(u8::from(e.kind == Kind::Buffer));
        for s in [&e.name, &e.dtype] {
            put(&mut out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        put(&mut out, e.shape.len());
        for &d in &e.shape {
            put(&mut out, d);
        }
    }
    out
}

fn decode(bytes: &[u8]) -> Option<Vec<Entry>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = bytes.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    fn num(b: &[u8]) -> usize {
        u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize
    }
    let count = num(take(8)?);
    let mut out = Vec::new();
    for _ in 0..count {
        let kind = match take(1)?[0] {
            0 => Kind::Parameter,
            _ => Kind::Buffer,
        };
        let mut text = || -> Option<String> {
            let n = num(take(8)?);
            String::from_utf8(take(n)?.to_vec()).ok()
        };
        let name = text()?;
        let dtype = text()?;
        let ndim = num(take(8)?);
        let shape = (0..ndim)
            .map(|_| take(8).map(num))
            .collect::<Option<Vec<_>>>()?;
        out.push(Entry {
            kind,
            name,
            dtype,
            shape,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: Kind, name: &str, shape: &[usize]) -> Entry {
        Entry {
            kind,
            name: name.into(),
            dtype: "f32".into(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn descriptions_round_trip() {
        let entries = vec![
            e(Kind::Parameter, "fc.weight", &[3, 2]),
            e(Kind::Parameter, "scale", &[]),
            e(Kind::Buffer, "näme\twith\nodd bytes", &[0, 7]),
        ];
        let bytes = encode(&entries);
        assert_eq!(decode(&bytes), Some(entries));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode(&[]), None);
    }

    #[test]
    fn differences_in_words() {
        let base = vec![
            e(Kind::Parameter, "w", &[2, 2]),
            e(Kind::Parameter, "b", &[2]),
        ];
        assert!(differences(&base, &base, 1).is_empty());
        let other = vec![
            e(Kind::Parameter, "w", &[3, 2]),
            e(Kind::Parameter, "c", &[2]),
        ];
        assert_eq!(
            differences(&base, &other, 2),
            [
                "parameter `w` has shape [3, 2] on rank 2 and [2, 2] on rank 0",
                "rank 2 has no parameter `b` (rank 0's has shape [2])",
                "rank 2 has a parameter `c` (shape [2]) that rank 0 does not have",
            ]
        );
        let swapped = vec![base[1].clone(), base[0].clone()];
        assert_eq!(
            differences(&base, &swapped, 1),
            ["the same parameters in another order: at position 0, rank 0 has `w` and rank 1 has `b`"]
        );
        let mut f64s = base.clone();
        f64s.iter_mut().for_each(|x| x.dtype = "f64".into());
        assert_eq!(
            differences(&base, &f64s, 1),
            ["its elements are f64, rank 0's are f32"]
        );
    }
}
