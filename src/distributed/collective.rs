//! The [`Collective`] trait (what a group of ranks can do together) and its
//! generic front, [`CollectiveExt`].

use crate::element::{Element, FloatsMut};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Operations that every rank of a group calls together: the communication that
/// data-parallel training needs.
///
/// Every rank must call the same operations in the same order, with buffers of
/// the same length (and the same `root`); an operation returns once every rank has
/// taken part. Implementations: [`LocalCollective`](super::LocalCollective) (ranks
/// as threads of one process, in every build) and `MpiCollective` (processes on
/// one or several machines, with the `mpi` feature).
///
/// # Reductions in a fixed order
///
/// [`all_reduce_sum_f32`](Collective::all_reduce_sum_f32) and
/// [`all_reduce_sum_f64`](Collective::all_reduce_sum_f64) add the ranks' buffers
/// **in rank order**, element by element: `((b₀ + b₁) + b₂) + …`, whatever the
/// timing and whatever the implementation. Every rank gets the same bits, a run
/// can be repeated bit for bit, and the in-process group gives the same sums as
/// MPI. (Floating-point addition is not associative, so the order matters from 3
/// ranks on.)
///
/// The trait is object safe (`&dyn Collective` is what
/// [`DataParallel`](super::DataParallel) holds): it has one method per element
/// type, and [`CollectiveExt`] adds the generic forms over
/// [`Element`] for every implementation.
///
/// ```
/// use ferrograd::distributed::{local, Collective, CollectiveExt};
///
/// let sums = local::spawn(3, |comm| {
///     let mut buf = vec![comm.rank() as f32 + 1.0; 2];        // rank r holds r + 1
///     comm.all_reduce_sum(&mut buf)?;
///     Ok::<_, ferrograd::Error>(buf)
/// });
/// for s in sums {
///     assert_eq!(s?, vec![6.0, 6.0]);                         // 1 + 2 + 3 on every rank
/// }
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub trait Collective {
    /// This process's (or thread's) rank: `0..world_size()`.
    fn rank(&self) -> usize;

    /// The number of ranks in the group.
    fn world_size(&self) -> usize;

    /// Returns once every rank has called it.
    ///
    /// # Errors
    /// [`Error::Collective`] when the group is broken (a rank panicked, left, or
    /// called another operation) or MPI reports an error.
    fn barrier(&self) -> Result<()>;

    /// Replaces `buf` on every rank by the element-wise sum of all ranks' `buf`,
    /// added in rank order (see [the trait](Collective#reductions-in-a-fixed-order)).
    ///
    /// # Errors
    /// [`Error::Collective`] as for [`barrier`](Collective::barrier), and when the
    /// ranks' buffers have different lengths (where the implementation can tell:
    /// the in-process group always does; under MPI it is the caller's duty).
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()>;

    /// [`all_reduce_sum_f32`](Collective::all_reduce_sum_f32) for `f64`.
    ///
    /// # Errors
    /// As [`all_reduce_sum_f32`](Collective::all_reduce_sum_f32).
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;

    /// Copies rank `root`'s `buf` into every other rank's `buf`.
    ///
    /// # Errors
    /// [`Error::Collective`] as for
    /// [`all_reduce_sum_f32`](Collective::all_reduce_sum_f32), and when `root` is
    /// not a rank of the group.
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<()>;

    /// [`broadcast_f32`](Collective::broadcast_f32) for `f64`.
    ///
    /// # Errors
    /// As [`broadcast_f32`](Collective::broadcast_f32).
    fn broadcast_f64(&self, buf: &mut [f64], root: usize) -> Result<()>;

    /// Copies rank `root`'s bytes to every other rank, whose `buf` is resized to
    /// fit (its length on entry does not matter).
    ///
    /// # Errors
    /// As [`broadcast_f32`](Collective::broadcast_f32).
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()>;

    /// Every rank's `mine`, in rank order, on every rank (the lengths may differ).
    ///
    /// # Errors
    /// [`Error::Collective`] as for [`barrier`](Collective::barrier).
    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>>;
}

