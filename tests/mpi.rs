//! Data-parallel training over real MPI (feature `mpi`): the equivalences of
//! tests/distributed.rs with `MpiCollective` instead of threads. `MPI_Init` runs
//! once per process, so this is a plain program (`harness = false`), launched by
//! `scripts/mpi_test.sh` as `mpirun -np 2 …` (any number of ranks works).
//!
//! Every check runs on every rank. A failed check panics; the panic drops the
//! `MpiCollective`, which aborts the whole job (`MPI_Abort`), so every rank and
//! `mpirun` exit non-zero. With the argument `crash`, rank 1 panics while rank 0
//! waits in a barrier: the job must end (non-zero) rather than hang.

#[allow(dead_code)]
#[path = "common/data_parallel.rs"]
mod data_parallel;

use std::process::ExitCode;

use data_parallel::*;
use ferrograd::distributed::{
    load_checkpoint, save_checkpoint, Collective, CollectiveExt, DataParallel, MpiCollective,
};
use ferrograd::io::Checkpoint;
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::{Error, Tensor};
use mpi::raw::AsRaw;

/// Every rank's `mine`, gathered.
fn gather(comm: &MpiCollective, mine: &[u32]) -> Vec<Vec<u32>> {
    let bytes: Vec<u8> = mine.iter().flat_map(|v| v.to_le_bytes()).collect();
    comm.all_gather_bytes(&bytes)
        .unwrap()
        .iter()
        .map(|b| {
            b.chunks(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        })
        .collect()
}

/// Asserts that every rank holds the same `mine`.
fn same_on_every_rank(comm: &MpiCollective, mine: &[u32], what: &str) {
    for (r, other) in gather(comm, mine).iter().enumerate() {
        assert!(
            other == mine,
            "{what}: rank {r} differs from rank {}",
            comm.rank()
        );
    }
}

fn collectives(comm: &MpiCollective) {
    let (rank, world) = (comm.rank(), comm.world_size());
    // rank r's buffer; the sum in rank order, computed here from all of them
    let input = |r: usize| -> Vec<f32> {
        (0..1001)
            .map(|i| match (r, i % 2) {
                (0, 0) => 1e8,
                (0, _) => -1e8,
                (1, 0) => -1e8,
                (1, _) => 1e8,
                _ => ((i * 7 + r * 13) % 17) as f32 * 0.37 - 3.0,
            })
            .collect()
    };
    let mut want = input(0);
    for r in 1..world {
        want.iter_mut().zip(input(r)).for_each(|(a, b)| *a += b);
    }
    let mut buf = input(rank);
    comm.all_reduce_sum(&mut buf).unwrap();
    assert!(buf == want, "all_reduce_sum is not the rank-order sum");
    // the mean, in f64, and lengths that do not split evenly
    for len in [0, 1, world - 1, 7, 100_003] {
        let mut v: Vec<f64> = (0..len).map(|i| (i * (rank + 1)) as f64 * 0.1).collect();
        comm.all_reduce_mean(&mut v).unwrap();
        let want: Vec<f64> = (0..len)
            .map(|i| {
                let mut s = 0.0;
                for r in 0..world {
                    s += (i * (r + 1)) as f64 * 0.1;
                }
                s / world as f64
            })
            .collect();
        assert!(v == want, "all_reduce_mean of {len} elements");
    }
    // broadcast from the last rank; bytes from rank 0; all-gather; barrier
    let w = Tensor::<f32>::full(&[3], rank as f32);
    comm.broadcast_tensor(&w, world - 1).unwrap();
    assert_eq!(w.to_vec(), vec![(world - 1) as f32; 3]);
    let mut bytes = if rank == 0 {
        b"hello".to_vec()
    } else {
        vec![9; 100]
    };
    comm.broadcast_bytes(&mut bytes, 0).unwrap();
    assert_eq!(bytes, b"hello");
    let all = comm.all_gather_bytes(&vec![rank as u8; rank]).unwrap();
    assert_eq!(
        all,
        (0..world).map(|r| vec![r as u8; r]).collect::<Vec<_>>()
    );
    comm.barrier().unwrap();
    let e = comm.broadcast(&mut [0.0f32], world).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("broadcast_f32 on rank {rank}: root {world} is not a rank of this group of {world} (ranks 0..{world})")
    );
}

fn errors_are_returned(comm: &MpiCollective) {
    // MPI_ERRORS_RETURN is set: an invalid call returns an error code instead of
    // aborting the job (MPI's default handler would end it here)
    let mut v = [0u8; 4];
    // SAFETY: a valid buffer and communicator; the root is deliberately invalid.
    let rc = unsafe {
        mpi::ffi::MPI_Bcast(
            v.as_mut_ptr().cast(),
            4,
            mpi::ffi::RSMPI_UINT8_T,
            i32::try_from(comm.world_size() + 5).unwrap(),
            comm.communicator().as_raw(),
        )
    };
    assert_ne!(rc, 0, "MPI_Bcast to an invalid root succeeded");
    // MPI_Init runs once per process
    let e = MpiCollective::init().unwrap_err();
    assert!(e.to_string().contains("MPI is already initialised"), "{e}");
}

