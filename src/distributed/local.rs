//! An in-process group: ranks as threads of one process ([`LocalCollective`],
//! [`spawn`]), for data parallelism on one machine and for tests without MPI.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::collective::{check_root, sum_in_order, Collective};
use crate::error::{Error, Result};

/// One rank of a group of threads in one process: the in-process
/// [`Collective`].
///
/// Make a group with [`spawn`] (which runs a closure on each rank's thread and
/// joins them) or with [`LocalCollective::group`] (one value per rank, to move
/// into threads of your own). Every operation is an exchange: each rank leaves
/// its contribution, the last one to arrive publishes them all, and each rank
/// computes its result from them, so a reduction adds the ranks' buffers in rank
/// order on every rank (`((b₀ + b₁) + b₂) + …`): the same bits on every rank and
/// in every run, and the same as [`MpiCollective`](super) gives. Each operation
/// copies the buffers once and each rank adds all `N` of them: cheap next to a
/// training step on the small groups one machine holds.
///
/// # Errors, not hangs
///
/// The ranks check each other: when ranks call different operations, give
/// buffers of different lengths or different roots, every rank gets an
/// [`Error::Collective`] naming them. When a rank panics, or leaves the group
/// (its `LocalCollective` is dropped, its closure returns) while the others wait
/// for it in an operation, the waiting ranks get an [`Error::Collective`] naming
/// it instead of waiting forever, and so does every later operation of the group.
///
/// ```
/// use ferrograd::distributed::{local, Collective};
///
/// let results = local::spawn(2, |comm| {
///     if comm.rank() == 1 {
///         return Ok(());                 // rank 1 leaves without joining the barrier
///     }
///     comm.barrier()
/// });
/// let err = results[0].as_ref().unwrap_err();
/// assert!(err.to_string().starts_with("barrier on rank 0: rank 1 left the group"), "{err}");
/// assert!(results[1].is_ok());
/// ```
pub struct LocalCollective {
    rank: usize,
    shared: Arc<Shared>,
}

