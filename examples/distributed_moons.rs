//! Two moons, data-parallel: the model of `examples/moons.rs` trained by several
//! ranks, each on its part of every global batch, with the gradients averaged
//! across the ranks before each step ([`DataParallel`]).
//!
//! By default the ranks are threads of this one process (`--ranks N`, default 2;
//! `--ranks 1` is the plain single-process run, the same numbers as
//! `examples/moons.rs`). Built with `--features mpi` and started by `mpirun`,
//! the ranks are MPI processes, on this machine or several:
//!
//! ```sh
//! cargo run --release --example distributed_moons                  # 2 threads
//! cargo run --release --example distributed_moons -- --ranks 1     # one rank: the reference
//! cargo build --release --features mpi --example distributed_moons
//! mpirun -np 2 target/release/examples/distributed_moons           # 2 processes
//! ```
//!
//! Every run with the same global batch prints the same loss curve (to the
//! digits printed: the ranks' shard gradients, averaged, equal the whole batch's
//! gradient to rounding), whatever the number of ranks. Rank 0 prints, and
//! writes the trained weights with a rank-0 checkpoint. Options after `--`: those
//! of `moons` (`--epochs N`, `--lr X`, `--seed N`, `--samples N`, `--noise X`,
//! `--hidden N`, `--batch-size N`, `--out DIR`) and `--ranks N`.

use std::path::PathBuf;
use std::process::ExitCode;

use ferrograd::data::{gather_rows, Batches};
use ferrograd::distributed::{
    launch, local, save_checkpoint, Collective, CollectiveExt, DataParallel,
};
use ferrograd::io::Checkpoint;
use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::optim::{Optimizer, Sgd, SgdConfig};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{loss, no_grad, Error, Gradients, Tensor};

#[allow(dead_code)]
#[path = "moons.rs"]
mod moons;

/// The options of `moons`, and the number of in-process ranks.
#[derive(Clone, Debug)]
pub struct Options {
    /// The model, the data and the training (as `examples/moons.rs`).
    pub moons: moons::Options,
    /// Ranks as threads of this process (ignored under `mpirun`).
    pub ranks: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            moons: moons::Options {
                out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/distributed_moons"),
                ..Default::default()
            },
            ranks: 2,
        }
    }
}

/// The command-line help.
pub const USAGE: &str = "\
usage: cargo run --release --example distributed_moons -- [options]
       mpirun -np N target/release/examples/distributed_moons [options]   (built with --features mpi)

  --ranks N        ranks as threads of this process (default 2; ignored under mpirun)
  --epochs N       passes over the training data (default 100)
  --lr X           learning rate of SGD (default 0.3)
  --seed N         seed of the data, the initial weights and the batch order (default 1)
  --samples N      points generated, a quarter of them for testing (default 1000)
  --noise X        standard deviation of the noise on each coordinate (default 0.1)
  --hidden N       units in each of the two hidden layers (default 16)
  --batch-size N   points per global mini-batch, split across the ranks (default 32)
  --out DIR        where rank 0 writes the weights (default target/distributed_moons)
  --help           this text";

impl Options {
    /// Parses the arguments (without the program name); `Ok(None)` means `--help`.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
        let mut ranks = 2;
        let mut rest = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let value = match arg.as_str() {
                "--ranks" => args.next(),
                a if a.starts_with("--ranks=") => Some(a["--ranks=".len()..].to_string()),
                _ => {
                    rest.push(arg);
                    continue;
                }
            };
            let value = value.ok_or("--ranks needs a value")?;
            ranks = value
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| format!("--ranks: expected a number ≥ 1, got '{value}'"))?;
        }
        let Some(mut m) = moons::Options::from_args(rest)? else {
            return Ok(None);
        };
        if m.out == moons::Options::default().out {
            // no --out given: a directory of this example's own
            m.out = Options::default().moons.out;
        }
        Ok(Some(Options { moons: m, ranks }))
    }
}

/// What one rank measured.
#[derive(Clone, Debug)]
pub struct Summary {
    /// This rank and the number of ranks.
    pub rank: usize,
    /// The number of ranks.
    pub world: usize,
    /// The average training loss over the whole training split, each epoch
    /// (`[0]`: before training), the same on every rank.
    pub epoch_losses: Vec<f32>,
    /// The test accuracy at the end, in [0, 1].
    pub test_accuracy: f32,
    /// The trained parameters, flattened.
    pub parameters: Vec<f32>,
    /// The file rank 0 wrote.
    pub weights: PathBuf,
}

