//! `examples/tiny_gpt/`, its core run as tests: the options, the additions
//! corpus, the data windows and the schedule; a few training steps of a tiny
//! model (its printed lines parsed, its loss finite and falling), and a resume
//! from a checkpoint that continues bit for bit.

#[allow(dead_code, unused_imports)]
#[path = "../examples/tiny_gpt/main.rs"]
mod tiny_gpt;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ferrograd::optim::lr::LrSchedule;
use ferrograd::text::CharTokenizer;

use tiny_gpt::{
    Additions, Data, Options, Pair, PositionsKind, ScheduleKind, Split, TokenizerKind, WarmupCosine,
};

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("ferrograd-tiny-gpt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A model and a run small enough for a debug build: 1 layer of width 16.
fn tiny(out: &Path, extra: &[&str]) -> Options {
    let mut a = args(&[
        "--layers",
        "1",
        "--heads",
        "2",
        "--width",
        "16",
        "--batch",
        "8",
        "--steps",
        "6",
        "--warmup",
        "2",
        "--lr",
        "0.01",
        "--eval-every",
        "3",
        "--eval-batches",
        "2",
        "--holdout",
        "50",
        "--sample",
        "0",
        "--checkpoint-every",
        "0",
        "--quiet",
        "--out",
    ]);
    a.push(out.display().to_string());
    a.extend(args(extra));
    Options::from_args(a)
        .expect("valid options")
        .expect("not --help")
}

// ----- options -----

#[test]
fn every_option_parses() {
    let o = Options::from_args(args(&[
        "--corpus",
        "some.txt",
        "--tokenizer",
        "bpe",
        "--vocab",
        "300",
        "--layers",
        "3",
        "--heads",
        "2",
        "--width=32",
        "--context",
        "16",
        "--batch",
        "5",
        "--lr",
        "0.002",
        "--warmup",
        "7",
        "--steps",
        "11",
        "--dropout",
        "0.1",
        "--eval-every",
        "4",
        "--eval-batches",
        "3",
        "--weight-decay",
        "0.05",
        "--clip",
        "0",
        "--no-bias",
        "--seed",
        "9",
        "--threads",
        "2",
        "--out",
        "o",
        "--resume",
        "--schedule",
        "constant",
        "--beta2",
        "0.95",
        "--positions",
        "sinusoidal",
        "--untied",
        "--sample",
        "12",
        "--temperature",
        "0.5",
        "--top-k",
        "3",
        "--prompt",
        "The ",
        "--checkpoint-every",
        "2",
        "--quiet",
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(o.corpus.as_deref(), Some(Path::new("some.txt")));
    assert_eq!((o.tokenizer, o.vocab), (TokenizerKind::Bpe, 300));
    assert_eq!((o.layers, o.heads, o.width, o.context), (3, 2, 32, 16));
    assert_eq!((o.batch, o.lr, o.warmup, o.steps), (5, 0.002, 7, 11));
    assert_eq!((o.dropout, o.eval_every, o.eval_batches), (0.1, 4, 3));
    assert_eq!(
        (o.weight_decay, o.clip, o.bias, o.seed),
        (0.05, 0.0, false, 9)
    );
    assert_eq!((o.threads, o.out.as_path()), (Some(2), Path::new("o")));
    assert!(o.resume && o.quiet && !o.tied);
    assert_eq!(o.schedule, ScheduleKind::Constant);
    assert_eq!((o.beta2, o.positions), (0.95, PositionsKind::Sinusoidal));
    assert_eq!((o.sample, o.temperature, o.top_k), (12, 0.5, Some(3)));
    assert_eq!((o.prompt.as_deref(), o.checkpoint_every), (Some("The "), 2));

    // defaults: the additions run, and nanoGPT's sizes with --corpus
    let d = Options::from_args(args(&[])).unwrap().unwrap();
    assert_eq!(d.corpus, None);
    assert_eq!(
        (d.tokenizer, d.context, d.schedule),
        (TokenizerKind::Char, 12, ScheduleKind::Cosine)
    );
    assert!(d.bias && d.tied);
    let c = Options::from_args(args(&["--corpus", "x"]))
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.layers, c.heads, c.width, c.context, c.batch),
        (4, 4, 128, 64, 12)
    );
    assert_eq!((c.lr, c.warmup, c.steps, c.beta2), (1e-3, 100, 2000, 0.99));
    // explicit flags win over the corpus defaults, wherever --corpus is
    let c = Options::from_args(args(&["--layers", "1", "--corpus", "x"]))
        .unwrap()
        .unwrap();
    assert_eq!(c.layers, 1);

    assert!(Options::from_args(args(&["--help"])).unwrap().is_none());
    assert!(Options::from_args(args(&["--steps", "3", "-h"]))
        .unwrap()
        .is_none());
}

#[test]
fn bad_options_are_clear_messages() {
    for (bad, message) in [
        (
            &["--layers", "0"][..],
            "--layers: expected a whole number ≥ 1, got '0'",
        ),
        (
            &["--steps", "many"],
            "--steps: expected a whole number, got 'many'",
        ),
        (
            &["--lr", "-1"],
            "--lr: expected a positive number, got '-1'",
        ),
        (
            &["--lr", "nan"],
            "--lr: expected a positive number, got 'nan'",
        ),
        (
            &["--dropout", "1"],
            "--dropout: expected a number in [0, 1), got '1'",
        ),
        (
            &["--tokenizer", "word"],
            "--tokenizer: expected char or bpe, got 'word'",
        ),
        (
            &["--schedule", "linear"],
            "--schedule: expected cosine or constant, got 'linear'",
        ),
        (
            &["--positions", "rotary"],
            "--positions: expected learned or sinusoidal, got 'rotary'",
        ),
        (
            &["--vocab", "100"],
            "--vocab: expected a whole number ≥ 256 (the bytes and the merges), got '100'",
        ),
        (&["--batch"], "--batch needs a value"),
        (
            &["--loss", "some"],
            "--loss: expected answers or all, got 'some'",
        ),
        (
            &["--corpus", "x", "--loss", "answers"],
            "--loss answers is for the additions corpus: a text has no answers",
        ),
        (&["--no-bias=yes"], "--no-bias takes no value"),
        (&["--colour", "red"], "unknown option '--colour'"),
        (&["fast"], "unexpected argument 'fast'"),
        (
            &["--width", "30", "--heads", "4"],
            "--width 30 is not a multiple of --heads 4: each head gets width/heads dimensions",
        ),
        (
            &["--tokenizer", "bpe"],
            "--tokenizer bpe needs --corpus: the additions corpus uses one token per character",
        ),
    ] {
        assert_eq!(
            Options::from_args(args(bad)).unwrap_err(),
            message,
            "{bad:?}"
        );
    }
}

// ----- the additions corpus -----

#[test]
fn additions_hold_out_pairs_in_both_orders() {
    let adds = Additions::new(1000);
    assert_eq!(adds.held_out.len(), 1000);
    // all 900 × 900 ordered pairs, less the held-out ones in both orders
    let same = adds.held_out.iter().filter(|p| p.a == p.b).count();
    assert_eq!(adds.train.len(), 900 * 900 - 2 * 1000 + same);
    let train: HashSet<Pair> = adds.train.iter().copied().collect();
    assert_eq!(train.len(), adds.train.len(), "no training pair twice");
    for p in &adds.held_out {
        assert!(!train.contains(p));
        assert!(!train.contains(&Pair { a: p.b, b: p.a }));
        assert!((100..=999).contains(&p.a) && (100..=999).contains(&p.b));
    }
    // both orders are asked
    assert!(adds.held_out.iter().filter(|p| p.a < p.b).count() > 400);
    assert!(adds.held_out.iter().filter(|p| p.a > p.b).count() > 400);
    // deterministic, whatever the seed of the run; the first pairs held out stay held out
    let again = Additions::new(200);
    assert_eq!(again.held_out[..], adds.held_out[..200]);
}

#[test]
fn addition_lines_reverse_the_answer_and_tokenize_as_the_char_tokenizer() {
    let p = Pair { a: 123, b: 456 };
    assert_eq!(p.line(), "123+456=9750\n");
    assert_eq!(Pair { a: 999, b: 999 }.line(), "999+999=8991\n");
    assert_eq!(Pair { a: 100, b: 100 }.answer(), "0020");
    assert_eq!(tiny_gpt::read_answer("9750"), Some(579));
    assert_eq!(tiny_gpt::read_answer("975"), None);
    let tok = CharTokenizer::train(tiny_gpt::ALPHABET);
    for p in [p, Pair { a: 999, b: 999 }, Pair { a: 507, b: 860 }] {
        let mut ids = Vec::new();
        p.push_ids(&mut ids);
        let expected: Vec<u32> = tok
            .encode(&p.line())
            .unwrap()
            .into_iter()
            .map(|i| i as u32)
            .collect();
        assert_eq!(ids, expected);
    }
    let (right, formed, lines) =
        tiny_gpt::check_sample("3=9750\n123+456=9750\n123+456=9751\n12+3=4\n555+1");
    assert_eq!((right, formed, lines), (1, 2, 4));
}

#[test]
fn additions_data_windows_are_whole_lines() {
    let data = Data::additions(100);
    let tok = &data.tokenizer;
    assert_eq!(tok.vocab_size(), 13);
    assert_eq!(data.val.tokens.len(), 100 * 13);
    // the tiling of the held-out split with context 12: every line, once
    let starts = data.val.tiling_starts(12);
    assert_eq!(starts.len(), 100);
    let (inputs, targets) = data.val.windows(&starts[..2], 12);
    let adds = data.additions.as_ref().unwrap();
    let line0 = adds.held_out[0].line();
    assert_eq!(tok.decode_lossy(&inputs[..12]), line0[..12]);
    assert_eq!(tok.decode_lossy(&targets[..12]), line0[1..]);
    assert_eq!(
        tok.decode_lossy(&inputs[12..]),
        adds.held_out[1].line()[..12]
    );
    // the answers' tokens: targets 7 to 11 of each line (the 4 digits and the newline)
    let mut answers = data.val.clone();
    assert_eq!(answers.loss_rows(2, 12), None);
    answers.answers_only = true;
    assert_eq!(
        answers.loss_rows(2, 12),
        Some(vec![7, 8, 9, 10, 11, 19, 20, 21, 22, 23])
    );
    assert_eq!(
        answers.loss_rows(1, 25).unwrap(),
        [7, 8, 9, 10, 11, 20, 21, 22, 23, 24]
    );
    // random windows start at line starts
    let mut stream = tiny_gpt::BatchStream::new(3);
    for s in stream.next(&data.train, 64, 12) {
        assert_eq!(s % 13, 0);
    }
    // a longer context spans lines, still starting at one
    for s in stream.next(&data.train, 64, 30) {
        assert_eq!(s % 13, 0);
        assert!(s + 31 <= data.train.tokens.len());
    }
}

// ----- data windows and the schedule -----

#[test]
fn corpus_splits_by_characters_and_tiles_the_held_out_text() {
    let dir = TempDir::new("corpus-split");
    let path = dir.0.join("text.txt");
    // 20 characters, 2 of them 2 bytes long: 18 for training, 2 held out
    std::fs::write(&path, "héllo wörld, hello!!").unwrap();
    let o = Options::from_args(args(&[
        "--corpus",
        path.to_str().unwrap(),
        "--context",
        "1",
    ]))
    .unwrap()
    .unwrap();
    let data = Data::load(&o, None).unwrap();
    assert_eq!(data.train.tokens.len(), 18);
    assert_eq!(data.val.tokens.len(), 2);
    assert_eq!(
        data.tokenizer.decode_lossy(&[data.val.tokens[0] as usize]),
        "!"
    );
    // vocabulary of the whole file
    assert_eq!(data.tokenizer.vocab_size(), 12);

    let split = Split {
        tokens: (0..10).collect(),
        align: 1,
        answers_only: false,
    };
    // windows i·3 .. i·3 + 4 for (i + 1)·3 + 1 ≤ 10: i = 0, 1, 2
    assert_eq!(split.tiling_starts(3), vec![0, 3, 6]);
    assert_eq!(split.window_starts(3), 7);
    let (inputs, targets) = split.windows(&[6], 3);
    assert_eq!((inputs, targets), (vec![6, 7, 8], vec![7, 8, 9]));
    assert_eq!(split.tiling_starts(9), vec![0]);
    assert_eq!(split.tiling_starts(10), Vec::<usize>::new());

    // too short a held-out split for the context: a clear error
    let o = Options::from_args(args(&[
        "--corpus",
        path.to_str().unwrap(),
        "--context",
        "4",
    ]))
    .unwrap()
    .unwrap();
    let err = Data::load(&o, None).unwrap_err().to_string();
    assert!(
        err.contains("the held-out split has 2 tokens, fewer than a window of --context 4 + 1"),
        "{err}"
    );
}

#[test]
fn schedule_warms_up_then_decays_to_a_tenth_at_the_last_step() {
    let s = WarmupCosine {
        kind: ScheduleKind::Cosine,
        warmup: 10,
        steps: 110,
    };
    let lr = 1e-3;
    assert!((s.at(0, lr) - 1e-4).abs() < 1e-15);
    assert!((s.at(4, lr) - 5e-4).abs() < 1e-15);
    assert_eq!(s.at(9, lr), lr);
    assert_eq!(s.at(10, lr), lr); // r = 0: the peak
                                  // halfway through the decay: the mean of lr and lr/10
    let r = (60.0 - 10.0) / 99.0;
    let expected = 1e-4 + 0.5 * (1.0 + (std::f64::consts::PI * r).cos()) * 9e-4;
    assert_eq!(s.at(60, lr), expected);
    assert!((s.at(109, lr) - 1e-4).abs() < 1e-18); // the last step
    let c = WarmupCosine {
        kind: ScheduleKind::Constant,
        ..s
    };
    assert!((0..110).all(|it| c.at(it, lr) == lr));
    // as an LrSchedule for a Scheduler (f32)
    assert_eq!(s.lr(9, 0.5f32), 0.5);
}

// ----- runs -----

#[test]
fn a_few_steps_on_the_additions_learn_and_resume_bit_for_bit() {
    // 8 steps in one go, with dropout (its masks must resume too)
    let whole_dir = TempDir::new("whole");
    let whole = tiny_gpt::run(&tiny(
        &whole_dir.0,
        &["--steps", "8", "--dropout", "0.1", "--eval-every", "4"],
    ))
    .expect("the run succeeds");
    let losses = &whole.history.batch_losses;
    assert_eq!(losses.len(), 8);
    assert!(losses.iter().all(|l| l.is_finite()));
    // from about ln 13 (a uniform guess over the 13 characters), falling
    assert!((2.0..3.2).contains(&losses[0]), "{losses:?}");
    assert!(losses[7] < losses[0], "{losses:?}");
    assert_eq!(
        whole.history.evals.iter().map(|e| e.0).collect::<Vec<_>>(),
        [4, 8]
    );
    assert!(whole.final_val_loss.is_finite() && whole.final_val_loss < f64::from(losses[0]));
    let (right, n) = whole.exact.unwrap();
    assert!(right <= n && n == 50);

    // 4 steps, as if interrupted; then resumed to 8 in a new run
    let split_dir = TempDir::new("split");
    let first = tiny_gpt::run(&tiny(
        &split_dir.0,
        &[
            "--steps",
            "8",
            "--dropout",
            "0.1",
            "--eval-every",
            "4",
            "--stop-after",
            "4",
        ],
    ))
    .unwrap();
    assert_eq!(first.end_step, 4);
    assert_eq!(first.history.batch_losses[..], losses[..4]);
    // --resume takes the settings from the checkpoint: only --out and the run's own flags
    let resumed = tiny_gpt::run(
        &Options::from_args(args(&[
            "--resume",
            "--quiet",
            "--sample",
            "0",
            "--out",
            split_dir.0.to_str().unwrap(),
        ]))
        .unwrap()
        .unwrap(),
    )
    .unwrap();
    assert_eq!((resumed.start_step, resumed.end_step), (4, 8));
    assert_eq!(resumed.options.width, 16);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&resumed.history.batch_losses),
        bits(losses),
        "the losses after resume"
    );
    assert_eq!(bits(&resumed.history.lrs), bits(&whole.history.lrs));
    assert_eq!(resumed.history.evals, whole.history.evals);
    assert_eq!(
        resumed.final_val_loss.to_bits(),
        whole.final_val_loss.to_bits()
    );
    for ((name, a), (_, b)) in whole
        .model
        .named_parameters()
        .iter()
        .zip(resumed.model.named_parameters())
    {
        assert_eq!(bits(&a.to_vec()), bits(&b.to_vec()), "{name}");
    }
    assert_eq!(
        whole.model.named_rng_states(),
        resumed.model.named_rng_states()
    );

    // a setting that contradicts the checkpoint is an error naming both
    let err = tiny_gpt::run(
        &Options::from_args(args(&[
            "--resume",
            "--width",
            "32",
            "--out",
            split_dir.0.to_str().unwrap(),
        ]))
        .unwrap()
        .unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("trained with --width 16, not --width 32"),
        "{err}"
    );

    // --steps 0 --resume: no training, a sample from the checkpoint
    let sampled = tiny_gpt::run(
        &Options::from_args(args(&[
            "--resume",
            "--steps",
            "0",
            "--quiet",
            "--sample",
            "30",
            "--top-k",
            "3",
            "--out",
            split_dir.0.to_str().unwrap(),
        ]))
        .unwrap()
        .unwrap(),
    )
    .unwrap();
    assert_eq!((sampled.start_step, sampled.end_step), (8, 8));
    assert_eq!(
        sampled.final_val_loss.to_bits(),
        whole.final_val_loss.to_bits()
    );
    // the answers to held-out prompts: 6 prompts of 8 characters, 30 tokens
    assert_eq!(sampled.sample.chars().count(), 6 * 8 + 30);
    assert!(sampled
        .sample
        .starts_with(&Additions::new(50).held_out[0].prompt()));
    // the files
    let csv = std::fs::read_to_string(&resumed.csv).unwrap();
    assert_eq!(csv.lines().count(), 9);
    assert!(csv.starts_with("step,lr,batch_loss,train_loss,val_loss\n1,"));
    let svg = std::fs::read_to_string(&resumed.curve).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("stroke-width=\"1.5\"").count(), 3);
}

