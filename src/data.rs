//! Mini-batch iteration for epochs: shuffled index batches ([`Batches`]), a
//! resumable source of them ([`Shuffler`]), and the rows they pick
//! ([`gather_rows`]).
//!
//! One epoch visits every sample index exactly once, in batches. Build a new
//! [`Batches`] per epoch from the same seeded RNG: each epoch gets a new order, and
//! the whole run is reproducible. To resume an interrupted run with the same
//! orders, draw the epochs from a [`Shuffler`] instead, whose whole state is two
//! numbers that fit in a checkpoint.
//!
//! For data-parallel training ([`distributed`](crate::distributed)), every rank
//! draws the same shuffle and takes its own part of each global batch with
//! [`Batches::shard`] (or [`shard`] on any batch).
//!
//! ```
//! use ferrograd::data::{gather_rows, Batches};
//! use ferrograd::rand::{rngs::StdRng, SeedableRng};
//! use ferrograd::{loss, Tensor};
//!
//! let x = Tensor::<f32>::randn(&[10, 3], &mut StdRng::seed_from_u64(1));
//! let labels: Vec<usize> = (0..10).map(|i| i % 2).collect();
//! let w = Tensor::<f32>::zeros(&[3, 2]).requires_grad();
//! let mut rng = StdRng::seed_from_u64(0);
//! for _epoch in 0..2 {
//!     for batch in Batches::new(10, 4).shuffle(&mut rng) {      // sizes 4, 4, 2
//!         let xb = gather_rows(&x, &batch);                     // [batch.len(), 3]
//!         let yb: Vec<usize> = batch.iter().map(|&i| labels[i]).collect();
//!         let loss = loss::cross_entropy(&xb.matmul(&w), &yb)?;
//!         let grads = loss.backward()?;
//!         w.assign(&(&w - grads.get(&w).unwrap() * 0.1))?;
//!     }
//! }
//! # Ok::<(), ferrograd::Error>(())
//! ```

use std::iter::FusedIterator;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::element::Element;
use crate::error::{or_panic, Error, Result};
use crate::nn::RngState;
use crate::tensor::Tensor;

/// The batches of one epoch over `n` samples: index lists of `batch_size` each
/// (the last one shorter unless [`drop_last`](Batches::drop_last)), in order
/// `0..n` or [shuffled](Batches::shuffle).
///
/// Iterating by value yields `Vec<usize>`; iterating a reference (or [`iter`](Batches::iter))
/// yields `&[usize]` slices and leaves the `Batches` reusable.
///
/// ```
/// use ferrograd::data::Batches;
/// let b = Batches::new(5, 2);
/// assert_eq!(b.len(), 3);
/// assert_eq!(b.into_iter().collect::<Vec<_>>(), vec![vec![0, 1], vec![2, 3], vec![4]]);
/// let b = Batches::new(5, 2).drop_last(true);
/// assert_eq!(b.iter().collect::<Vec<_>>(), vec![&[0, 1][..], &[2, 3][..]]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batches {
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
}

impl Batches {
    /// The batches of `0..n` in order, `batch_size` indices each, the last batch
    /// kept even when it is shorter.
    ///
    /// # Panics
    /// Panics when `batch_size` is 0.
    #[track_caller]
    pub fn new(n: usize, batch_size: usize) -> Self {
        or_panic(Self::try_new(n, batch_size))
    }

