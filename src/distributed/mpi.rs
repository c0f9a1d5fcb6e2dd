//! [`MpiCollective`]: the ranks of an MPI job (feature `mpi`), through the `mpi`
//! crate (rsmpi) and the raw MPI calls it exposes, so that every return code is
//! checked.

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::os::raw::c_char;

use mpi::ffi;
use mpi::raw::{AsRaw, FromRaw};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;

use super::collective::{add_in_order, check_root, Collective};
use super::part_range;
use crate::error::{Error, Result};

/// The ranks of an MPI job as a [`Collective`]: one process per rank, on one
/// machine or several, started by `mpirun` (feature `mpi`).
///
/// ```no_run
/// use ferrograd::distributed::{Collective, DataParallel, MpiCollective};
/// # use ferrograd::nn::{Linear, Module};
/// # use ferrograd::rand::{rngs::StdRng, SeedableRng};
///
/// let comm = MpiCollective::init()?;            // MPI_Init; MPI_Finalize when dropped
/// # let net = Linear::<f32>::new(3, 1, true, &mut StdRng::seed_from_u64(0));
/// let dp = DataParallel::new(&comm, net.named_parameters())?;
/// println!("rank {} of {}", comm.rank(), comm.world_size());
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # The reduction and its cost
///
/// `MPI_Allreduce` leaves the order of the additions to the MPI library (it picks
/// an algorithm by message size and process count, and with 3 ranks or more the
/// ranks may then add in different orders), so this type does not call it. An
/// all-reduce of `n` elements over `N` ranks runs as a reduce-scatter and an
/// all-gather instead:
///
/// 1. `MPI_Alltoallv`: the buffer is cut into `N` contiguous parts and rank `r`
///    receives part `r` of every rank's buffer;
/// 2. rank `r` adds its `N` copies of part `r` in rank order
///    (`((b₀ + b₁) + b₂) + …`, as [`LocalCollective`](super::LocalCollective)
///    does);
/// 3. `MPI_Allgatherv`: every rank receives every reduced part.
///
/// Every rank then holds the same bits, the same as the in-process group's, for
/// any MPI library and any timing. Each rank sends and receives
/// `2 (N − 1) / N · n` elements, the volume of a ring all-reduce (the optimum);
/// what it costs over a ring is latency (each phase is `N − 1` messages per rank
/// rather than pipelined along a ring) and one receive buffer of `n` elements,
/// kept for the next call (so memory as large as the largest all-reduce so far,
/// per element type, stays allocated: with [`DataParallel`](super::DataParallel),
/// one bucket).
/// Buffers longer than 2³⁰ elements go in pieces (MPI counts are C `int`s).
///
/// # Errors and crashes
///
/// The group works on its own duplicate of `MPI_COMM_WORLD` with
/// `MPI_ERRORS_RETURN` set, and checks every MPI call: an error is returned as
/// [`Error::Collective`] with MPI's message, not a crash of the process.
///
/// A rank that crashes cannot be recovered: MPI has no way to go on without it.
/// When the thread that owns an `MpiCollective` panics, dropping it calls
/// `MPI_Abort`, which ends every rank of the job (`mpirun` reports the abort and
/// exits non-zero), rather than leaving the other ranks waiting forever. A
/// process that dies otherwise (killed, `panic = "abort"`, or `std::process::exit`
/// without dropping the value) ends the job too: `mpirun` kills the other ranks
/// when one exits without finishing MPI. To stop on an error in every rank, call
/// [`abort`](MpiCollective::abort).
///
/// Ranks must call the same operations with buffers of the same length (MPI
/// cannot check it; [`DataParallel`](super::DataParallel) guarantees it once its
/// start-up check has passed).
pub struct MpiCollective {
    // dropped before `universe`: the communicator is freed before MPI_Finalize
    comm: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// The receive buffers of the all-reduces, kept from call to call: fresh
    /// memory for every call costs page faults that can take longer than the
    /// communication itself.
    scratch_f32: RefCell<Vec<f32>>,
    scratch_f64: RefCell<Vec<f64>>,
    universe: Option<mpi::environment::Universe>,
}