fn equivalences(comm: &MpiCollective) {
    let world = comm.world_size();
    for kind in [Opt::Sgd, Opt::Adam] {
        for (batch, n_epochs) in [(10, 3), (9, 2)] {
            let ranks = train_on(comm, kind, batch, n_epochs);
            let mine = bits(&ranks);
            same_on_every_rank(comm, &mine, &format!("{kind:?} parameters"));
            let by_hand = train_shard_average(world, kind, batch, n_epochs);
            assert!(
                mine == bits(&by_hand),
                "{kind:?}, batch {batch}: {world} MPI ranks differ from the shard average"
            );
            let rel = max_rel_diff(&ranks, &train_whole_batch(kind, batch, n_epochs));
            if comm.rank() == 0 {
                println!(
                    "{kind:?}, global batch {batch} over {world} ranks, {n_epochs} epochs: bit-identical to \
                     the shard average in one process; max relative difference to one process on \
                     the whole batch {rel:.3e}"
                );
            }
            assert!(
                rel <= 1e-5,
                "{kind:?}, batch {batch}: relative difference {rel:e}"
            );
        }
    }
}

fn start_up_check(comm: &MpiCollective) {
    let rank = comm.rank();
    let shape: &[usize] = if rank == 1 { &[3, 2] } else { &[2, 2] };
    let e = DataParallel::new(comm, vec![("w".to_string(), Tensor::<f32>::zeros(shape))])
        .map(drop)
        .unwrap_err();
    assert!(matches!(e, Error::ReplicaMismatch { rank: 1, .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "DataParallel: rank 1's model differs from rank 0's: parameter `w` has shape [3, 2] on \
         rank 1 and [2, 2] on rank 0"
    );
}

fn gradient_on_one_rank(comm: &MpiCollective) {
    let w = Tensor::<f32>::from_vec(vec![1.0, 2.0], &[2])
        .unwrap()
        .requires_grad();
    let extra = Tensor::<f32>::from_vec(vec![0.5], &[1])
        .unwrap()
        .requires_grad();
    let named = vec![
        ("w".to_string(), w.clone()),
        ("extra".to_string(), extra.clone()),
    ];
    let dp = DataParallel::new(comm, named.clone())
        .unwrap()
        .bucket_bytes(4);
    let mut opt = Adam::new_named(named, AdamConfig::default());
    for step in 0..3 {
        let mut l = (&w * (comm.rank() + step) as f32).sum();
        if comm.rank() == 1 && step != 1 {
            l = l + (&extra * &extra).sum();
        }
        opt.step(&dp.all_reduce_gradients(l.backward().unwrap()).unwrap())
            .unwrap();
    }
    let steps = [0, 1].map(|i| opt.state(i).map_or(0, |s| s.step) as u32);
    assert_eq!(steps, [3, 2], "Adam's step counts");
    let mine: Vec<u32> = w
        .to_vec()
        .iter()
        .chain(&extra.to_vec())
        .map(|v| v.to_bits())
        .collect();
    same_on_every_rank(comm, &mine, "parameters with a gradient on rank 1 only");
    assert_ne!(extra.to_vec(), [0.5]);
}

fn checkpoints(comm: &MpiCollective) {
    let path = std::env::temp_dir().join(format!(
        "ferrograd-mpi-test-{}.safetensors",
        // the same name on every rank: rank 0's process id
        {
            let mut id = std::process::id().to_le_bytes().to_vec();
            comm.broadcast_bytes(&mut id, 0).unwrap();
            u32::from_le_bytes(id.try_into().unwrap())
        }
    ));
    let w = Tensor::<f32>::full(&[4], 1.5);
    save_checkpoint(comm, &path, || {
        Checkpoint::<f32>::new(7).meta("w", format!("{:?}", w.to_vec()))
    })
    .unwrap();
    let ck = load_checkpoint::<f32>(comm, &path).unwrap();
    assert_eq!(ck.step(), 7);
    assert_eq!(ck.meta_value("w"), Some("[1.5, 1.5, 1.5, 1.5]"));
    comm.barrier().unwrap();
    if comm.rank() == 0 {
        std::fs::remove_file(&path).unwrap();
    }
}

/// One check, run on every rank.
type Check = fn(&MpiCollective);

fn main() -> ExitCode {
    let comm = MpiCollective::init().expect("MPI starts");
    if std::env::args().nth(1).as_deref() == Some("crash") {
        if comm.rank() == 1 {
            panic!("rank 1 crashes on purpose");
        }
        let _ = comm.barrier();
        eprintln!("rank {}: the barrier returned after a crash", comm.rank());
        return ExitCode::SUCCESS; // the script fails on a zero exit
    }
    assert!(comm.world_size() >= 2, "run with mpirun -np 2 (or more)");
    let checks: [(&str, Check); 6] = [
        ("collectives in rank order", collectives),
        ("MPI errors are returned", errors_are_returned),
        ("SGD and Adam equivalences", equivalences),
        ("start-up check", start_up_check),
        ("a gradient on one rank", gradient_on_one_rank),
        ("checkpoints", checkpoints),
    ];
    for (name, check) in &checks {
        check(&comm);
        comm.barrier().unwrap();
        if comm.rank() == 0 {
            println!("ok: {name}");
        }
    }
    if comm.rank() == 0 {
        println!(
            "mpi ({} ranks): {} passed, 0 failed",
            comm.world_size(),
            checks.len()
        );
    }
    ExitCode::SUCCESS
}
