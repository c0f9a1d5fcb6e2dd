//! What the data-parallel tests share (tests/distributed.rs on threads,
//! tests/mpi.rs under MPI): a small classifier, its data, one rank's training,
//! and the single-process references it must match.

use ferrograd::data::{gather_rows, shard, Batches, Shuffler};
use ferrograd::distributed::{Collective, DataParallel};
use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{loss, Gradients, Tensor};

pub const SAMPLES: usize = 70;

/// A fixed classification set: 2-D points, labelled by the sign of x·y.
pub fn data() -> (Tensor, Vec<usize>) {
    let x = Tensor::<f32>::randn(&[SAMPLES, 2], &mut StdRng::seed_from_u64(11));
    let v = x.to_vec();
    let labels = v
        .chunks(2)
        .map(|p| usize::from(p[0] * p[1] > 0.0))
        .collect();
    (x, labels)
}

pub fn net(seed: u64) -> Mlp {
    Mlp::new(
        &[2, 16, 16, 2],
        Activation::Tanh,
        &mut StdRng::seed_from_u64(seed),
    )
}

#[derive(Clone, Copy, Debug)]
pub enum Opt {
    Sgd,
    Adam,
}

pub fn optimizer(kind: Opt, net: &Mlp) -> Box<dyn Optimizer<f32>> {
    match kind {
        // momentum and weight decay: state that would drift if updates differed
        Opt::Sgd => Box::new(Sgd::new_named(
            net.named_parameters(),
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 1e-3,
                ..Default::default()
            },
        )),
        Opt::Adam => Box::new(Adam::new_named(
            net.named_parameters(),
            AdamConfig {
                lr: 1e-2,
                ..Default::default()
            },
        )),
    }
}

/// The mean cross-entropy over `part` of the global `batch`, scaled by
/// `part.len() · world / batch.len()` so that the ranks' mean is the batch's.
pub fn shard_loss(net: &Mlp, part: &[usize], batch_len: usize, world: usize) -> Tensor {
    let (x, labels) = data();
    let targets: Vec<usize> = part.iter().map(|&i| labels[i]).collect();
    let l = loss::cross_entropy(&net.forward(&gather_rows(&x, part)), &targets).unwrap();
    l * (part.len() as f32 * world as f32 / batch_len as f32)
}

pub fn params(net: &Mlp) -> Vec<Vec<f32>> {
    net.parameters().iter().map(Tensor::to_vec).collect()
}

/// The epochs' batches: the same seeded shuffles on every rank and in every reference.
pub fn epochs(epochs: u64, batch: usize) -> Vec<Batches> {
    let shuffler = Shuffler::new(5);
    (0..epochs)
        .map(|e| shuffler.epoch_batches(e, SAMPLES, batch))
        .collect()
}

/// One rank's training: from its own initial weights (DataParallel replaces
/// them with rank 0's), on its shard of every global batch; the final parameters.
pub fn train_on(comm: &dyn Collective, kind: Opt, batch: usize, n_epochs: u64) -> Vec<Vec<f32>> {
    let world = comm.world_size();
    let net = net(100 + comm.rank() as u64);
    let dp = DataParallel::new(comm, net.named_parameters()).unwrap();
    let mut opt = optimizer(kind, &net);
    for batches in epochs(n_epochs, batch) {
        for (whole, part) in batches.iter().zip(batches.shard(comm.rank(), world)) {
            let l = shard_loss(&net, part, whole.len(), world);
            let grads = dp.all_reduce_gradients(l.backward().unwrap()).unwrap();
            opt.step(&grads).unwrap();
        }
    }
    params(&net)
}

/// One process: for each global batch, the gradients of each rank's shard,
/// added in rank order and divided by the number of ranks, by hand.
pub fn train_shard_average(world: usize, kind: Opt, batch: usize, n_epochs: u64) -> Vec<Vec<f32>> {
    let net = net(100);
    let mut opt = optimizer(kind, &net);
    let ps = net.parameters();
    for batches in epochs(n_epochs, batch) {
        for whole in batches.iter() {
            let mut sums: Vec<Option<Vec<f32>>> = vec![None; ps.len()];
            for r in 0..world {
                let g = shard_loss(&net, shard(whole, r, world), whole.len(), world)
                    .backward()
                    .unwrap();
                for (p, sum) in ps.iter().zip(&mut sums) {
                    let g = g.get(p).unwrap().to_vec();
                    match sum {
                        None => *sum = Some(g),
                        Some(s) => s.iter_mut().zip(&g).for_each(|(a, b)| *a += b),
                    }
                }
            }
            let mut mean = Gradients::new();
            for (p, sum) in ps.iter().zip(sums) {
                let v: Vec<f32> = sum.unwrap().iter().map(|s| s / world as f32).collect();
                mean.insert(p, Tensor::from_vec(v, p.shape()).unwrap());
            }
            opt.step(&mean).unwrap();
        }
    }
    params(&net)
}

/// One process on the whole global batch.
pub fn train_whole_batch(kind: Opt, batch: usize, n_epochs: u64) -> Vec<Vec<f32>> {
    let net = net(100);
    let mut opt = optimizer(kind, &net);
    for batches in epochs(n_epochs, batch) {
        for whole in batches.iter() {
            opt.step(&shard_loss(&net, whole, whole.len(), 1).backward().unwrap())
                .unwrap();
        }
    }
    params(&net)
}

/// The largest |a − b| / max(|b|, 0.01) over all elements.
pub fn max_rel_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(&x, &y)| f64::from((x - y).abs()) / f64::from(y.abs().max(0.01)))
        .fold(0.0, f64::max)
}

pub fn bits(p: &[Vec<f32>]) -> Vec<u32> {
    p.iter().flatten().map(|v| v.to_bits()).collect()
}
