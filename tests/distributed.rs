//! Data-parallel training on the in-process group (`distributed::local`): the
//! equivalences of issue 12 (ranks × shards against one process), the fixed
//! reduction order, the start-up check, parameters without a gradient, sharding,
//! checkpoints, and errors instead of hangs.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ferrograd::data::{gather_rows, Batches, Shuffler};
use ferrograd::distributed::{
    load_checkpoint, local, save_checkpoint, Collective, CollectiveExt, DataParallel,
    LocalCollective,
};
use ferrograd::io::Checkpoint;
use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::rand::{rngs::StdRng, RngExt, SeedableRng};
use ferrograd::{loss, Error, Tensor};

#[allow(dead_code)]
#[path = "common/data_parallel.rs"]
mod data_parallel;

use data_parallel::*;

/// `world` ranks on threads, each training with `train_on`.
fn train_ranks(world: usize, kind: Opt, batch: usize, n_epochs: u64) -> Vec<Vec<Vec<f32>>> {
    local::spawn(world, |comm| train_on(&comm, kind, batch, n_epochs))
}

fn check_equivalences(kind: Opt) {
    // 70 samples in global batches of 10 (the ranks' parts: 5 + 5), 3 epochs = 21 steps
    let (batch, n_epochs) = (10, 3);
    let ranks = train_ranks(2, kind, batch, n_epochs);
    assert_eq!(
        bits(&ranks[0]),
        bits(&ranks[1]),
        "{kind:?}: the replicas differ"
    );
    let by_hand = train_shard_average(2, kind, batch, n_epochs);
    assert_eq!(
        bits(&ranks[0]),
        bits(&by_hand),
        "{kind:?}: 2 ranks differ from (g0 + g1) / 2 in one process"
    );
    let whole = train_whole_batch(kind, batch, n_epochs);
    let rel = max_rel_diff(&ranks[0], &whole);
    eprintln!("{kind:?}: 2 ranks × batch 5 vs one process × batch 10, 21 steps: max relative difference {rel:.3e}");
    assert!(rel <= 1e-5, "{kind:?}: relative difference {rel:e}");
    // and training did something
    let start = params(&net(100));
    assert!(max_rel_diff(&ranks[0], &start) > 0.05);
}

#[test]
fn sgd_two_ranks_equal_shard_average_and_whole_batch() {
    check_equivalences(Opt::Sgd);
}

#[test]
fn adam_two_ranks_equal_shard_average_and_whole_batch() {
    check_equivalences(Opt::Adam);
}

#[test]
fn uneven_batches_with_scaled_losses_match_the_whole_batch() {
    // global batches of 9 over 2 ranks (5 + 4), the last one 7 (4 + 3)
    let ranks = train_ranks(2, Opt::Sgd, 9, 2);
    assert_eq!(bits(&ranks[0]), bits(&ranks[1]));
    assert_eq!(
        bits(&ranks[0]),
        bits(&train_shard_average(2, Opt::Sgd, 9, 2))
    );
    let rel = max_rel_diff(&ranks[0], &train_whole_batch(Opt::Sgd, 9, 2));
    eprintln!("uneven parts, 2 ranks vs one process: max relative difference {rel:.3e}");
    assert!(rel <= 1e-5, "relative difference {rel:e}");
}

#[test]
fn three_and_four_ranks_reduce_in_rank_order() {
    for world in [3, 4] {
        let first = train_ranks(world, Opt::Adam, 12, 2);
        for r in 1..world {
            assert_eq!(
                bits(&first[0]),
                bits(&first[r]),
                "{world} ranks: rank {r} differs"
            );
        }
        // the same bits run after run, and the same as ((g0 + g1) + g2) / 3 … by hand
        let again = train_ranks(world, Opt::Adam, 12, 2);
        assert_eq!(
            bits(&first[0]),
            bits(&again[0]),
            "{world} ranks: runs differ"
        );
        assert_eq!(
            bits(&first[0]),
            bits(&train_shard_average(world, Opt::Adam, 12, 2))
        );
        let rel = max_rel_diff(&first[0], &train_whole_batch(Opt::Adam, 12, 2));
        assert!(rel <= 1e-5, "{world} ranks: relative difference {rel:e}");
    }
}