/// One rank's run: every rank makes the same data and model (the model is then
/// replaced by rank 0's anyway), takes its part of every global batch, and
/// averages the gradients with the other ranks. Rank 0 prints.
pub fn run(comm: &dyn Collective, o: &moons::Options) -> Result<Summary, Error> {
    let (rank, world) = (comm.rank(), comm.world_size());
    let say = |line: String| {
        if rank == 0 {
            println!("{line}");
        }
    };
    let mut rng = StdRng::seed_from_u64(o.seed);
    let (mut points, mut labels) = moons::two_moons(o.samples, o.noise, &mut rng);
    let n_test = o.samples / 4;
    let test_points = points.split_off(o.samples - n_test);
    let test_labels = labels.split_off(o.samples - n_test);
    let to_tensor =
        |p: &[[f32; 2]]| Tensor::from_vec(p.iter().flatten().copied().collect(), &[p.len(), 2]);
    let (x, x_test) = (to_tensor(&points)?, to_tensor(&test_points)?);
    let net: Mlp = Mlp::new(&[2, o.hidden, o.hidden, 2], Activation::Tanh, &mut rng);
    let dp = DataParallel::new(comm, net.named_parameters())?;
    let mut opt = Sgd::new_named(
        net.named_parameters(),
        SgdConfig {
            lr: o.lr,
            ..Default::default()
        },
    );
    say(format!(
        "Two moons on {world} rank{}: global batches of {}, each rank takes {}; SGD, learning rate {}",
        if world == 1 { "" } else { "s" },
        o.batch_size,
        if world == 1 {
            "all of it".to_string()
        } else {
            format!("about {}", o.batch_size.div_ceil(world))
        },
        o.lr
    ));

    let n_train = points.len();
    let initial = {
        let _guard = no_grad();
        loss::cross_entropy(&net.forward(&x), &labels)?.item()
    };
    say(format!(
        "epoch {:>4}/{}   average loss {initial:.4}   (the random weights)",
        0, o.epochs
    ));
    let mut epoch_losses = vec![initial];
    let report_every = o.epochs.div_ceil(10).max(1);
    let mut shuffle_rng = StdRng::seed_from_u64(o.seed.wrapping_add(1));
    for epoch in 1..=o.epochs {
        // every rank draws the same shuffle
        let batches = Batches::new(n_train, o.batch_size).shuffle(&mut shuffle_rng);
        let mut total = [0.0f64];
        for (batch, part) in batches.iter().zip(batches.shard(rank, world)) {
            let grads = if part.is_empty() {
                Gradients::new() // more ranks than samples in this batch
            } else {
                let targets: Vec<usize> = part.iter().map(|&i| labels[i]).collect();
                let l = loss::cross_entropy(&net.forward(&gather_rows(&x, part)), &targets)?;
                total[0] += f64::from(l.item()) * part.len() as f64;
                // scaled so that the ranks' mean is the batch's mean loss
                (l * (part.len() as f32 * world as f32 / batch.len() as f32)).backward()?
            };
            opt.step(&dp.all_reduce_gradients(grads)?)?;
        }
        comm.all_reduce_sum(&mut total)?; // the loss summed over all ranks' samples
        let average = (total[0] / n_train as f64) as f32;
        epoch_losses.push(average);
        if epoch % report_every == 0 || epoch == o.epochs {
            say(format!(
                "epoch {epoch:>4}/{}   average loss {average:.4}",
                o.epochs
            ));
        }
    }

    let test_accuracy = moons::accuracy(&net, &x_test, &test_labels);
    say(format!("test accuracy: {:.1}%", 100.0 * test_accuracy));
    let weights = o.out.join("distributed_moons.safetensors");
    if rank == 0 {
        std::fs::create_dir_all(&o.out)?;
    }
    save_checkpoint(comm, &weights, || {
        Checkpoint::new(o.epochs as u64).model(&net)
    })?;
    say(format!(
        "weights (rank 0's checkpoint): {}",
        weights.display()
    ));
    let parameters = net.parameters().iter().flat_map(Tensor::to_vec).collect();
    Ok(Summary {
        rank,
        world,
        epoch_losses,
        test_accuracy,
        parameters,
        weights,
    })
}

/// Runs `o.ranks` ranks as threads of this process.
pub fn run_local(o: &Options) -> Result<Vec<Summary>, Error> {
    local::spawn(o.ranks, |comm| run(&comm, &o.moons))
        .into_iter()
        .collect()
}

fn main() -> ExitCode {
    let options = match Options::from_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // threads of this process, or this process's rank under mpirun (feature mpi)
    match launch(options.ranks, |comm| run(comm, &options.moons)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