/// The largest count passed to one MPI call.
const MAX_COUNT: usize = 1 << 30;

impl MpiCollective {
    /// Initialises MPI (`MPI_Init_thread`, asking for `MPI_THREAD_FUNNELED`: only
    /// the thread that made the value calls MPI; the crate's worker threads never
    /// do) and makes the group of all the job's processes (`MPI_COMM_WORLD`).
    /// MPI is finalised when the value is dropped.
    ///
    /// # Errors
    /// [`Error::Collective`] when MPI was already initialised in this process
    /// (use [`from_communicator`](MpiCollective::from_communicator) then) or an
    /// MPI call fails.
    pub fn init() -> Result<Self> {
        let Some((universe, _threading)) = mpi::initialize_with_threading(Threading::Funneled)
        else {
            return Err(Error::Collective {
                op: "MpiCollective::init",
                rank: 0,
                msg: "MPI is already initialised in this process (MPI_Init runs once per \
                      process); make the group with MpiCollective::from_communicator"
                    .to_string(),
            });
        };
        let world = universe.world();
        Self::with_universe(&world, Some(universe))
    }

    /// The group of the processes of `comm`, for a program that initialised MPI
    /// itself: works on a duplicate of `comm` (`MPI_Comm_dup`, with
    /// `MPI_ERRORS_RETURN` set on the duplicate only), so `comm` and its error
    /// handler are left as they are. Collective: every process of `comm` must
    /// call it. MPI is not finalised when the value is dropped.
    ///
    /// # Errors
    /// [`Error::Collective`] when an MPI call fails.
    pub fn from_communicator<C: Communicator>(comm: &C) -> Result<Self> {
        Self::with_universe(comm, None)
    }

    fn with_universe<C: Communicator>(
        comm: &C,
        universe: Option<mpi::environment::Universe>,
    ) -> Result<Self> {
        let rank = usize::try_from(comm.rank()).expect("a rank is not negative");
        let op = "MpiCollective::init";
        let mut raw = std::mem::MaybeUninit::<ffi::MPI_Comm>::uninit();
        // SAFETY: `comm` is a valid communicator; MPI writes the new handle into `raw`.
        let rc = unsafe { ffi::MPI_Comm_dup(comm.as_raw(), raw.as_mut_ptr()) };
        check(rc, op, rank)?;
        // SAFETY: MPI_Comm_dup succeeded, so it wrote a valid communicator handle,
        // which the SimpleCommunicator now owns (and frees on drop).
        let dup = unsafe { SimpleCommunicator::from_raw(raw.assume_init()) };
        // SAFETY: a valid communicator and MPI's predefined error handler.
        let rc = unsafe { ffi::MPI_Comm_set_errhandler(dup.as_raw(), ffi::RSMPI_ERRORS_RETURN) };
        check(rc, op, rank)?;
        let size = usize::try_from(dup.size()).expect("a size is not negative");
        Ok(MpiCollective {
            comm: dup,
            rank,
            size,
            scratch_f32: RefCell::new(Vec::new()),
            scratch_f64: RefCell::new(Vec::new()),
            universe,
        })
    }

    /// Ends every process of the job (`MPI_Abort` with `code`): the way to stop
    /// all ranks when one of them cannot go on (the others may be waiting for it
    /// in a collective operation).
    pub fn abort(&self, code: i32) -> ! {
        // SAFETY: a valid communicator; MPI_Abort does not return.
        unsafe {
            ffi::MPI_Abort(self.comm.as_raw(), code);
        }
        // MPI_Abort is not supposed to return; make sure the process ends anyway.
        std::process::exit(if code == 0 { 1 } else { code })
    }