/// The generic forms of the [`Collective`] operations, for buffers and tensors of
/// any [`Element`] type; implemented for every `Collective`
/// (`dyn Collective` included).
///
/// ```
/// use ferrograd::distributed::{local, Collective, CollectiveExt};
/// use ferrograd::Tensor;
///
/// let out = local::spawn(2, |comm| -> ferrograd::Result<(Vec<f64>, Vec<f32>)> {
///     let mut g = vec![comm.rank() as f64 + 1.0];              // 1 on rank 0, 2 on rank 1
///     comm.all_reduce_mean(&mut g)?;                           // (1 + 2) / 2
///     let w = Tensor::<f32>::full(&[2], comm.rank() as f32);   // 0 on rank 0, 1 on rank 1
///     comm.broadcast_tensor(&w, 1)?;                           // rank 1's values everywhere
///     Ok((g, w.to_vec()))
/// });
/// for r in out {
///     assert_eq!(r?, (vec![1.5], vec![1.0, 1.0]));
/// }
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub trait CollectiveExt: Collective {
    /// [`all_reduce_sum_f32`](Collective::all_reduce_sum_f32) or
    /// [`all_reduce_sum_f64`](Collective::all_reduce_sum_f64), by `T`.
    ///
    /// # Errors
    /// As [`all_reduce_sum_f32`](Collective::all_reduce_sum_f32).
    fn all_reduce_sum<T: Element>(&self, buf: &mut [T]) -> Result<()> {
        match T::floats_mut(buf) {
            FloatsMut::F32(b) => self.all_reduce_sum_f32(b),
            FloatsMut::F64(b) => self.all_reduce_sum_f64(b),
        }
    }

    /// The element-wise mean over the ranks: the [sum](CollectiveExt::all_reduce_sum)
    /// (in rank order) divided by [`world_size`](Collective::world_size).
    ///
    /// # Errors
    /// As [`all_reduce_sum_f32`](Collective::all_reduce_sum_f32).
    fn all_reduce_mean<T: Element>(&self, buf: &mut [T]) -> Result<()> {
        self.all_reduce_sum(buf)?;
        let n = self.world_size();
        if n > 1 {
            let n = T::from_usize(n).expect("a rank count is a float");
            buf.iter_mut().for_each(|v| *v /= n);
        }
        Ok(())
    }

    /// [`broadcast_f32`](Collective::broadcast_f32) or
    /// [`broadcast_f64`](Collective::broadcast_f64), by `T`.
    ///
    /// # Errors
    /// As [`broadcast_f32`](Collective::broadcast_f32).
    fn broadcast<T: Element>(&self, buf: &mut [T], root: usize) -> Result<()> {
        match T::floats_mut(buf) {
            FloatsMut::F32(b) => self.broadcast_f32(b, root),
            FloatsMut::F64(b) => self.broadcast_f64(b, root),
        }
    }

    /// Overwrites `tensor`'s elements on every rank with rank `root`'s, in place
    /// (as [`Tensor::assign`] does: every handle sees the new values, and the
    /// buffer's version is bumped on the ranks that receive).
    ///
    /// # Errors
    /// As [`broadcast_f32`](Collective::broadcast_f32); the tensors must have the
    /// same number of elements on every rank.
    fn broadcast_tensor<T: Element>(&self, tensor: &Tensor<T>, root: usize) -> Result<()> {
        let mut values = tensor.to_vec();
        self.broadcast(&mut values, root)?;
        if self.rank() != root {
            tensor.update_with(|d| d.copy_from_slice(&values));
        }
        Ok(())
    }
}

impl<C: Collective + ?Sized> CollectiveExt for C {}

/// The error for `root` outside a group of `size` ranks.
pub(crate) fn check_root(op: &'static str, rank: usize, root: usize, size: usize) -> Result<()> {
    if root < size {
        Ok(())
    } else {
        Err(Error::Collective {
            op,
            rank,
            msg: format!("root {root} is not a rank of this group of {size} (ranks 0..{size})"),
        })
    }
}

/// `out = parts[0] + parts[1] + …`, element by element, added in the order given
/// (rank order): the one reduction every implementation uses, so that they all
/// give the same bits.
pub(crate) fn sum_in_order<'a, T, I>(out: &mut [T], mut parts: I)
where
    T: Copy + std::ops::AddAssign + 'a,
    I: Iterator<Item = &'a [T]>,
{
    match parts.next() {
        Some(first) => out.copy_from_slice(first),
        None => return,
    }
    add_in_order(out, parts);
}

/// `acc += parts[0]; acc += parts[1]; …`, element by element, in the order given
/// (`acc` holding the first rank's values: [`sum_in_order`] in place).
pub(crate) fn add_in_order<'a, T, I>(acc: &mut [T], parts: I)
where
    T: Copy + std::ops::AddAssign + 'a,
    I: Iterator<Item = &'a [T]>,
{
    for part in parts {
        for (o, &v) in acc.iter_mut().zip(part) {
            *o += v;
        }
    }
}

/// The part of `0..len` that rank `rank` of `world` takes when `len` items are
/// split into `world` contiguous parts as evenly as possible: the first
/// `len % world` ranks take one item more.
pub(crate) fn part_range(len: usize, rank: usize, world: usize) -> std::ops::Range<usize> {
    let (q, r) = (len / world, len % world);
    let start = rank * q + rank.min(r);
    start..start + q + usize::from(rank < r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_tile_the_range_evenly() {
        for len in 0..12 {
            for world in 1..6 {
                let parts: Vec<_> = (0..world).map(|r| part_range(len, r, world)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[world - 1].end, len);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[0].len() >= w[1].len() && w[0].len() - w[1].len() <= 1);
                }
            }
        }
        assert_eq!(part_range(10, 0, 4), 0..3);
        assert_eq!(part_range(10, 1, 4), 3..6);
        assert_eq!(part_range(10, 2, 4), 6..8);
        assert_eq!(part_range(10, 3, 4), 8..10);
    }

    #[test]
    fn sums_in_the_order_given() {
        // 1e8 + 1 − 1e8 in f32: the order decides (1 is lost next to 1e8)
        let parts: [&[f32]; 3] = [&[1e8], &[1.0], &[-1e8]];
        let mut out = [0.0f32];
        sum_in_order(&mut out, parts.iter().copied());
        assert_eq!(out, [0.0]);
        sum_in_order(&mut out, [parts[0], parts[2], parts[1]].into_iter());
        assert_eq!(out, [1.0]);
    }
}
