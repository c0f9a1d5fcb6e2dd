//! Data-parallel training across threads, processes and machines.
//!
//! Every rank (a thread or a process) holds a replica of the model and trains on
//! its own part of each global batch; before each optimizer step the gradients
//! are averaged across the ranks, so every replica makes the same update and the
//! replicas stay equal. The pieces:
//!
//! - [`Collective`]: what a group of ranks does together (all-reduce sum and mean
//!   of a flat buffer, broadcast, barrier, all-gather of bytes), with reductions
//!   added **in rank order**, so every rank gets the same bits in every run;
//!   [`CollectiveExt`] gives the generic forms for `f32` and `f64`.
//! - [`LocalCollective`] and [`local::spawn`]: ranks as threads of one process, in
//!   every build (for one machine and for tests).
//! - `MpiCollective` (cargo feature `mpi`): ranks as MPI processes, started by
//!   `mpirun` on one or several machines, over the `mpi` crate (rsmpi).
//! - [`DataParallel`]: checks that the ranks' models agree and broadcasts rank
//!   0's parameters at construction; after each backward pass,
//!   [`all_reduce_gradients`](DataParallel::all_reduce_gradients) averages the
//!   gradients in a few large buckets.
//! - [`data::shard`](crate::data::shard) and
//!   [`Batches::shard`](crate::data::Batches::shard): each rank's disjoint part of
//!   every global batch of one seeded shuffle.
//! - [`save_checkpoint`] and [`load_checkpoint`]: written by rank 0 only, read by
//!   rank 0 and broadcast.
//!
//! The training loop stays yours: only the gradients pass through the helper.
//!
//! ```
//! use ferrograd::data::{gather_rows, Batches};
//! use ferrograd::distributed::{local, Collective, DataParallel};
//! use ferrograd::nn::{Linear, Module};
//! use ferrograd::optim::{Optimizer, Sgd, SgdConfig};
//! use ferrograd::rand::{rngs::StdRng, SeedableRng};
//! use ferrograd::{loss, Tensor};
//!
//! let x = Tensor::<f32>::randn(&[64, 3], &mut StdRng::seed_from_u64(0));
//! let y = x.sum_axis(1, true);                               // learn y = x₀ + x₁ + x₂
//! let finals = local::spawn(2, |comm| -> ferrograd::Result<Vec<f32>> {
//!     // each rank starts from its own random weights: DataParallel::new
//!     // replaces them with rank 0's
//!     let net = Linear::new(3, 1, true, &mut StdRng::seed_from_u64(comm.rank() as u64));
//!     let dp = DataParallel::new(&comm, net.named_parameters())?;
//!     let mut opt = Sgd::new_named(net.named_parameters(), SgdConfig { lr: 0.1, ..Default::default() });
//!     let mut rng = StdRng::seed_from_u64(7);               // the same shuffle on every rank
//!     for _epoch in 0..20 {
//!         for part in Batches::new(64, 16).shuffle(&mut rng).shard(comm.rank(), comm.world_size()) {
//!             let l = loss::mse(&net.forward(&gather_rows(&x, part)), &gather_rows(&y, part))?;
//!             let grads = dp.all_reduce_gradients(l.backward()?)?;   // the mean over the ranks
//!             opt.step(&grads)?;
//!         }
//!     }
//!     Ok(net.weight().to_vec())
//! });
//! let (w0, w1) = (finals[0].as_ref().unwrap(), finals[1].as_ref().unwrap());
//! assert_eq!(w0, w1);                                         // the replicas agree, bit for bit
//! assert!(w0.iter().all(|w| (w - 1.0).abs() < 0.05), "{w0:?}");
//! ```
//!
//! # Running under MPI
//!
//! Build with `--features mpi` (it needs an MPI library and its headers, e.g.
//! Debian's `libopenmpi-dev`, and `libclang-dev` for the bindings), make the
//! group with `MpiCollective::init()` instead of [`local::spawn`], and start one
//! process per rank: `mpirun -np 2 target/release/examples/distributed_moons`.
//! `docs/distributed.md` in the repository tells how to run on several machines
//! and what the communication costs.
//!
//! A rank that crashes cannot be recovered by MPI: `MpiCollective` aborts the
//! whole job when its rank panics (`MPI_Abort`), and `mpirun` ends the job when a
//! process exits without finishing MPI. Errors that MPI reports are returned as
//! [`Error::Collective`](crate::Error::Collective) (`MPI_ERRORS_RETURN` is set on
//! the group's communicator).

mod checkpoint;
mod collective;
pub mod local;
#[cfg(feature = "mpi")]
mod mpi;
mod parallel;

pub use checkpoint::{load_checkpoint, save_checkpoint};
pub use collective::{Collective, CollectiveExt};
pub use local::LocalCollective;
#[cfg(feature = "mpi")]
pub use mpi::MpiCollective;
pub use parallel::DataParallel;

pub(crate) use collective::part_range;

/// True when this process was started by an MPI launcher (`mpirun`/`mpiexec`
/// of Open MPI, MPICH or a PMIx-based one), read from the variables they set:
/// a program can then use `MpiCollective` (feature `mpi`), and run its ranks
/// as threads ([`local::spawn`]) otherwise; [`launch`] makes that choice.
///
/// ```
/// // `cargo test` is not started by mpirun
/// assert!(!ferrograd::distributed::launched_by_mpirun());
/// ```
pub fn launched_by_mpirun() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Runs `f` on each rank of a group and returns this process's results: under
/// an MPI launcher ([`launched_by_mpirun`]) in a build with the `mpi` feature,
/// once, as this process's rank of the MPI job (one result); otherwise on
/// `local_ranks` threads of this process ([`local::spawn`], one result per
/// rank, in rank order). The same program then runs on one machine or under
/// `mpirun`.
///
/// Under MPI, an error from `f` on one rank would leave the other ranks
/// waiting in their next collective operation forever: it is printed to
/// standard error and the job is aborted (`MPI_Abort`), which ends every
/// process. On threads, the errors are returned (the first in rank order).
///
/// ```
/// use ferrograd::distributed::{launch, CollectiveExt};
/// let sums = launch(3, |comm| {
///     let mut x = [comm.rank() as f32];
///     comm.all_reduce_sum(&mut x)?;
///     Ok(x[0])
/// })?;
/// assert_eq!(sums, [3.0, 3.0, 3.0]);                 // 0 + 1 + 2 on every rank
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// The first error of `f` on the threads; [`Error::Collective`] when MPI
/// cannot start.
///
/// [`Error::Collective`]: crate::Error::Collective
pub fn launch<R, F>(local_ranks: usize, f: F) -> crate::Result<Vec<R>>
where
    R: Send,
    F: Fn(&dyn Collective) -> crate::Result<R> + Sync,
{
    #[cfg(feature = "mpi")]
    if launched_by_mpirun() {
        let comm = MpiCollective::init()?;
        return match f(&comm) {
            Ok(r) => Ok(vec![r]),
            Err(e) => {
                eprintln!("error on rank {}: {e}", comm.rank());
                comm.abort(1) // the other ranks may be waiting for this one
            }
        };
    }
    local::spawn(local_ranks, |comm| f(&comm))
        .into_iter()
        .collect()
}
