//! How long an all-reduce of gradients takes over MPI (feature `mpi`): the
//! figures of `docs/distributed.md`.
//!
//! ```sh
//! cargo build --release --features mpi --example allreduce_time
//! mpirun -np 2 target/release/examples/allreduce_time            # all-reduce times
//! target/release/examples/allreduce_time --step-times             # 1 process: step times
//! ```
//!
//! For the gradients of the W2 MLP (784-256-256-10, 1 MB of `f32`), of the
//! `tiny_gpt` example's default model and of `GptConfig::default()`, and for a
//! sweep of sizes, it times the crate's fixed-order all-reduce
//! ([`Collective::all_reduce_sum_f32`]), MPI's own `MPI_Allreduce` (whose order
//! of additions is the library's) and, for the models,
//! [`DataParallel::all_reduce_gradients`] (flags, buckets and copies included).
//! Each figure is the median (and, in parentheses, the minimum) over `--reps`
//! runs (default 50) after 5 warm-up runs, each run started after a barrier,
//! timed on rank 0. The bus bandwidth is
//! `2 (N − 1) / N × bytes / time`, the volume a ring all-reduce moves per rank.
//!
//! With `--step-times` and one process, it also times a training step of the W2
//! model (batch 32, Adam) and of the tiny GPT (batch 128 windows of 12 tokens,
//! AdamW), the step times the scaling projection needs (medians of 30 steps).

use std::time::Instant;

use ferrograd::distributed::{Collective, DataParallel, MpiCollective};
use ferrograd::loss::cross_entropy;
use ferrograd::nn::{Activation, Gpt, GptConfig, Mlp, Module};
use ferrograd::optim::{Adam, AdamConfig, AdamW, AdamWConfig, Optimizer};
use ferrograd::rand::{rngs::StdRng, RngExt, SeedableRng};
use ferrograd::{Error, Gradients, Tensor};

/// Parameters by name.
type Named = Vec<(String, Tensor)>;

/// The W2 model of the standard workloads (`benches/w2_mlp.rs`).
fn w2_model() -> Mlp {
    Mlp::new(
        &[784, 256, 256, 10],
        Activation::Relu,
        &mut StdRng::seed_from_u64(0),
    )
}