    /// Like [`new`](Batches::new), returning [`Error::InvalidArgument`] instead of
    /// panicking when `batch_size` is 0.
    ///
    /// ```
    /// let e = ferrograd::data::Batches::try_new(10, 0).unwrap_err();
    /// assert_eq!(e.to_string(), "Batches::new: batch_size must be at least 1 (got 0, for 10 samples)");
    /// ```
    pub fn try_new(n: usize, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::invalid(
                "Batches::new",
                format!("batch_size must be at least 1 (got 0, for {n} samples)"),
            ));
        }
        Ok(Batches {
            order: (0..n).collect(),
            batch_size,
            drop_last: false,
        })
    }

    /// Shuffles the sample order with `rng` (uniformly, Fisher–Yates). The same
    /// seed gives the same order; drawing from one RNG epoch after epoch gives a
    /// new order each epoch.
    ///
    /// ```
    /// use ferrograd::data::Batches;
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    /// let a = Batches::new(100, 10).shuffle(&mut StdRng::seed_from_u64(7));
    /// let b = Batches::new(100, 10).shuffle(&mut StdRng::seed_from_u64(7));
    /// assert_eq!(a, b);
    /// let mut seen = a.order().to_vec();
    /// seen.sort_unstable();
    /// assert_eq!(seen, (0..100).collect::<Vec<_>>());
    /// ```
    #[must_use]
    pub fn shuffle<R: Rng + ?Sized>(mut self, rng: &mut R) -> Self {
        self.order.shuffle(rng);
        self
    }

    /// Whether to leave out the last batch when it is shorter than `batch_size`
    /// (default `false`: it is kept). Useful when every step must see a full batch.
    #[must_use]
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// The number of samples, `n`.
    pub fn num_samples(&self) -> usize {
        self.order.len()
    }

    /// The size of every batch but possibly the last.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The number of batches: `⌈n / batch_size⌉`, or `⌊n / batch_size⌋` with
    /// [`drop_last`](Batches::drop_last).
    pub fn len(&self) -> usize {
        self.visited().div_ceil(self.batch_size)
    }

    /// True when there is no batch (no samples, or fewer than one full batch with
    /// [`drop_last`](Batches::drop_last)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sample indices in visiting order, all `n` of them (including those a
    /// dropped last batch would hold).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The batches as slices of [`order`](Batches::order).
    pub fn iter(&self) -> std::slice::Chunks<'_, usize> {
        self.order[..self.visited()].chunks(self.batch_size)
    }

    /// Rank `rank`'s part of every batch, for data-parallel training over
    /// `world` ranks: [`shard`]`(batch, rank, world)` for each batch of
    /// [`iter`](Batches::iter). Build the same `Batches` on every rank (same
    /// size, same seeded shuffle): the ranks' parts of a batch are then disjoint
    /// and together they are the batch, and every rank runs the same number of
    /// steps ([`len`](Batches::len)).
    ///
    /// ```
    /// use ferrograd::data::Batches;
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    ///
    /// let batches = Batches::new(10, 4).shuffle(&mut StdRng::seed_from_u64(3));
    /// let rank0: Vec<&[usize]> = batches.shard(0, 2).collect();
    /// let rank1: Vec<&[usize]> = batches.shard(1, 2).collect();
    /// for ((whole, a), b) in batches.iter().zip(&rank0).zip(&rank1) {
    ///     assert_eq!([*a, *b].concat(), whole);   // the halves of each global batch
    /// }
    /// assert_eq!(rank0.iter().map(|p| p.len()).collect::<Vec<_>>(), [2, 2, 1]);   // 4, 4, 2 split
    /// ```
    ///
    /// # Panics
    /// Panics when `world` is 0 or `rank` is not below it.
    #[track_caller]
    pub fn shard(&self, rank: usize, world: usize) -> Shards<'_> {
        or_panic(check_rank("Batches::shard", rank, world));
        Shards {
            batches: self.iter(),
            rank,
            world,
        }
    }

    /// How many indices the batches cover.
    fn visited(&self) -> usize {
        let n = self.order.len();
        if self.drop_last {
            n - n % self.batch_size
        } else {
            n
        }
    }
}

impl<'a> IntoIterator for &'a Batches {
    type Item = &'a [usize];
    type IntoIter = std::slice::Chunks<'a, usize>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for Batches {
    type Item = Vec<usize>;
    type IntoIter = BatchIter;

    fn into_iter(self) -> BatchIter {
        let end = self.visited();
        BatchIter {
            order: self.order,
            batch_size: self.batch_size,
            pos: 0,
            end,
        }
    }
}

/// The owning iterator over [`Batches`], yielding each batch as a `Vec<usize>`.
#[derive(Clone, Debug)]
pub struct BatchIter {
    order: Vec<usize>,
    batch_size: usize,
    pos: usize,
    end: usize,
}

