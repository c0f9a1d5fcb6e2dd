//! A tiny GPT, trained from scratch: by default on additions it writes itself,
//! or on any UTF-8 text with `--corpus FILE`.
//!
//! 1. The data: the additions corpus (`123+456=9750`: the sum's digits
//!    reversed, see [`additions`]) with 1000 held-out pairs, or a text split
//!    90/10 by characters; char tokens (or BPE with `--tokenizer bpe`).
//! 2. The model: [`ferrograd::nn::Gpt`], token and position embeddings,
//!    pre-norm transformer blocks, an output layer tied to the token embedding.
//! 3. Training: AdamW (weight decay on the 2-D weights only), linear warm-up
//!    then cosine decay, gradient clipping; batches of random windows; a line
//!    `step N  train loss X  val loss Y` at each evaluation, a progress bar with
//!    the loss and tokens/s, checkpoints every N steps (`--resume` continues
//!    exactly where a checkpoint left off).
//! 4. The result: `final val loss Y` over the whole held-out split; on the
//!    additions, the exact-match accuracy of greedy answers to the held-out
//!    pairs; a sample with temperature and top-k; the loss curve (SVG) and the
//!    losses (CSV) in `--out`.
//!
//! Run it with `cargo run --release --example tiny_gpt`, options after `--`
//! (`--help` lists them).

pub mod additions;
pub mod data;
pub mod eval;
pub mod options;
pub mod plot;
pub mod schedule;
pub mod train;

use std::io::IsTerminal;
use std::process::ExitCode;

pub use additions::*;
pub use data::*;
pub use eval::*;
pub use options::*;
pub use plot::*;
pub use schedule::*;
pub use train::*;

fn main() -> ExitCode {
    let options = match Options::from_args(std::env::args().skip(1)) {
        Ok(Some(o)) => Options {
            progress: std::io::stdout().is_terminal() && !o.quiet,
            ..o
        },
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n(--help lists the options)");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
