//! Evaluation: the next-token loss over random windows or over a whole split,
//! and the exact-match accuracy of greedy answers to held-out additions.

use ferrograd::nn::{Gpt, RngState};
use ferrograd::{no_grad, Error};

use super::additions::{Pair, ANSWER_DIGITS};
use super::data::{Split, Tok, EVAL_STREAM};

/// Runs `f` with the model in evaluation mode (no dropout) and without
/// recording gradients, then puts it back in training mode.
pub fn in_eval_mode<R>(gpt: &mut Gpt, f: impl FnOnce(&Gpt) -> R) -> R {
    gpt.set_training(false);
    let out = {
        let _guard = no_grad();
        f(gpt)
    };
    gpt.set_training(true);
    out
}

/// The mean next-token loss (nats per token counted, see [`Split::loss`]) over
/// the windows starting at `starts`, `chunk` windows per forward pass.
pub fn windows_loss(
    gpt: &Gpt,
    split: &Split,
    starts: &[usize],
    context: usize,
    chunk: usize,
) -> f64 {
    let mut total = 0.0f64;
    for part in starts.chunks(chunk.max(1)) {
        let loss = split.loss(gpt, part, context).item();
        // every window counts as many targets: weigh each chunk's mean by its windows
        total += f64::from(loss) * part.len() as f64;
    }
    total / starts.len().max(1) as f64
}

/// The periodic evaluation after step `step`: the loss over `batches` batches
/// of `batch` random windows of each split, drawn from the evaluation stream's
/// draw number `step` (nothing else in the run draws from it, so training does
/// not depend on when or how often it evaluates). Returns (train, val).
pub fn sampled_losses(
    gpt: &Gpt,
    train: &Split,
    val: &Split,
    seed: u64,
    step: usize,
    (batch, batches, context): (usize, usize, usize),
) -> (f64, f64) {
    let mut rng = RngState::new(seed ^ EVAL_STREAM, step as u64).rng();
    let mut loss = |split: &Split| {
        let mut sum = 0.0;
        for _ in 0..batches {
            let starts = split.random_starts(batch, context, &mut rng);
            sum += windows_loss(gpt, split, &starts, context, batch);
        }
        sum / batches as f64
    };
    let t = loss(train);
    let v = loss(val);
    (t, v)
}

/// `final val loss`: the mean next-token loss over every non-overlapping
/// window of the held-out split ([`Split::tiling_starts`]).
pub fn full_loss(gpt: &Gpt, split: &Split, context: usize) -> f64 {
    let starts = split.tiling_starts(context);
    windows_loss(gpt, split, &starts, context, 128)
}

/// The model's greedy answers to `pairs`: for each, the 4 tokens after the
/// prompt `a+b=`, decoded. Prompts are decoded together, a batch of `chunk` at a
/// time (every prompt has the same length); the context is cropped to the last
/// `context` tokens as [`Gpt::generate`] does.
pub fn greedy_answers(
    gpt: &Gpt,
    tok: &Tok,
    pairs: &[Pair],
    context: usize,
) -> Result<Vec<String>, Error> {
    let mut answers = Vec::with_capacity(pairs.len());
    for part in pairs.chunks(250) {
        let mut seqs: Vec<Vec<usize>> = part
            .iter()
            .map(|p| tok.as_dyn().encode(&p.prompt()))
            .collect::<Result<_, _>>()?;
        for _ in 0..ANSWER_DIGITS {
            let len = seqs[0].len();
            let t = len.min(context);
            let ids: Vec<usize> = seqs
                .iter()
                .flat_map(|s| s[len - t..].iter().copied())
                .collect();
            let logits = gpt.forward_ids(&ids, seqs.len());
            let vocab = *logits.shape().last().expect("logits [batch, t, vocab]");
            let values = logits.to_vec();
            for (b, seq) in seqs.iter_mut().enumerate() {
                let row = &values[(b * t + t - 1) * vocab..(b * t + t) * vocab];
                // argmax, the first of equal maxima
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = i;
                    }
                }
                seq.push(best);
            }
        }
        for seq in &seqs {
            answers.push(tok.decode_lossy(&seq[seq.len() - ANSWER_DIGITS..]));
        }
    }
    Ok(answers)
}

/// How many of `answers` are exactly the answers of `pairs`.
pub fn exact_matches(pairs: &[Pair], answers: &[String]) -> usize {
    pairs
        .iter()
        .zip(answers)
        .filter(|(p, a)| p.answer() == **a)
        .count()
}