    /// The group's communicator (a duplicate of the one the group was made from,
    /// with `MPI_ERRORS_RETURN` set), for MPI calls of your own on the same
    /// processes.
    pub fn communicator(&self) -> &SimpleCommunicator {
        &self.comm
    }

    /// The name of the machine this rank runs on (`MPI_Get_processor_name`).
    pub fn processor_name(&self) -> String {
        mpi::environment::processor_name().unwrap_or_default()
    }

    /// The wall-clock time in seconds (`MPI_Wtime`), to time communication.
    pub fn time(&self) -> f64 {
        mpi::time()
    }

    /// `MPI_Allreduce` with `MPI_SUM`, whose order of additions the MPI library
    /// chooses: for comparison with [`all_reduce_sum_f32`]'s fixed order (e.g. its
    /// time), not for training. With 2 ranks the result is the same (one
    /// addition, and addition is commutative); from 3 ranks on it may differ in
    /// the last bits from rank to rank or from run to run. (It copies `buf` to
    /// a kept send buffer first.)
    ///
    /// [`all_reduce_sum_f32`]: Collective::all_reduce_sum_f32
    ///
    /// # Errors
    /// [`Error::Collective`] when MPI reports an error.
    pub fn native_all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        let mut send = self.scratch_f32.borrow_mut();
        for piece in buf.chunks_mut(MAX_COUNT) {
            // a copy to send from (MPI_IN_PLACE has no portable value to bind)
            send.clear();
            send.extend_from_slice(piece);
            // SAFETY: two valid buffers of `piece.len()` floats; MPI's predefined
            // datatype and operation handles.
            let rc = unsafe {
                ffi::MPI_Allreduce(
                    send.as_ptr().cast::<c_void>(),
                    piece.as_mut_ptr().cast::<c_void>(),
                    count(piece.len()),
                    ffi::RSMPI_FLOAT,
                    ffi::RSMPI_SUM,
                    self.comm.as_raw(),
                )
            };
            check(rc, "native_all_reduce_sum_f32", self.rank)?;
        }
        Ok(())
    }

    /// The fixed-order all-reduce (see [the type](MpiCollective#the-reduction-and-its-cost))
    /// of `buf`, whose elements are of MPI type `datatype`.
    fn all_reduce<T>(
        &self,
        op: &'static str,
        buf: &mut [T],
        scratch: &RefCell<Vec<T>>,
        datatype: ffi::MPI_Datatype,
    ) -> Result<()>
    where
        T: Copy + Default + std::ops::AddAssign,
    {
        let n = self.size;
        if n == 1 {
            return Ok(());
        }
        for piece in buf.chunks_mut(MAX_COUNT) {
            let len = piece.len();
            let parts: Vec<std::ops::Range<usize>> =
                (0..n).map(|r| part_range(len, r, n)).collect();
            let mine = parts[self.rank].len();
            let send_counts: Vec<c_int> = parts.iter().map(|p| count(p.len())).collect();
            let send_displs: Vec<c_int> = parts.iter().map(|p| count(p.start)).collect();
            let recv_counts: Vec<c_int> = vec![count(mine); n];
            let recv_displs: Vec<c_int> = (0..n).map(|r| count(r * mine)).collect();
            let mut received = scratch.borrow_mut();
            received.clear();
            received.resize(mine * n, T::default());
            // SAFETY: the counts and displacements describe `piece` (the parts tile
            // it) and `received` (N blocks of `mine`); every rank computes the same
            // parts for the same length.
            let rc = unsafe {
                ffi::MPI_Alltoallv(
                    piece.as_ptr().cast::<c_void>(),
                    send_counts.as_ptr(),
                    send_displs.as_ptr(),
                    datatype,
                    received.as_mut_ptr().cast::<c_void>(),
                    recv_counts.as_ptr(),
                    recv_displs.as_ptr(),
                    datatype,
                    self.comm.as_raw(),
                )
            };
            check(rc, op, self.rank)?;
            // rank 0's block, plus rank 1's, plus rank 2's, …, in place
            let (reduced, rest) = received.split_at_mut(mine);
            if mine > 0 {
                add_in_order(reduced, rest.chunks(mine));
            }
            // SAFETY: `reduced` holds `mine` elements; the counts and displacements
            // (the parts again) tile `piece`.
            let rc = unsafe {
                ffi::MPI_Allgatherv(
                    reduced.as_ptr().cast::<c_void>(),
                    count(mine),
                    datatype,
                    piece.as_mut_ptr().cast::<c_void>(),
                    send_counts.as_ptr(),
                    send_displs.as_ptr(),
                    datatype,
                    self.comm.as_raw(),
                )
            };
            check(rc, op, self.rank)?;
        }
        Ok(())
    }

    /// `MPI_Bcast` of `len` elements of `datatype` at `ptr`, in pieces.
    fn broadcast_raw(
        &self,
        op: &'static str,
        ptr: *mut c_void,
        len: usize,
        elem: usize,
        datatype: ffi::MPI_Datatype,
        root: usize,
    ) -> Result<()> {
        check_root(op, self.rank, root, self.size)?;
        let mut at = 0;
        while at < len {
            let n = (len - at).min(MAX_COUNT);
            // SAFETY: the caller's buffer holds `len` elements of `elem` bytes at
            // `ptr`; this piece is within it.
            let rc = unsafe {
                ffi::MPI_Bcast(
                    ptr.cast::<u8>().add(at * elem).cast(),
                    count(n),
                    datatype,
                    count(root),
                    self.comm.as_raw(),
                )
            };
            check(rc, op, self.rank)?;
            at += n;
        }
        Ok(())
    }

    /// `MPI_Bcast` of one `u64` from `root`.
    fn broadcast_u64(&self, op: &'static str, v: &mut u64, root: usize) -> Result<()> {
        let ptr: *mut u64 = v;
        // SAFETY: reads MPI's predefined datatype handle.
        let datatype = unsafe { ffi::RSMPI_UINT64_T };
        self.broadcast_raw(op, ptr.cast(), 1, 8, datatype, root)
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.size
    }

    fn barrier(&self) -> Result<()> {
        // SAFETY: a valid communicator.
        let rc = unsafe { ffi::MPI_Barrier(self.comm.as_raw()) };
        check(rc, "barrier", self.rank)
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        // SAFETY: reads MPI's predefined datatype handle.
        let datatype = unsafe { ffi::RSMPI_FLOAT };
        self.all_reduce("all_reduce_sum_f32", buf, &self.scratch_f32, datatype)
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        // SAFETY: reads MPI's predefined datatype handle.
        let datatype = unsafe { ffi::RSMPI_DOUBLE };
        self.all_reduce("all_reduce_sum_f64", buf, &self.scratch_f64, datatype)
    }

    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<()> {
        let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
        // SAFETY: reads MPI's predefined datatype handle.
        let datatype = unsafe { ffi::RSMPI_FLOAT };
        self.broadcast_raw("broadcast_f32", ptr, len, 4, datatype, root)
    }

    fn broadcast_f64(&self, buf: &mut [f64], root: usize) -> Result<()> {
        let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
        // SAFETY: reads MPI's predefined datatype handle.
        let datatype = unsafe { ffi::RSMPI_DOUBLE };
        self.broadcast_raw("broadcast_f64", ptr, len, 8, datatype, root)
    }

    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        let op = "broadcast_bytes";
        check_root(op, self.rank, root, self.size)?;
        let mut len = buf.len() as u64;
        self.broadcast_u64(op, &mut len, root)?;
        if self.rank != root {
            buf.clear();
            buf.resize(usize::try_from(len).expect("the length fits in memory"), 0);
        }
        let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
        // SAFETY: reads MPI's predefined datatype handle.
        let datatype = unsafe { ffi::RSMPI_UINT8_T };
        self.broadcast_raw(op, ptr, len, 1, datatype, root)
    }

    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let op = "all_gather_bytes";
        let mut lens = vec![0u64; self.size];
        let my_len = mine.len() as u64;
        // SAFETY: one u64 sent, one received from each rank into `lens`.
        let rc = unsafe {
            ffi::MPI_Allgather(
                std::ptr::from_ref(&my_len).cast::<c_void>(),
                1,
                ffi::RSMPI_UINT64_T,
                lens.as_mut_ptr().cast::<c_void>(),
                1,
                ffi::RSMPI_UINT64_T,
                self.comm.as_raw(),
            )
        };
        check(rc, op, self.rank)?;
        let lens: Vec<usize> = lens.into_iter().map(|l| l as usize).collect();
        let total: usize = lens.iter().sum();
        if total > MAX_COUNT {
            return Err(Error::Collective {
                op,
                rank: self.rank,
                msg: format!(
                    "{total} bytes in all: more than one MPI call can gather ({MAX_COUNT})"
                ),
            });
        }
        let counts: Vec<c_int> = lens.iter().map(|&l| count(l)).collect();
        let displs: Vec<c_int> = lens
            .iter()
            .scan(0, |at, &l| {
                let d = *at;
                *at += l;
                Some(count(d))
            })
            .collect();
        let mut all = vec![0u8; total];
        // SAFETY: `mine` has lens[rank] bytes; `all` has room for every rank's,
        // at the displacements computed from the lengths every rank sent.
        let rc = unsafe {
            ffi::MPI_Allgatherv(
                mine.as_ptr().cast::<c_void>(),
                count(mine.len()),
                ffi::RSMPI_UINT8_T,
                all.as_mut_ptr().cast::<c_void>(),
                counts.as_ptr(),
                displs.as_ptr(),
                ffi::RSMPI_UINT8_T,
                self.comm.as_raw(),
            )
        };
        check(rc, op, self.rank)?;
        let mut at = 0;
        Ok(lens
            .iter()
            .map(|&l| {
                let part = all[at..at + l].to_vec();
                at += l;
                part
            })
            .collect())
    }
}

