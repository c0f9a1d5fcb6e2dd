//! The tiny GPT of `examples/tiny_gpt`, data-parallel: every rank holds a
//! replica, takes its part of every global batch of windows, and the gradients
//! are averaged across the ranks ([`DataParallel`]) before the gradient
//! clipping and the AdamW step, so the run follows the single-process one with
//! the same global batch (to rounding).
//!
//! By default the ranks are threads of this one process (`--ranks N`, default
//! 2; `--ranks 1` is the single-process reference). Built with `--features mpi`
//! and started by `mpirun`, the ranks are MPI processes:
//!
//! ```sh
//! cargo run --release --example distributed_gpt                   # 2 threads
//! cargo run --release --example distributed_gpt -- --ranks 1      # the reference
//! cargo build --release --features mpi --example distributed_gpt
//! mpirun -np 2 target/release/examples/distributed_gpt
//! ```
//!
//! The options after `--` are `tiny_gpt`'s that concern training (`--steps`,
//! `--batch` — the global batch, split across the ranks —, `--lr`, `--seed`,
//! `--layers`, `--width`, …; dropout must stay 0 for the runs to agree) and
//! `--ranks N`. The default is the additions corpus with 600 steps; rank 0
//! prints the loss every 50 steps, then the held-out exact match.

use std::process::ExitCode;

use ferrograd::data::shard;
use ferrograd::distributed::{launch, local, Collective, CollectiveExt, DataParallel};
use ferrograd::optim::lr::Scheduler;
use ferrograd::optim::Optimizer;
use ferrograd::Error;

#[allow(dead_code, unused_imports)]
#[path = "tiny_gpt/main.rs"]
mod tiny_gpt;

pub use tiny_gpt::options as tiny_gpt_options;
use tiny_gpt::{
    build_model, build_optimizer, exact_matches, full_loss, greedy_answers, in_eval_mode,
    schedule_of, BatchStream, Data, Options,
};

/// What one rank measured.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The mean training loss of every step's global batch, the same on every rank.
    pub losses: Vec<f32>,
    /// The validation loss at the end.
    pub val_loss: f64,
    /// Held-out additions answered exactly, and how many there are.
    pub exact: Option<(usize, usize)>,
    /// The trained parameters, flattened.
    pub parameters: Vec<f32>,
}

/// One rank's run (see the module docs). Rank 0 prints.
pub fn run(comm: &dyn Collective, o: &Options) -> Result<Summary, Error> {
    let (rank, world) = (comm.rank(), comm.world_size());
    let say = |line: String| {
        if rank == 0 {
            println!("{line}");
        }
    };
    if o.dropout != 0.0 {
        return Err(Error::InvalidArgument {
            op: "distributed_gpt",
            msg: "dropout draws different masks on each rank; use --dropout 0".into(),
        });
    }
    if !o.batch.is_multiple_of(world) {
        return Err(Error::InvalidArgument {
            op: "distributed_gpt",
            msg: format!(
                "the global batch ({}) must split evenly over the {world} ranks, so that the \
                 mean of their mean losses is the batch's mean loss",
                o.batch
            ),
        });
    }
    let data = Data::load(o, None)?;
    let mut model = build_model(o, data.tokenizer.vocab_size());
    // rank 0's initial weights everywhere, and a check that all replicas agree
    let dp = DataParallel::from_module(comm, &model)?;
    let mut opt = build_optimizer(o, &model);
    let mut sched = Scheduler::new(&mut opt, schedule_of(o));
    let mut stream = BatchStream::new(o.seed);
    say(format!(
        "{}; {world} rank{}, global batch {} windows of {} tokens ({} per rank), {} steps, {} bucket{}",
        data.description,
        if world == 1 { "" } else { "s" },
        o.batch,
        o.context,
        o.batch.div_ceil(world),
        o.steps,
        dp.num_buckets(),
        if dp.num_buckets() == 1 { "" } else { "s" },
    ));
    let mut losses = Vec::with_capacity(o.steps);
    for step in 1..=o.steps {
        // every rank draws the same global batch, and takes its part
        let starts = stream.next(&data.train, o.batch, o.context);
        let mine = shard(&starts, rank, world);
        let loss = data.train.loss(&model, mine, o.context);
        let grads = loss.backward()?;
        let mut grads = dp.all_reduce_gradients(grads)?;
        if o.clip > 0.0 {
            grads.clip_norm(o.clip as f32); // on the averaged gradient, as one process would
        }
        opt.step(&grads)?;
        sched.step(&mut opt);
        let mut mean = [loss.item()];
        comm.all_reduce_mean(&mut mean)?;
        losses.push(mean[0]);
        if step % 50 == 0 || step == o.steps {
            say(format!("step {step:>5}/{}   loss {:.4}", o.steps, mean[0]));
        }
    }
    let val_loss = in_eval_mode(&mut model, |m| full_loss(m, &data.val, o.context));
    say(format!("final val loss {val_loss:.4}"));
    let mut exact = None;
    if let Some(adds) = &data.additions {
        let answers = in_eval_mode(&mut model, |m| {
            greedy_answers(m, &data.tokenizer, &adds.held_out, o.context)
        })?;
        let right = exact_matches(&adds.held_out, &answers);
        exact = Some((right, adds.held_out.len()));
        say(format!(
            "held-out exact match {:.1}% ({right} of {})",
            100.0 * right as f64 / adds.held_out.len() as f64,
            adds.held_out.len()
        ));
    }
    let parameters = model.parameters().iter().flat_map(|p| p.to_vec()).collect();
    Ok(Summary {
        losses,
        val_loss,
        exact,
        parameters,
    })
}

/// Splits `--ranks N` from the other arguments, which go to `tiny_gpt`'s parser;
/// `Ok(None)` means `--help`.
pub fn parse(args: Vec<String>) -> Result<Option<(Options, usize)>, String> {
    let mut ranks = 2;
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    let mut steps_given = false;
    while let Some(a) = it.next() {
        if a == "--ranks" {
            let v = it.next().ok_or("--ranks needs a value")?;
            ranks = v
                .parse()
                .ok()
                .filter(|&n: &usize| n >= 1)
                .ok_or_else(|| format!("--ranks: expected a number ≥ 1, got '{v}'"))?;
        } else {
            steps_given |= a == "--steps";
            rest.push(a);
        }
    }
    let Some(mut o) = Options::from_args(rest)? else {
        return Ok(None);
    };
    if !steps_given {
        o.steps = 600;
    }
    Ok(Some((o, ranks)))
}

/// Runs `ranks` ranks as threads of this process; every rank's summary.
pub fn run_local(o: &Options, ranks: usize) -> Result<Vec<Summary>, Error> {
    local::spawn(ranks, |comm| run(&comm, o))
        .into_iter()
        .collect()
}

fn main() -> ExitCode {
    let (o, ranks) = match parse(std::env::args().skip(1).collect()) {
        Ok(Some(x)) => x,
        Ok(None) => {
            println!("usage: distributed_gpt [--ranks N] [tiny_gpt's training options]");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // threads of this process, or this process's rank under mpirun (feature mpi)
    match launch(ranks, |comm| run(comm, &o)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