#[test]
fn a_text_corpus_trains_and_prints_the_spec_lines() {
    let dir = TempDir::new("corpus-run");
    let text: String = (0..40)
        .map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog.\n"))
        .collect();
    let path = dir.0.join("text.txt");
    std::fs::write(&path, &text).unwrap();
    let o = Options::from_args(args(&[
        "--corpus",
        path.to_str().unwrap(),
        "--layers",
        "1",
        "--heads",
        "2",
        "--width",
        "16",
        "--context",
        "16",
        "--batch",
        "4",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--eval-batches",
        "1",
        "--sample",
        "20",
        "--prompt",
        "the ",
        "--quiet",
        "--out",
        dir.0.to_str().unwrap(),
    ]))
    .unwrap()
    .unwrap();
    let s = tiny_gpt::run(&o).expect("the run succeeds");
    let evals: Vec<(usize, f64, f64)> = s
        .printed
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split("  ").collect();
            match f[..] {
                [step, train, val] => Some((
                    step.strip_prefix("step ")?.parse().ok()?,
                    train.strip_prefix("train loss ")?.parse().ok()?,
                    val.strip_prefix("val loss ")?.parse().ok()?,
                )),
                _ => None,
            }
        })
        .collect();
    let printed = s.printed.join("\n");
    assert_eq!(
        evals.iter().map(|e| e.0).collect::<Vec<_>>(),
        [2, 4],
        "{printed}"
    );
    assert!(evals
        .iter()
        .all(|e| e.1.is_finite() && e.2.is_finite() && e.1 > 0.0));
    // printed to 4 decimals, as kept
    assert_eq!(
        format!("{:.4}", s.history.evals[1].2),
        format!("{:.4}", evals[1].2)
    );
    let last: Vec<&String> = s
        .printed
        .iter()
        .filter(|l| l.starts_with("final val loss "))
        .collect();
    assert_eq!(last.len(), 1, "{printed}");
    let final_loss: f64 = last[0]["final val loss ".len()..].parse().unwrap();
    assert_eq!(
        format!("{final_loss:.4}"),
        format!("{:.4}", s.final_val_loss)
    );
    // near ln 40 = 3.7 (40 characters) after 4 steps of a tiny model
    assert!((2.0..4.0).contains(&final_loss), "{final_loss}");
    assert!(s.exact.is_none());
    assert!(
        s.sample.starts_with("the ") && s.sample.chars().count() == 24,
        "{:?}",
        s.sample
    );
    assert!(dir.0.join("checkpoint.safetensors").exists());
    assert!(s.curve.exists() && s.csv.exists());
}

#[test]
fn help_names_every_option_of_the_issue() {
    for flag in [
        "--corpus FILE",
        "--tokenizer char|bpe",
        "--vocab N",
        "--layers N",
        "--heads N",
        "--width N",
        "--context N",
        "--batch N",
        "--lr X",
        "--warmup N",
        "--steps N",
        "--dropout X",
        "--eval-every N",
        "--eval-batches N",
        "--weight-decay X",
        "--clip X",
        "--no-bias",
        "--seed N",
        "--threads N",
        "--out DIR",
        "--resume",
        "--schedule cosine|constant",
        "--beta2 X",
        "--positions learned|sinusoidal",
        "--untied",
        "--sample N",
        "--temperature X",
        "--top-k K",
        "--prompt S",
        "--checkpoint-every N",
        "REVERSED",
    ] {
        assert!(tiny_gpt::USAGE.contains(flag), "{flag}");
    }
}