/// Runs `f` on `n` ranks, each on a thread of its own with its
/// [`LocalCollective`], and returns their results in rank order.
///
/// `f` may borrow from the caller (the threads are scoped). Threads are named
/// `rank 0`, `rank 1`, … (panic messages say which rank panicked). When a rank
/// panics, the other ranks get errors from their collective operations rather
/// than hanging (see [`LocalCollective`]), and once every thread has ended,
/// `spawn` panics again with the panic of the lowest rank that panicked.
///
/// ```
/// use ferrograd::distributed::{local, Collective, CollectiveExt};
///
/// let data = [1.0f64, 2.0, 3.0, 4.0];
/// let means = local::spawn(2, |comm| {
///     // each rank sums its half, then the sums are averaged
///     let half = &data[2 * comm.rank()..2 * comm.rank() + 2];
///     let mut s = [half.iter().sum::<f64>()];
///     comm.all_reduce_mean(&mut s).map(|()| s[0])
/// });
/// assert_eq!(means.into_iter().collect::<Result<Vec<_>, _>>()?, [5.0, 5.0]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Panics
/// Panics when `n` is 0, when a thread cannot be started, and when a rank panics
/// (after all ranks have ended).
#[track_caller]
pub fn spawn<R, F>(n: usize, f: F) -> Vec<R>
where
    F: Fn(LocalCollective) -> R + Sync,
    R: Send,
{
    let comms = LocalCollective::group(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = comms
            .into_iter()
            .map(|comm| {
                let f = &f;
                let presence = Presence {
                    rank: comm.rank,
                    shared: Arc::clone(&comm.shared),
                };
                std::thread::Builder::new()
                    .name(format!("rank {}", comm.rank))
                    .spawn_scoped(scope, move || {
                        // marks the rank as gone when `f` ends, even if `f`
                        // kept its LocalCollective somewhere alive
                        let _presence = presence;
                        f(comm)
                    })
                    .expect("local::spawn: cannot start a thread")
            })
            .collect();
        let joined: Vec<std::thread::Result<R>> = handles.into_iter().map(|h| h.join()).collect();
        joined
            .into_iter()
            .map(|r| r.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

impl LocalCollective {
    /// A group of `n` ranks: element `r` is rank `r`. Move each into a thread of
    /// its own (a rank that waits for another rank on its own thread waits
    /// forever, or until that rank is dropped).
    ///
    /// ```
    /// use ferrograd::distributed::{Collective, LocalCollective};
    ///
    /// let ranks = LocalCollective::group(2);
    /// assert_eq!(ranks.iter().map(|c| (c.rank(), c.world_size())).collect::<Vec<_>>(), [(0, 2), (1, 2)]);
    /// let handles: Vec<_> = ranks
    ///     .into_iter()
    ///     .map(|comm| std::thread::spawn(move || comm.all_gather_bytes(&[comm.rank() as u8])))
    ///     .collect();
    /// for h in handles {
    ///     assert_eq!(h.join().unwrap()?, [vec![0u8], vec![1u8]]);
    /// }
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when `n` is 0.
    #[track_caller]
    pub fn group(n: usize) -> Vec<LocalCollective> {
        assert!(
            n > 0,
            "LocalCollective::group: a group needs at least 1 rank"
        );
        let shared = Arc::new(Shared {
            size: n,
            state: Mutex::new(State {
                round: 0,
                slots: (0..n).map(|_| None).collect(),
                arrived: 0,
                done: Arc::new(Vec::new()),
                gone: vec![None; n],
            }),
            turn: Condvar::new(),
        });
        (0..n)
            .map(|rank| LocalCollective {
                rank,
                shared: Arc::clone(&shared),
            })
            .collect()
    }

    /// Leaves `data` for this round and returns every rank's contribution, in
    /// rank order, once all have arrived; checks that they called the same
    /// operation with the same root.
    fn exchange(&self, op: &'static str, root: Option<usize>, data: Data) -> Result<Round> {
        let err = |msg: String| Error::Collective {
            op,
            rank: self.rank,
            msg,
        };
        let shared = &*self.shared;
        let mut st = shared.lock();
        if let Some(msg) = st.blocker() {
            return Err(err(msg));
        }
        let round = st.round;
        st.slots[self.rank] = Some(Contribution { op, root, data });
        st.arrived += 1;
        if st.arrived == shared.size {
            let all = st.slots.iter_mut().map(|s| s.take()).collect::<Vec<_>>();
            st.done = Arc::new(all.into_iter().map(|c| c.expect("arrived")).collect());
            st.arrived = 0;
            st.round += 1;
            shared.turn.notify_all();
        } else {
            while st.round == round {
                if let Some(msg) = st.blocker() {
                    return Err(err(msg));
                }
                st = shared.turn.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
        }
        let all = Arc::clone(&st.done);
        drop(st);
        for (r, c) in all.iter().enumerate() {
            if c.op != op || c.root != root {
                return Err(err(format!(
                    "the ranks called different operations: rank {} called {}, rank {r} \
                     called {}",
                    self.rank,
                    describe(op, root),
                    describe(c.op, c.root)
                )));
            }
        }
        Ok(Round(all))
    }

    /// The contributions' lengths must all be equal.
    /// The sum over the ranks, added in rank order, of `f32` or `f64` buffers.
    fn all_reduce_elems<T: Wire>(&self, op: &'static str, buf: &mut [T]) -> Result<()> {
        let round = self.exchange(op, None, T::wrap(buf.to_vec()))?;
        self.check_lengths(op, &round)?;
        sum_in_order(buf, round.0.iter().map(|c| T::unwrap(&c.data)));
        Ok(())
    }

    /// Rank `root`'s `f32` or `f64` buffer, copied into every rank's.
    fn broadcast_elems<T: Wire>(&self, op: &'static str, buf: &mut [T], root: usize) -> Result<()> {
        check_root(op, self.rank, root, self.shared.size)?;
        let data = if self.rank == root {
            T::wrap(buf.to_vec())
        } else {
            Data::Len(buf.len())
        };
        let round = self.exchange(op, Some(root), data)?;
        self.check_lengths(op, &round)?;
        if self.rank != root {
            buf.copy_from_slice(T::unwrap(&round.0[root].data));
        }
        Ok(())
    }

    fn check_lengths(&self, op: &'static str, round: &Round) -> Result<()> {
        let lens: Vec<usize> = round.0.iter().map(|c| c.data.len()).collect();
        if lens.iter().any(|&l| l != lens[0]) {
            return Err(Error::Collective {
                op,
                rank: self.rank,
                msg: format!("the ranks' buffers differ in length: {lens:?} elements, by rank"),
            });
        }
        Ok(())
    }
}

impl Collective for LocalCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.size
    }

    fn barrier(&self) -> Result<()> {
        self.exchange("barrier", None, Data::Nothing).map(drop)
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.all_reduce_elems("all_reduce_sum_f32", buf)
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.all_reduce_elems("all_reduce_sum_f64", buf)
    }

    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<()> {
        self.broadcast_elems("broadcast_f32", buf, root)
    }

    fn broadcast_f64(&self, buf: &mut [f64], root: usize) -> Result<()> {
        self.broadcast_elems("broadcast_f64", buf, root)
    }

    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        let op = "broadcast_bytes";
        check_root(op, self.rank, root, self.shared.size)?;
        let data = if self.rank == root {
            Data::Bytes(buf.clone())
        } else {
            Data::Nothing
        };
        let round = self.exchange(op, Some(root), data)?;
        if self.rank != root {
            buf.clear();
            buf.extend_from_slice(round.0[root].data.bytes());
        }
        Ok(())
    }

    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let round = self.exchange("all_gather_bytes", None, Data::Bytes(mine.to_vec()))?;
        Ok(round.0.iter().map(|c| c.data.bytes().to_vec()).collect())
    }
}