impl Iterator for BatchIter {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        if self.pos >= self.end {
            return None;
        }
        let stop = self.end.min(self.pos + self.batch_size);
        let batch = self.order[self.pos..stop].to_vec();
        self.pos = stop;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.end - self.pos).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for BatchIter {}

impl FusedIterator for BatchIter {}

/// The iterator of [`Batches::shard`]: one rank's part of each batch.
#[derive(Clone, Debug)]
pub struct Shards<'a> {
    batches: std::slice::Chunks<'a, usize>,
    rank: usize,
    world: usize,
}

impl<'a> Iterator for Shards<'a> {
    type Item = &'a [usize];

    fn next(&mut self) -> Option<&'a [usize]> {
        let batch = self.batches.next()?;
        Some(&batch[crate::distributed::part_range(batch.len(), self.rank, self.world)])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.batches.size_hint()
    }
}

impl ExactSizeIterator for Shards<'_> {}

impl FusedIterator for Shards<'_> {}

/// Rank `rank`'s part of a global `batch` split over `world` ranks: contiguous
/// parts as equal as possible, the first `batch.len() % world` ranks taking one
/// index more. The parts of all ranks are disjoint and, in rank order, make up
/// the batch.
///
/// ```
/// use ferrograd::data::shard;
/// let batch = [7, 3, 9, 1, 4];                  // 5 indices over 2 ranks: 3 + 2
/// assert_eq!(shard(&batch, 0, 2), [7, 3, 9]);
/// assert_eq!(shard(&batch, 1, 2), [1, 4]);
/// assert_eq!(shard(&[5, 6], 2, 3), [] as [usize; 0]);   // fewer indices than ranks
/// ```
///
/// # Uneven parts
///
/// When a batch does not split evenly (the last batch of an epoch, or a batch
/// size that `world` does not divide), the ranks' parts differ in size, and the
/// mean of the ranks' mean losses is not the mean loss over the batch. To get the
/// gradient of the batch's mean loss exactly, scale each rank's mean loss by
/// `part.len() · world / batch.len()` before backward (the averaged gradients
/// are then those of the batch's mean). A rank whose part is empty computes no
/// loss and hands empty [`Gradients`](crate::Gradients) to
/// [`DataParallel::all_reduce_gradients`](crate::distributed::DataParallel::all_reduce_gradients),
/// which gives it the others' mean. With a batch size that `world` divides and
/// [`Batches::drop_last`], every part has the same size and no scaling is needed.
///
/// # Panics
/// Panics when `world` is 0 or `rank` is not below it.
#[track_caller]
pub fn shard(batch: &[usize], rank: usize, world: usize) -> &[usize] {
    or_panic(try_shard(batch, rank, world))
}

/// Like [`shard`], returning [`Error::InvalidArgument`] instead of panicking.
///
/// ```
/// let e = ferrograd::data::try_shard(&[1, 2], 2, 2).unwrap_err();
/// assert_eq!(e.to_string(), "shard: rank 2 is not a rank of a group of 2 (ranks 0..2)");
/// ```
pub fn try_shard(batch: &[usize], rank: usize, world: usize) -> Result<&[usize]> {
    check_rank("shard", rank, world)?;
    Ok(&batch[crate::distributed::part_range(batch.len(), rank, world)])
}

fn check_rank(op: &'static str, rank: usize, world: usize) -> Result<()> {
    if world == 0 {
        return Err(Error::invalid(
            op,
            "a group needs at least 1 rank (world is 0)",
        ));
    }
    if rank >= world {
        return Err(Error::invalid(
            op,
            format!("rank {rank} is not a rank of a group of {world} (ranks 0..{world})"),
        ));
    }
    Ok(())
}