/// The `tiny_gpt` example's default model: 2 layers, 4 heads, width 128,
/// context 12, the 12 characters of the additions.
fn tiny_gpt_config() -> GptConfig {
    GptConfig {
        vocab: 12,
        context: 12,
        n_layer: 2,
        ..GptConfig::default()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median and the minimum.
#[derive(Clone, Copy)]
struct Timing {
    median: f64,
    min: f64,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", fmt_time(self.median), fmt_time(self.min))
    }
}

/// The median time of `f` over `reps` runs after 5 warm-up runs, each after a
/// barrier (rank 0's clock).
fn time_it(
    comm: &MpiCollective,
    reps: usize,
    mut f: impl FnMut() -> Result<(), Error>,
) -> Result<Timing, Error> {
    time_with_setup(comm, reps, || (), |()| f())
}

/// As [`time_it`], with an untimed `setup` before each run.
fn time_with_setup<S>(
    comm: &MpiCollective,
    reps: usize,
    mut setup: impl FnMut() -> S,
    mut f: impl FnMut(S) -> Result<(), Error>,
) -> Result<Timing, Error> {
    let mut times = Vec::with_capacity(reps);
    for i in 0..reps + 5 {
        let input = setup();
        comm.barrier()?;
        let t0 = comm.time();
        f(input)?;
        let t = comm.time() - t0;
        if i >= 5 {
            times.push(t);
        }
    }
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(Timing {
        median: median(times),
        min,
    })
}

fn fmt_time(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else {
        format!("{:.2} ms", s * 1e3)
    }
}

fn step_times() -> Result<(), Error> {
    let mut rng = StdRng::seed_from_u64(1);
    // W2: batch 32, Adam lr 1e-3
    let net = w2_model();
    let mut opt = Adam::new(
        net.parameters(),
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    );
    let x = Tensor::<f32>::randn(&[32, 784], &mut rng);
    let y: Vec<usize> = (0..32).map(|_| rng.random_range(0..10)).collect();
    let mut times = Vec::new();
    for i in 0..40 {
        let t0 = Instant::now();
        let loss = cross_entropy(&net.forward(&x), &y)?;
        opt.step(&loss.backward()?)?;
        if i >= 10 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    println!("W2 step (batch 32, Adam): {}", fmt_time(median(times)));
    // the tiny GPT: 128 windows of 12 tokens, AdamW
    let gpt: Gpt = Gpt::new(tiny_gpt_config(), &mut rng);
    let mut opt = AdamW::new(
        gpt.parameters(),
        AdamWConfig {
            lr: 1e-3,
            ..Default::default()
        },
    );
    let ids: Vec<usize> = (0..128 * 12).map(|_| rng.random_range(0..12)).collect();
    let targets: Vec<usize> = (0..128 * 12).map(|_| rng.random_range(0..12)).collect();
    let mut times = Vec::new();
    for i in 0..35 {
        let t0 = Instant::now();
        let loss = gpt.loss(&ids, &targets, 128);
        let mut grads = loss.backward()?;
        grads.clip_norm(1.0);
        opt.step(&grads)?;
        if i >= 5 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    println!(
        "tiny GPT step (128 × 12 tokens, AdamW): {}",
        fmt_time(median(times))
    );
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .map_or(50, |v| v.parse().expect("--reps N"));
    let comm = MpiCollective::init()?;
    let (rank, world) = (comm.rank(), comm.world_size());
    if args.iter().any(|a| a == "--step-times") {
        if world == 1 {
            step_times()?;
        } else if rank == 0 {
            println!("--step-times: run it as one process (without mpirun), on an idle machine");
        }
        return Ok(());
    }
    let say = |s: String| {
        if rank == 0 {
            println!("{s}");
        }
    };
    let w2 = w2_model();
    let tiny: Gpt = Gpt::new(tiny_gpt_config(), &mut StdRng::seed_from_u64(0));
    let gpt: Gpt = Gpt::new(GptConfig::default(), &mut StdRng::seed_from_u64(0));
    let count = |ps: Vec<Tensor>| ps.iter().map(Tensor::numel).sum::<usize>();
    say(format!(
        "{world} ranks on {}; median (minimum) of {reps} runs; bus bandwidth = 2(N-1)/N × bytes / median time\n",
        comm.processor_name()
    ));
    say("| gradients | f32 elements | MB | fixed-order all-reduce | bus GB/s | MPI_Allreduce | DataParallel::all_reduce_gradients |".into());
    say("|---|---|---|---|---|---|---|".into());
    let models: [(&str, Named); 3] = [
        ("W2 MLP 784-256-256-10", w2.named_parameters()),
        (
            "tiny_gpt default (2 layers, width 128, context 12)",
            tiny.named_parameters(),
        ),
        (
            "GptConfig::default() (4 layers, width 128, context 64)",
            gpt.named_parameters(),
        ),
    ];
    let mut rows: Vec<(String, usize, Option<Named>)> = models
        .into_iter()
        .map(|(name, named)| {
            let n = count(named.iter().map(|(_, t)| t.clone()).collect());
            (name.to_string(), n, Some(named))
        })
        .collect();
    for n in [1usize << 10, 1 << 14, 1 << 18, 1 << 20, 1 << 22, 1 << 24] {
        rows.push((format!("{} KiB", n * 4 / 1024), n, None));
    }
    for (name, n, named) in rows {
        let mut buf = vec![1.0f32; n];
        let fixed = time_it(&comm, reps, || comm.all_reduce_sum_f32(&mut buf))?;
        let native = time_it(&comm, reps, || comm.native_all_reduce_sum_f32(&mut buf))?;
        let dp_time = match named {
            Some(named) => {
                let dp = DataParallel::new(&comm, named.clone())?;
                // gradients of the model's shape (values do not matter for the time)
                let mut rng = StdRng::seed_from_u64(rank as u64);
                let grads: Vec<(Tensor, Tensor)> = named
                    .iter()
                    .map(|(_, p)| (p.clone(), Tensor::randn(p.shape(), &mut rng)))
                    .collect();
                let t = time_with_setup(
                    &comm,
                    reps,
                    || {
                        let mut g = Gradients::new();
                        for (p, v) in &grads {
                            g.insert(p, v.clone()); // a copy: backward's fresh gradients
                        }
                        g
                    },
                    |g| dp.all_reduce_gradients(g).map(drop),
                )?;
                t.to_string()
            }
            None => "–".to_string(),
        };
        let bytes = (n * 4) as f64;
        let bus = 2.0 * (world as f64 - 1.0) / world as f64 * bytes / fixed.median / 1e9;
        say(format!(
            "| {name} | {n} | {:.2} | {fixed} | {bus:.2} | {native} | {dp_time} |",
            bytes / 1e6,
        ));
    }
    Ok(())
}