#[test]
fn all_reduce_adds_in_rank_order_whatever_the_timing() {
    // values where the order of the additions shows: ±1e8 on ranks 0 and 1
    // (they cancel when added first), small numbers on ranks 2 and 3 (lost next
    // to 1e8 when added before the cancellation)
    let world = 4;
    let inputs: Vec<Vec<f32>> = (0..world)
        .map(|r| {
            let mut rng = StdRng::seed_from_u64(r as u64);
            (0..1000)
                .map(|i| match r {
                    0 if i % 2 == 0 => 1e8,
                    0 => -1e8,
                    1 if i % 2 == 0 => -1e8,
                    1 => 1e8,
                    _ => rng.random_range(-3.0f32..3.0),
                })
                .collect()
        })
        .collect();
    let mut want = inputs[0].clone();
    for input in &inputs[1..] {
        want.iter_mut().zip(input).for_each(|(a, b)| *a += b);
    }
    // a sum in another order differs, so the test can tell
    let mut reversed = inputs[world - 1].clone();
    for input in inputs[..world - 1].iter().rev() {
        reversed.iter_mut().zip(input).for_each(|(a, b)| *a += b);
    }
    let differ = want.iter().zip(&reversed).filter(|(a, b)| a != b).count();
    assert!(differ > 900, "only {differ} sums depend on the order");
    for run in 0..5 {
        let out = local::spawn(world, |comm| {
            // stagger the ranks differently in each run
            let delay = (comm.rank() * 7 + run * 3) % 5;
            std::thread::sleep(std::time::Duration::from_millis(delay as u64));
            let mut buf = inputs[comm.rank()].clone();
            comm.all_reduce_sum(&mut buf).unwrap();
            buf
        });
        for (r, got) in out.iter().enumerate() {
            assert!(got == &want, "run {run}, rank {r}: not the rank-order sum");
        }
    }
    // f64, and the mean divides the rank-order sum by the world size
    let out = local::spawn(3, |comm| {
        let mut buf = vec![0.1f64 * (comm.rank() + 1) as f64, 1.0];
        comm.all_reduce_mean(&mut buf).unwrap();
        buf
    });
    let want = vec![((0.1f64 + 0.2) + 0.3) / 3.0, 1.0];
    assert!(out.iter().all(|o| *o == want), "{out:?}");
}

#[test]
fn broadcast_and_all_gather() {
    let out = local::spawn(3, |comm| {
        let mut v = vec![comm.rank() as f64; 3];
        comm.broadcast(&mut v, 2).unwrap();
        let mut bytes = vec![comm.rank() as u8; comm.rank() + 1];
        comm.broadcast_bytes(&mut bytes, 1).unwrap();
        let gathered = comm.all_gather_bytes(&vec![7; comm.rank()]).unwrap();
        comm.barrier().unwrap();
        (v, bytes, gathered)
    });
    for (v, bytes, gathered) in out {
        assert_eq!(v, [2.0, 2.0, 2.0]);
        assert_eq!(bytes, [1, 1]);
        assert_eq!(gathered, [vec![], vec![7], vec![7, 7]]);
    }
    let err = local::spawn(2, |comm| comm.broadcast(&mut [0.0f32], 2).unwrap_err());
    assert_eq!(
        err[0].to_string(),
        "broadcast_f32 on rank 0: root 2 is not a rank of this group of 2 (ranks 0..2)"
    );
}

#[test]
fn initial_parameters_come_from_rank_zero() {
    let out = local::spawn(3, |comm| {
        let net = net(comm.rank() as u64);
        let before = params(&net);
        let dp = DataParallel::from_module(&comm, &net).unwrap();
        assert_eq!(dp.world_size(), 3);
        (before, params(&net))
    });
    for (r, (before, after)) in out.iter().enumerate() {
        assert_eq!(after, &out[0].0, "rank {r} after the broadcast");
        if r > 0 {
            assert_ne!(before, &out[0].0, "rank {r} started from other weights");
        }
    }
}