/// A resumable source of shuffled epochs: epoch number `e` of a shuffler seeded
/// with `seed` is shuffled by an RNG made from `(seed, e)` alone, so the
/// shuffler's whole state is an [`RngState`] `{ seed, draws }`, where `draws`
/// counts the epochs drawn so far.
///
/// Save it with [`state`](Shuffler::state) (in a checkpoint, e.g.
/// [`io::Checkpoint::rng`](crate::io::Checkpoint::rng)), restore it with
/// [`set_state`](Shuffler::set_state), and the epochs that follow are the ones an
/// uninterrupted run would have drawn. [`epoch_batches`](Shuffler::epoch_batches)
/// gives any epoch's batches without drawing (to resume in the middle of an
/// epoch: the epoch underway is number `state().draws - 1`).
///
/// The RNG of an epoch is keyed with the seed, the epoch number and a tag of its
/// own, so a shuffler and a [`Dropout`](crate::nn::Dropout) seeded with the same
/// number draw from unrelated streams. Orders depend on the seed and the epoch
/// number only (for a given version of `rand`).
///
/// ```
/// use ferrograd::data::Shuffler;
///
/// let mut shuffler = Shuffler::new(7);
/// let first = shuffler.next_epoch(10, 4);           // epoch 0: batches of 4, 4, 2
/// assert_eq!(first.len(), 3);
/// let saved = shuffler.state();                     // seed=7,draws=1
/// assert_eq!(saved.to_string(), "seed=7,draws=1");
/// let second = shuffler.next_epoch(10, 4);
/// assert_ne!(first.order(), second.order());
///
/// // a fresh shuffler (any seed) with the saved state draws the same epochs again
/// let mut resumed = Shuffler::new(0);
/// resumed.set_state(saved);
/// assert_eq!(resumed.next_epoch(10, 4), second);
/// // any epoch, without drawing
/// assert_eq!(resumed.epoch_batches(0, 10, 4), first);
/// assert_eq!(resumed.epochs(), 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shuffler {
    state: RngState,
}

impl Shuffler {
    /// A shuffler of stream `seed` that has drawn no epoch yet (state
    /// `{ seed, draws: 0 }`).
    pub const fn new(seed: u64) -> Self {
        Shuffler {
            state: RngState::new(seed, 0),
        }
    }

    /// The batches of the next epoch over `n` samples, `batch_size` indices each
    /// (the last one shorter; call [`Batches::drop_last`] on the result to leave
    /// it out), shuffled; counts the epoch as drawn.
    ///
    /// # Panics
    /// Panics when `batch_size` is 0 (and then counts no epoch).
    #[track_caller]
    pub fn next_epoch(&mut self, n: usize, batch_size: usize) -> Batches {
        let batches = self.epoch_batches(self.state.draws, n, batch_size);
        self.state.draws = self.state.draws.wrapping_add(1);
        batches
    }

    /// The batches of epoch number `epoch` (counting from 0), as
    /// [`next_epoch`](Shuffler::next_epoch) draws them, without changing the
    /// state.
    ///
    /// ```
    /// use ferrograd::data::Shuffler;
    /// let mut s = Shuffler::new(3);
    /// let e2 = s.epoch_batches(2, 8, 3);
    /// s.next_epoch(8, 3);
    /// s.next_epoch(8, 3);
    /// assert_eq!(s.next_epoch(8, 3), e2);
    /// ```
    ///
    /// # Panics
    /// Panics when `batch_size` is 0.
    #[track_caller]
    pub fn epoch_batches(&self, epoch: u64, n: usize, batch_size: usize) -> Batches {
        Batches::new(n, batch_size).shuffle(&mut self.epoch_rng(epoch))
    }

    /// The seed and the number of epochs drawn so far.
    pub const fn state(&self) -> RngState {
        self.state
    }

    /// Continues from `state` (as saved by [`state`](Shuffler::state)): the next
    /// epoch drawn is number `state.draws` of stream `state.seed`.
    pub fn set_state(&mut self, state: RngState) {
        self.state = state;
    }

    /// The seed.
    pub const fn seed(&self) -> u64 {
        self.state.seed
    }

    /// The number of epochs drawn so far (the number of the next one).
    pub const fn epochs(&self) -> u64 {
        self.state.draws
    }

    /// The RNG that shuffles epoch `epoch`: a [`StdRng`] keyed with the seed, the
    /// epoch number and the shuffler's tag (distinct from [`RngState::rng`]'s).
    fn epoch_rng(&self, epoch: u64) -> StdRng {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.state.seed.to_le_bytes());
        key[8..16].copy_from_slice(&epoch.to_le_bytes());
        key[16..].copy_from_slice(b"ferrograd:epoch.");
        StdRng::from_seed(key)
    }
}