impl Drop for LocalCollective {
    fn drop(&mut self) {
        self.shared.depart(self.rank);
    }
}

impl std::fmt::Debug for LocalCollective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCollective")
            .field("rank", &self.rank)
            .field("world_size", &self.shared.size)
            .finish()
    }
}

/// Marks its rank as gone when dropped (see [`spawn`]).
struct Presence {
    rank: usize,
    shared: Arc<Shared>,
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.shared.depart(self.rank);
    }
}

/// What the ranks of a group share.
struct Shared {
    size: usize,
    state: Mutex<State>,
    /// Signalled when a round completes or a rank goes.
    turn: Condvar,
}

impl Shared {
    /// No panic happens while the lock is held, but a poisoned lock is harmless
    /// here anyway: the state is consistent between statements.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn depart(&self, rank: usize) {
        let mut st = self.lock();
        if st.gone[rank].is_none() {
            st.gone[rank] = Some(if std::thread::panicking() {
                Gone::Panicked
            } else {
                Gone::Left
            });
        }
        self.turn.notify_all();
    }
}

struct State {
    /// The number of the round under way (rounds completed so far).
    round: u64,
    /// The contributions to the round under way, by rank.
    slots: Vec<Option<Contribution>>,
    /// How many ranks have contributed to the round under way.
    arrived: usize,
    /// The contributions to the last completed round, by rank. A rank reads them
    /// before it can contribute to the next round, and that round cannot
    /// complete without it, so they are never replaced under a reader.
    done: Arc<Vec<Contribution>>,
    /// The ranks that can take part in no more rounds, and why.
    gone: Vec<Option<Gone>>,
}

impl State {
    /// Why the round under way cannot complete: a rank that has gone without
    /// contributing to it.
    fn blocker(&self) -> Option<String> {
        self.gone.iter().enumerate().find_map(|(r, g)| {
            let g = (*g)?;
            if self.slots[r].is_some() {
                return None;
            }
            Some(match g {
                Gone::Panicked => format!("rank {r} panicked; the group cannot go on"),
                Gone::Left => format!(
                    "rank {r} left the group (its closure returned or its \
                     LocalCollective was dropped) without joining this operation"
                ),
            })
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Gone {
    Panicked,
    Left,
}

/// One rank's part of a round.
struct Contribution {
    op: &'static str,
    root: Option<usize>,
    data: Data,
}

/// Every rank's contribution to one completed round, in rank order.
struct Round(Arc<Vec<Contribution>>);

enum Data {
    Nothing,
    /// A receiving rank's buffer length, checked against the root's.
    Len(usize),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<u8>),
}

impl Data {
    fn len(&self) -> usize {
        match self {
            Data::Nothing => 0,
            Data::Len(n) => *n,
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::Bytes(v) => v.len(),
        }
    }

    // The ranks called the same operation (checked), so the kinds match.
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Bytes(v) => v,
            _ => unreachable!("the ranks called the same operation"),
        }
    }
}

/// The element types a group reduces and broadcasts, and how they travel in
/// a round.
trait Wire: Copy + std::ops::AddAssign + 'static {
    fn wrap(values: Vec<Self>) -> Data;
    /// The values of a round's entry (the ranks called the same operation,
    /// checked, so the kinds match).
    fn unwrap(data: &Data) -> &[Self];
}

impl Wire for f32 {
    fn wrap(values: Vec<f32>) -> Data {
        Data::F32(values)
    }
    fn unwrap(data: &Data) -> &[f32] {
        match data {
            Data::F32(v) => v,
            _ => unreachable!("the ranks called the same operation"),
        }
    }
}

impl Wire for f64 {
    fn wrap(values: Vec<f64>) -> Data {
        Data::F64(values)
    }
    fn unwrap(data: &Data) -> &[f64] {
        match data {
            Data::F64(v) => v,
            _ => unreachable!("the ranks called the same operation"),
        }
    }
}

fn describe(op: &str, root: Option<usize>) -> String {
    match root {
        Some(r) => format!("{op} from root {r}"),
        None => op.to_string(),
    }
}