#[test]
fn models_that_differ_are_an_error_on_every_rank() {
    // rank 1 has a wider hidden layer
    let out = local::spawn(2, |comm| {
        let hidden = if comm.rank() == 1 { 17 } else { 16 };
        let net: Mlp = Mlp::new(
            &[2, hidden, 2],
            Activation::Tanh,
            &mut StdRng::seed_from_u64(0),
        );
        DataParallel::new(&comm, net.named_parameters()).map(drop)
    });
    for r in &out {
        let e = r.as_ref().unwrap_err();
        assert!(matches!(e, Error::ReplicaMismatch { rank: 1, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "DataParallel: rank 1's model differs from rank 0's: parameter `0.weight` has \
             shape [17, 2] on rank 1 and [16, 2] on rank 0; parameter `0.bias` has \
             shape [17] on rank 1 and [16] on rank 0; parameter `1.weight` has shape \
             [2, 17] on rank 1 and [2, 16] on rank 0"
        );
    }
    // rank 2 of 3 names a parameter differently; element types differ
    let out = local::spawn(3, |comm| {
        let w = Tensor::<f32>::zeros(&[2]);
        let name = if comm.rank() == 2 { "v" } else { "w" };
        DataParallel::new(&comm, vec![(name.to_string(), w)]).map(drop)
    });
    for r in &out {
        assert_eq!(
            r.as_ref().unwrap_err().to_string(),
            "DataParallel: rank 2's model differs from rank 0's: rank 2 has no parameter `w` \
             (rank 0's has shape [2]); rank 2 has a parameter `v` (shape [2]) that rank 0 does \
             not have"
        );
    }
    let out = local::spawn(2, |comm| {
        if comm.rank() == 0 {
            DataParallel::new(&comm, vec![("w".into(), Tensor::<f32>::zeros(&[2]))]).map(drop)
        } else {
            DataParallel::new(&comm, vec![("w".into(), Tensor::<f64>::zeros(&[2]))]).map(drop)
        }
    });
    for r in &out {
        assert!(
            r.as_ref()
                .unwrap_err()
                .to_string()
                .ends_with("its elements are f64, rank 0's are f32"),
            "{r:?}"
        );
    }
}

#[test]
fn a_gradient_on_one_rank_updates_every_rank() {
    // `extra` only takes part in rank 1's loss; `frozen` in nobody's
    let out = local::spawn(3, |comm| {
        let w = Tensor::<f32>::from_vec(vec![1.0, 2.0], &[2])
            .unwrap()
            .requires_grad();
        let extra = Tensor::<f32>::from_vec(vec![0.5], &[1])
            .unwrap()
            .requires_grad();
        let frozen = Tensor::<f32>::from_vec(vec![3.0], &[1])
            .unwrap()
            .requires_grad();
        let named = vec![
            ("w".to_string(), w.clone()),
            ("extra".to_string(), extra.clone()),
            ("frozen".to_string(), frozen.clone()),
        ];
        let dp = DataParallel::new(&comm, named.clone()).unwrap();
        let mut opt = Adam::new_named(named, AdamConfig::default());
        let (mut seen, mut skipped) = (Vec::new(), Vec::new());
        for step in 0..4 {
            let k = (comm.rank() + step) as f32;
            let mut l = (&w * k).sum();
            if comm.rank() == 1 && step % 2 == 0 {
                l = l + (&extra * &extra).sum();
            }
            let grads = dp.all_reduce_gradients(l.backward().unwrap()).unwrap();
            assert!(grads.get(&frozen).is_none());
            seen.push(grads.get(&extra).map(Tensor::to_vec));
            let report = opt.step(&grads).unwrap();
            skipped.push(
                report
                    .skipped
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            );
        }
        let steps: Vec<Option<usize>> = (0..3).map(|i| opt.state(i).map(|s| s.step)).collect();
        (
            w.to_vec(),
            extra.to_vec(),
            frozen.to_vec(),
            steps,
            seen,
            skipped,
        )
    });
    for r in 1..3 {
        assert_eq!(out[r], out[0], "rank {r} differs from rank 0");
    }
    let (_, extra, frozen, steps, seen, skipped) = &out[0];
    // extra has a gradient (on rank 1 only) at steps 0 and 2: at step 0, 2·0.5 / 3
    assert_eq!(seen[0], Some(vec![2.0 * 0.5 / 3.0]));
    assert!(seen[1].is_none() && seen[2].is_some() && seen[3].is_none());
    assert_eq!(skipped[0], ["frozen"]);
    assert_eq!(skipped[1], ["extra", "frozen"]);
    assert_eq!(steps, &[Some(4), Some(2), None]);
    assert_ne!(extra, &[0.5]);
    assert_eq!(frozen, &[3.0]);
}

#[test]
fn buckets_of_any_size_give_the_same_bits() {
    let run = |bucket_bytes: usize| {
        local::spawn(3, |comm| {
            let net = net(comm.rank() as u64);
            let dp = DataParallel::new(&comm, net.named_parameters())
                .unwrap()
                .bucket_bytes(bucket_bytes);
            let (x, labels) = data();
            let r = comm.rank();
            let rows: Vec<usize> = (r * 10..r * 10 + 10).collect();
            let targets: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
            let l = loss::cross_entropy(&net.forward(&gather_rows(&x, &rows)), &targets).unwrap();
            let grads = dp.all_reduce_gradients(l.backward().unwrap()).unwrap();
            let g: Vec<Vec<f32>> = net
                .parameters()
                .iter()
                .map(|p| grads.get(p).unwrap().to_vec())
                .collect();
            (dp.num_buckets(), g)
        })
    };
    // 2·16 + 16 + 16·16 + 16 + 16·2 + 2 = 354 parameters
    let one = run(DataParallel::<f32>::DEFAULT_BUCKET_BYTES);
    let many = run(7 * 4);
    assert_eq!(one[0].0, 1);
    assert_eq!(many[0].0, 354usize.div_ceil(7));
    for (r, (_, grads)) in many.iter().enumerate() {
        assert_eq!(grads, &one[0].1, "rank {r}");
    }
}

#[test]
fn shards_are_disjoint_and_cover_every_batch() {
    let mut shuffler = Shuffler::new(9);
    for (n, batch, world) in [
        (70, 10, 2),
        (70, 9, 2),
        (23, 8, 3),
        (10, 3, 4),
        (5, 5, 8),
        (64, 16, 4),
    ] {
        let batches = shuffler.next_epoch(n, batch);
        let parts: Vec<Vec<&[usize]>> = (0..world)
            .map(|r| batches.shard(r, world).collect())
            .collect();
        for p in &parts {
            assert_eq!(
                p.len(),
                batches.len(),
                "every rank runs the same number of steps"
            );
        }
        let mut seen = Vec::new();
        for (b, whole) in batches.iter().enumerate() {
            let joined: Vec<usize> = (0..world)
                .flat_map(|r| parts[r][b].iter().copied())
                .collect();
            assert_eq!(joined, whole, "n {n}, batch {batch}, world {world}");
            let sizes: Vec<usize> = (0..world).map(|r| parts[r][b].len()).collect();
            assert!(
                sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                "{sizes:?}"
            );
            seen.extend(joined);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..n).collect::<Vec<_>>());
    }
    let r = catch_unwind(|| Batches::new(4, 2).shard(2, 2).count());
    let msg = r.unwrap_err();
    assert_eq!(
        msg.downcast_ref::<String>().unwrap(),
        "Batches::shard: rank 2 is not a rank of a group of 2 (ranks 0..2)"
    );
}

#[test]
fn checkpoints_are_written_by_rank_zero_and_broadcast() {
    let dir = std::env::temp_dir().join(format!("ferrograd-distributed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.safetensors");
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let out = local::spawn(2, |comm| {
        let trained = net(comm.rank() as u64);
        let _dp = DataParallel::new(&comm, trained.named_parameters()).unwrap();
        save_checkpoint(&comm, &path, || {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Checkpoint::new(42).model(&trained)
        })
        .unwrap();
        // a fresh replica with other weights, restored from the broadcast checkpoint
        let other = net(50 + comm.rank() as u64);
        let ck = load_checkpoint::<f32>(&comm, &path).unwrap();
        ck.restore_model(&other).unwrap();
        (ck.step(), params(&other), params(&trained))
    });
    assert_eq!(
        calls.into_inner(),
        1,
        "only rank 0 builds and writes the checkpoint"
    );
    for (step, restored, trained) in &out {
        assert_eq!(*step, 42);
        assert_eq!(restored, trained);
    }
    // a missing file: rank 0's I/O error, quoted on rank 1
    let missing = dir.join("missing.safetensors");
    let out = local::spawn(2, |comm| {
        load_checkpoint::<f32>(&comm, &missing)
            .unwrap_err()
            .to_string()
    });
    assert!(
        out[0].starts_with("io: ") && out[0].contains("missing.safetensors"),
        "{}",
        out[0]
    );
    assert!(
        out[1].starts_with("load_checkpoint on rank 1: rank 0 failed: io: "),
        "{}",
        out[1]
    );
    // a directory that does not exist: saving fails on every rank
    let bad = dir.join("no/such/dir/run.safetensors");
    let out = local::spawn(2, |comm| {
        save_checkpoint(&comm, &bad, || Checkpoint::<f32>::new(1))
            .unwrap_err()
            .to_string()
    });
    assert!(out[0].starts_with("io: "), "{}", out[0]);
    assert!(
        out[1].starts_with("save_checkpoint on rank 1: rank 0 failed: io: "),
        "{}",
        out[1]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_panicking_rank_is_an_error_for_the_others_not_a_hang() {
    let errors = std::sync::Mutex::new(Vec::new());
    let r = catch_unwind(AssertUnwindSafe(|| {
        local::spawn(3, |comm| {
            if comm.rank() == 1 {
                panic!("rank 1 fails on purpose");
            }
            let mut buf = [1.0f32];
            let e = comm.all_reduce_sum(&mut buf).unwrap_err();
            // and every later operation fails at once
            let again = comm.barrier().unwrap_err();
            errors
                .lock()
                .unwrap()
                .push((e.to_string(), again.to_string()));
        })
    }));
    let panic = r.unwrap_err();
    assert_eq!(
        panic.downcast_ref::<&str>(),
        Some(&"rank 1 fails on purpose")
    );
    let mut errors = errors.into_inner().unwrap();
    errors.sort();
    assert_eq!(
        errors,
        [0, 2]
            .map(|r| (
                format!("all_reduce_sum_f32 on rank {r}: rank 1 panicked; the group cannot go on"),
                format!("barrier on rank {r}: rank 1 panicked; the group cannot go on"),
            ))
            .to_vec()
    );
}

#[test]
fn mismatched_calls_are_errors_on_every_rank() {
    // different operations
    let out = local::spawn(2, |comm| {
        if comm.rank() == 0 {
            comm.barrier().unwrap_err().to_string()
        } else {
            comm.all_reduce_sum(&mut [1.0f64]).unwrap_err().to_string()
        }
    });
    assert_eq!(
        out,
        [
            "barrier on rank 0: the ranks called different operations: rank 0 called barrier, \
             rank 1 called all_reduce_sum_f64",
            "all_reduce_sum_f64 on rank 1: the ranks called different operations: rank 1 called \
             all_reduce_sum_f64, rank 0 called barrier",
        ]
    );
    // different lengths
    let out = local::spawn(3, |comm| {
        let mut buf = vec![0.0f32; 4 + usize::from(comm.rank() == 2)];
        comm.all_reduce_sum(&mut buf).unwrap_err().to_string()
    });
    for (r, e) in out.iter().enumerate() {
        assert_eq!(
            e,
            &format!(
                "all_reduce_sum_f32 on rank {r}: the ranks' buffers differ in length: [4, 4, 5] \
                 elements, by rank"
            )
        );
    }
    // a group of your own threads: a rank dropped while another waits
    let mut ranks = LocalCollective::group(2);
    let second = ranks.pop().unwrap();
    let first = ranks.pop().unwrap();
    let waiter = std::thread::spawn(move || first.barrier().unwrap_err().to_string());
    drop(second);
    assert!(waiter
        .join()
        .unwrap()
        .starts_with("barrier on rank 0: rank 1 left the group"));
}