/// The rows of `x` (slices along axis 0) at `rows`, in that order: a mini-batch of
/// a data set, `x.index_select(0, rows)`. Differentiable (gradients of repeated
/// rows add up).
///
/// ```
/// use ferrograd::{data::gather_rows, Tensor};
/// let x = Tensor::<f32>::arange(6).reshape(&[3, 2]);
/// assert_eq!(gather_rows(&x, &[2, 0]).to_vec(), vec![4.0, 5.0, 0.0, 1.0]);
/// ```
///
/// # Panics
/// Panics when `x` is 0-d or a row index is not below `x.shape()[0]`.
#[track_caller]
pub fn gather_rows<T: Element>(x: &Tensor<T>, rows: &[usize]) -> Tensor<T> {
    or_panic(try_gather_rows(x, rows))
}

/// Like [`gather_rows`], returning [`Error::IndexOutOfRange`] (or
/// [`Error::InvalidAxis`] for a 0-d tensor) instead of panicking.
pub fn try_gather_rows<T: Element>(x: &Tensor<T>, rows: &[usize]) -> Result<Tensor<T>> {
    x.try_index_select(0, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn sorted(mut v: Vec<usize>) -> Vec<usize> {
        v.sort_unstable();
        v
    }

    #[test]
    fn sizes_and_drop_last() {
        let sizes = |b: &Batches| b.iter().map(<[usize]>::len).collect::<Vec<_>>();
        let b = Batches::new(10, 4);
        assert_eq!(sizes(&b), [4, 4, 2]);
        assert_eq!((b.len(), b.num_samples(), b.batch_size()), (3, 10, 4));
        let b = b.drop_last(true);
        assert_eq!(sizes(&b), [4, 4]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.order().len(), 10);
        // exact multiple: drop_last changes nothing
        assert_eq!(sizes(&Batches::new(8, 4).drop_last(true)), [4, 4]);
        assert_eq!(sizes(&Batches::new(8, 4)), [4, 4]);
        // a batch larger than the data
        assert_eq!(sizes(&Batches::new(3, 10)), [3]);
        assert!(Batches::new(3, 10).drop_last(true).is_empty());
        // no data
        let b = Batches::new(0, 4);
        assert!(b.is_empty());
        assert_eq!(b.into_iter().count(), 0);
        // batch size 1
        assert_eq!(sizes(&Batches::new(3, 1)), [1, 1, 1]);
    }

    #[test]
    fn owned_and_borrowed_iteration_agree() {
        let b = Batches::new(11, 3).shuffle(&mut StdRng::seed_from_u64(3));
        let borrowed: Vec<Vec<usize>> = (&b).into_iter().map(<[usize]>::to_vec).collect();
        let mut it = b.clone().into_iter();
        assert_eq!(it.len(), 4);
        it.next();
        assert_eq!(it.size_hint(), (3, Some(3)));
        assert_eq!(b.into_iter().collect::<Vec<_>>(), borrowed);
        let mut it = Batches::new(4, 2).drop_last(true).into_iter();
        assert_eq!(it.next(), Some(vec![0, 1]));
        assert_eq!(it.next(), Some(vec![2, 3]));
        assert_eq!((it.next(), it.next()), (None, None));
    }

    #[test]
    fn every_index_once_per_epoch() {
        let mut rng = StdRng::seed_from_u64(0);
        for (n, bs) in [(10, 3), (64, 8), (7, 7), (1, 5)] {
            for _epoch in 0..3 {
                let all: Vec<usize> = Batches::new(n, bs)
                    .shuffle(&mut rng)
                    .into_iter()
                    .flatten()
                    .collect();
                assert_eq!(sorted(all), (0..n).collect::<Vec<_>>());
            }
        }
        // with drop_last, the batches hold distinct indices, n − n % bs of them
        let b = Batches::new(10, 4).shuffle(&mut rng).drop_last(true);
        let seen: Vec<usize> = b.iter().flatten().copied().collect();
        assert_eq!(seen.len(), 8);
        let mut dedup = sorted(seen);
        dedup.dedup();
        assert_eq!(dedup.len(), 8);
    }

    #[test]
    fn seeded_shuffles_are_reproducible_and_differ() {
        let epoch = |seed| {
            Batches::new(50, 8)
                .shuffle(&mut StdRng::seed_from_u64(seed))
                .order()
                .to_vec()
        };
        assert_eq!(epoch(1), epoch(1));
        assert_ne!(epoch(1), epoch(2));
        assert_ne!(epoch(1), (0..50).collect::<Vec<_>>());
        // one RNG over several epochs: a new order each epoch
        let mut rng = StdRng::seed_from_u64(1);
        let e1 = Batches::new(50, 8).shuffle(&mut rng).order().to_vec();
        let e2 = Batches::new(50, 8).shuffle(&mut rng).order().to_vec();
        assert_eq!(e1, epoch(1));
        assert_ne!(e1, e2);
    }

    #[test]
    fn shuffler_state_resumes_the_following_epochs() {
        let mut s = Shuffler::new(11);
        let epochs: Vec<Batches> = (0..5).map(|_| s.next_epoch(23, 4)).collect();
        assert_eq!(s.state(), RngState::new(11, 5));
        for e in &epochs {
            assert_eq!(sorted(e.order().to_vec()), (0..23).collect::<Vec<_>>());
        }
        assert_ne!(epochs[0], epochs[1]);
        // restore after epoch 2, in a fresh shuffler with another seed
        let mut fresh = Shuffler::new(999);
        fresh.set_state(RngState::new(11, 2));
        let again: Vec<Batches> = (0..3).map(|_| fresh.next_epoch(23, 4)).collect();
        assert_eq!(again, epochs[2..]);
        assert_eq!(fresh, s);
        // through the state's text
        let text = s.state().to_string();
        assert_eq!(text, "seed=11,draws=5");
        let mut parsed = Shuffler::new(0);
        parsed.set_state(text.parse().unwrap());
        assert_eq!(parsed.next_epoch(23, 4), s.next_epoch(23, 4));
        // any epoch without drawing
        assert_eq!(s.epoch_batches(3, 23, 4), epochs[3]);
        assert_eq!((s.seed(), s.epochs()), (11, 6));
    }

    #[test]
    fn shuffler_streams_differ_by_seed_and_from_dropout() {
        let order = |seed| Shuffler::new(seed).next_epoch(64, 8).order().to_vec();
        assert_eq!(order(1), order(1));
        assert_ne!(order(1), order(2));
        // not the stream a Dropout (RngState::rng) with the same seed draws from
        let dropout_like = Batches::new(64, 8)
            .shuffle(&mut RngState::new(1, 0).rng())
            .order()
            .to_vec();
        assert_ne!(order(1), dropout_like);
        // a panic on batch size 0 counts no epoch
        let mut s = Shuffler::new(4);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.next_epoch(3, 0)));
        assert!(r.is_err());
        assert_eq!(s.epochs(), 0);
    }

    #[test]
    fn batch_size_zero() {
        assert!(matches!(
            Batches::try_new(3, 0),
            Err(Error::InvalidArgument {
                op: "Batches::new",
                ..
            })
        ));
        let r = std::panic::catch_unwind(|| Batches::new(3, 0));
        let msg = r.unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(msg.contains("batch_size must be at least 1"), "{msg}");
    }

    #[test]
    fn gather_rows_values_and_gradient() {
        let x = Tensor::<f64>::arange(6).reshape(&[3, 2]).requires_grad();
        let xb = gather_rows(&x, &[2, 0, 2]);
        assert_eq!(xb.shape(), &[3, 2]);
        assert_eq!(xb.to_vec(), vec![4., 5., 0., 1., 4., 5.]);
        let g = xb.sum().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec(), vec![1., 1., 0., 0., 2., 2.]);
        // 1-D data: rows are elements
        let v = Tensor::<f32>::arange(4);
        assert_eq!(gather_rows(&v, &[3, 1]).to_vec(), vec![3., 1.]);
        assert!(matches!(
            try_gather_rows(&x, &[3]),
            Err(Error::IndexOutOfRange {
                index: 3,
                size: 3,
                ..
            })
        ));
        assert!(try_gather_rows(&Tensor::<f32>::scalar(1.0), &[0]).is_err());
    }
}