impl Drop for MpiCollective {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "ferrograd: rank {} of {} panicked; aborting the MPI job (MPI_Abort)",
                self.rank, self.size
            );
            // SAFETY: a valid communicator; MPI_Abort ends the job.
            unsafe {
                ffi::MPI_Abort(self.comm.as_raw(), 101);
            }
        }
    }
}

impl std::fmt::Debug for MpiCollective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiCollective")
            .field("rank", &self.rank)
            .field("world_size", &self.size)
            .field("owns_mpi", &self.universe.is_some())
            .finish()
    }
}

/// A count or displacement as MPI's `int` (pieces are at most 2³⁰ elements).
fn count(n: usize) -> c_int {
    c_int::try_from(n).expect("pieces are at most 2^30 elements")
}

/// `Ok` for `MPI_SUCCESS`, else the error with MPI's message.
fn check(rc: c_int, op: &'static str, rank: usize) -> Result<()> {
    if rc == ffi::MPI_SUCCESS as c_int {
        return Ok(());
    }
    let mut text = [0 as c_char; ffi::MPI_MAX_ERROR_STRING as usize + 1];
    let mut len: c_int = 0;
    // SAFETY: the buffer holds MPI_MAX_ERROR_STRING characters, as MPI requires.
    let ok = unsafe { ffi::MPI_Error_string(rc, text.as_mut_ptr(), &mut len) };
    let message = if ok == ffi::MPI_SUCCESS as c_int {
        let bytes: Vec<u8> = text[..usize::try_from(len).unwrap_or(0)]
            .iter()
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        "(no message)".to_string()
    };
    Err(Error::Collective {
        op,
        rank,
        msg: format!("MPI error {rc}: {message}"),
    })
}
