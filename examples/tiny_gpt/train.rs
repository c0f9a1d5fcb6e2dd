//! The run: data, model, optimizer, the training loop with its evaluations and
//! checkpoints, and the result (final loss, accuracy, sample, files).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferrograd::io::Checkpoint;
use ferrograd::nn::{Activation, Gpt, GptConfig, Positions, Sampling};
use ferrograd::optim::lr::{LrSchedule, Scheduler};
use ferrograd::optim::{AdamW, AdamWConfig, Optimizer, ParamGroup};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::Error;
use indicatif::{ProgressBar, ProgressStyle};

use super::data::{BatchStream, Data};
use super::eval::{exact_matches, full_loss, greedy_answers, in_eval_mode, sampled_losses};
use super::options::{Options, PositionsKind};
use super::plot::{loss_curve_svg, History};
use super::schedule::WarmupCosine;

/// Prints the run's lines (through the progress bar while there is one) and
/// keeps them, so that a caller can read what was printed.
#[derive(Default)]
pub struct Log {
    pub lines: Vec<String>,
    bar: Option<ProgressBar>,
}

impl Log {
    /// Prints `line` and keeps it (a multi-line text as its lines).
    pub fn say(&mut self, line: impl Into<String>) {
        let line = line.into();
        match &self.bar {
            Some(bar) => bar.println(&line),
            None => println!("{line}"),
        }
        self.lines.extend(line.lines().map(str::to_string));
    }
}

/// The checkpoint's file name in `--out`.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// Tells the sampling stream's seed from the other streams made from `--seed`.
pub const SAMPLE_STREAM: u64 = 0x7361_6d70_0000_0000;
/// The prefix of the run settings in a checkpoint's metadata.
const SETTING: &str = "setting.";

/// What a run measured and wrote.
#[derive(Debug)]
pub struct Summary {
    /// The options the run used (on `--resume`, with the checkpoint's settings).
    pub options: Options,
    /// The trained model.
    pub model: Gpt,
    /// The step the run started from (0, or the checkpoint's).
    pub start_step: usize,
    /// The step it ended at.
    pub end_step: usize,
    /// Every step's batch loss and learning rate, and every evaluation, since
    /// step 0 (a resumed run's history includes the checkpoint's).
    pub history: History,
    /// `final val loss`.
    pub final_val_loss: f64,
    /// On the additions: held-out pairs answered exactly, and how many there are.
    pub exact: Option<(usize, usize)>,
    /// The sampled text (empty with `--sample 0`).
    pub sample: String,
    /// Mean time of a training step (forward, backward, update), evaluations
    /// and checkpoints left out.
    pub step_time: Duration,
    /// Wall time of the run.
    pub wall_time: Duration,
    /// Every line the run printed.
    pub printed: Vec<String>,
    /// The checkpoint, the SVG loss curve and the CSV.
    pub checkpoint: PathBuf,
    pub curve: PathBuf,
    pub csv: PathBuf,
}

/// The model of a run's settings, its weights drawn from `--seed`.
pub fn build_model(o: &Options, vocab: usize) -> Gpt {
    let cfg = GptConfig {
        vocab,
        context: o.context,
        d_model: o.width,
        n_head: o.heads,
        n_layer: o.layers,
        dropout: o.dropout,
        bias: o.bias,
        tie_weights: o.tied,
        positions: match o.positions {
            PositionsKind::Learned => Positions::Learned,
            PositionsKind::Sinusoidal => Positions::Sinusoidal,
        },
        activation: Activation::GeluErf,
    };
    Gpt::new(cfg, &mut StdRng::seed_from_u64(o.seed))
}

/// AdamW over the model's parameters: the ones with at least 2 dimensions
/// (embeddings and linear weights) decay, the biases and norms do not.
pub fn build_optimizer(o: &Options, model: &Gpt) -> AdamW {
    let (decay, no_decay): (Vec<_>, Vec<_>) = model
        .named_parameters()
        .into_iter()
        .partition(|(_, p)| p.ndim() >= 2);
    let cfg = AdamWConfig {
        lr: o.lr as f32,
        beta1: 0.9,
        beta2: o.beta2 as f32,
        weight_decay: o.weight_decay as f32,
        ..Default::default()
    };
    let mut groups = vec![ParamGroup::named(decay, cfg)];
    if !no_decay.is_empty() {
        groups.push(ParamGroup::named(
            no_decay,
            AdamWConfig {
                weight_decay: 0.0,
                ..cfg
            },
        ));
    }
    AdamW::with_groups(groups)
}

/// The schedule of a run's settings.
pub fn schedule_of(o: &Options) -> WarmupCosine {
    WarmupCosine {
        kind: o.schedule,
        warmup: o.warmup,
        steps: o.steps,
    }
}

fn format_err(msg: String) -> Error {
    Error::Format(msg)
}

/// Reads the checkpoint of `--resume`, and the options with its run settings.
fn load_checkpoint(o: &Options) -> Result<(Checkpoint, Options), Error> {
    let path = o.out.join(CHECKPOINT);
    let ck = Checkpoint::<f32>::load(&path).map_err(|e| {
        format_err(format!(
            "--resume: cannot read the checkpoint {} ({e})",
            path.display()
        ))
    })?;
    let saved = ck
        .meta_values()
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(SETTING).map(|k| (k.to_string(), v.clone())))
        .collect();
    let o = o.with_run_settings(&saved).map_err(format_err)?;
    Ok((ck, o))
}

/// Sets the number of threads the kernels run on, this one included (0: one
/// per core), once per process.
fn set_threads(n: usize) {
    if let Err(e) = ferrograd::set_num_threads(n) {
        if n != 0 && ferrograd::num_threads() != n {
            eprintln!(
                "note: --threads {n} not applied ({e}); running on {} threads",
                ferrograd::num_threads()
            );
        }
    }
}

/// Everything a checkpoint holds, saved to `path`.
#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    path: &Path,
    step: usize,
    o: &Options,
    data: &Data,
    model: &Gpt,
    opt: &AdamW,
    sched: &Scheduler<f32, WarmupCosine>,
    stream: &BatchStream,
    history: &History,
) -> Result<(), Error> {
    let mut ck = Checkpoint::new(step as u64)
        .model(model)
        .optimizer(opt)
        .scheduler(sched)
        .rng("data", stream.state)
        .meta("tokenizer", data.tokenizer.to_text())
        .meta("history", history.to_text());
    for (k, v) in o.run_settings() {
        ck = ck.meta(format!("{SETTING}{k}"), v);
    }
    ck.save(path)
}

/// Runs the whole story: data, model, training, evaluation, sample, files.
pub fn run(asked: &Options) -> Result<Summary, Error> {
    let wall = Instant::now();
    set_threads(asked.threads.unwrap_or(0));
    let (resume, o) = if asked.resume {
        let (ck, o) = load_checkpoint(asked)?;
        (Some(ck), o)
    } else {
        (None, asked.clone())
    };

    let mut log = Log::default();

    // 1. the data -----------------------------------------------------------
    let data = Data::load(
        &o,
        resume.as_ref().and_then(|ck| ck.meta_value("tokenizer")),
    )?;
    log.say(format!("data:      {}", data.description));

    // 2. the model ----------------------------------------------------------
    let mut model = build_model(&o, data.tokenizer.vocab_size());
    let n_params: usize = model.parameters().iter().map(|p| p.numel()).sum();
    log.say(format!(
        "model:     GPT, {} layers, {} heads, width {}, context {}, {} positions, {}, {}; \
         {n_params} parameters",
        o.layers,
        o.heads,
        o.width,
        o.context,
        o.positions,
        if o.tied {
            "tied embeddings"
        } else {
            "untied output layer"
        },
        if o.bias { "biases" } else { "no biases" },
    ));
    log.say(format!(
        "training:  {} steps of {} windows of {} tokens; AdamW lr {} ({} schedule, {} warm-up \
         steps), beta2 {}, weight decay {}, clip {}, dropout {}, seed {}, {} threads",
        o.steps,
        o.batch,
        o.context,
        o.lr,
        o.schedule,
        o.warmup,
        o.beta2,
        o.weight_decay,
        o.clip,
        o.dropout,
        o.seed,
        ferrograd::num_threads(),
    ));

    // 3. training -----------------------------------------------------------
    let mut opt = build_optimizer(&o, &model);
    let schedule = schedule_of(&o);
    let mut sched = Scheduler::new(&mut opt, schedule);
    let mut stream = BatchStream::new(o.seed);
    let mut history = History::default();
    let mut start_step = 0;
    if let Some(ck) = &resume {
        ck.restore_model(&model)?;
        ck.restore_optimizer(&mut opt)?;
        ck.restore_scheduler(&mut sched, &mut opt)?;
        stream.state = ck.rng_state("data")?;
        history = ck
            .meta_value("history")
            .and_then(History::from_text)
            .ok_or_else(|| format_err("the checkpoint has no readable history".into()))?;
        start_step = ck.step() as usize;
        // the rate of the next step, by this run's schedule (--steps may differ)
        let base = sched.base_lrs().to_vec();
        let lrs: Vec<f32> = base.iter().map(|&b| schedule.lr(start_step, b)).collect();
        opt.set_group_lrs(&lrs);
        log.say(format!(
            "resumed:   from {} at step {start_step}",
            o.out.join(CHECKPOINT).display()
        ));
    }
    std::fs::create_dir_all(&o.out)?;
    let checkpoint = o.out.join(CHECKPOINT);
    let end = o
        .stop_after
        .map_or(o.steps, |s| s.min(o.steps))
        .max(start_step);
    let tokens_per_step = o.batch * o.context;

    let bar = (o.progress && end > start_step).then(|| {
        let bar = ProgressBar::new((end - start_step) as u64);
        bar.set_style(
            ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg} {elapsed}<{eta}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar
    });
    log.bar = bar;

    let mut step_time = Duration::ZERO;
    let mut last_update = Instant::now();
    for it in start_step..end {
        let t0 = Instant::now();
        let starts = stream.next(&data.train, o.batch, o.context);
        let loss = data.train.loss(&model, &starts, o.context);
        let mut grads = loss.backward()?;
        if o.clip > 0.0 {
            grads.clip_norm(o.clip as f32);
        }
        let lr = opt.lr();
        opt.step(&grads)?;
        sched.step(&mut opt);
        let loss = loss.item();
        step_time += t0.elapsed();
        history.batch_losses.push(loss);
        history.lrs.push(lr);
        if !loss.is_finite() {
            return Err(format_err(format!(
                "step {}: the loss is {loss}; try a lower --lr",
                it + 1
            )));
        }

        let done = it + 1;
        if let Some(bar) = &log.bar {
            bar.inc(1);
            if last_update.elapsed() > Duration::from_millis(200) || done == end {
                last_update = Instant::now();
                let rate = (done - start_step) as f64 * tokens_per_step as f64
                    / step_time.as_secs_f64().max(1e-9);
                bar.set_message(format!("loss {loss:.4}  {:.1}k tok/s", rate / 1e3));
            }
        }
        if o.eval_every > 0 && (done % o.eval_every == 0 || done == o.steps) {
            let (t, v) = in_eval_mode(&mut model, |m| {
                sampled_losses(
                    m,
                    &data.train,
                    &data.val,
                    o.seed,
                    done,
                    (o.batch, o.eval_batches, o.context),
                )
            });
            history.evals.push((done, t, v));
            log.say(format!("step {done}  train loss {t:.4}  val loss {v:.4}"));
            if let Some(adds) = &data.additions {
                let n = adds.held_out.len().min(200);
                let pairs = &adds.held_out[..n];
                let answers = in_eval_mode(&mut model, |m| {
                    greedy_answers(m, &data.tokenizer, pairs, o.context)
                })?;
                let right = exact_matches(pairs, &answers);
                log.say(format!(
                    "          exact match on the first {n} held-out pairs: {:.1}%",
                    100.0 * right as f64 / n as f64
                ));
            }
        }
        if o.checkpoint_every > 0 && done % o.checkpoint_every == 0 && done < end {
            save_checkpoint(
                &checkpoint,
                done,
                &o,
                &data,
                &model,
                &opt,
                &sched,
                &stream,
                &history,
            )?;
        }
    }
    if let Some(bar) = log.bar.take() {
        bar.finish_and_clear();
    }
    let trained = end - start_step;
    if trained > 0 {
        save_checkpoint(
            &checkpoint,
            end,
            &o,
            &data,
            &model,
            &opt,
            &sched,
            &stream,
            &history,
        )?;
    }
    let mean_step = step_time.checked_div(trained as u32).unwrap_or_default();
    if trained > 0 {
        log.say(format!(
            "step time {:.2} ms  ({:.1}k tokens/s, {trained} steps in {:.1} s)",
            mean_step.as_secs_f64() * 1e3,
            trained as f64 * tokens_per_step as f64 / step_time.as_secs_f64().max(1e-9) / 1e3,
            step_time.as_secs_f64()
        ));
    }

    // 4. the result ---------------------------------------------------------
    let final_val_loss = in_eval_mode(&mut model, |m| full_loss(m, &data.val, o.context));
    log.say(format!("final val loss {final_val_loss:.4}"));

    let mut exact = None;
    if let Some(adds) = &data.additions {
        let answers = in_eval_mode(&mut model, |m| {
            greedy_answers(m, &data.tokenizer, &adds.held_out, o.context)
        })?;
        let right = exact_matches(&adds.held_out, &answers);
        let n = adds.held_out.len();
        exact = Some((right, n));
        log.say(format!(
            "held-out exact match {:.1}%  ({right} of {n} pairs answered exactly by greedy decoding)",
            100.0 * right as f64 / n as f64
        ));
        for (p, a) in adds.held_out.iter().zip(&answers).take(5) {
            let read =
                super::additions::read_answer(a).map_or_else(|| "?".to_string(), |v| v.to_string());
            log.say(format!(
                "   {}{a}  (reads {read}; {} + {} = {}){}",
                p.prompt(),
                p.a,
                p.b,
                p.a + p.b,
                if *a == p.answer() { "" } else { "  wrong" }
            ));
        }
    }

    let sample = if o.sample > 0 {
        let text = sample_text(&o, &data, &mut model)?;
        log.say(format!(
            "sample ({} tokens{}, temperature {}{}):",
            o.sample,
            if data.additions.is_some() && o.prompt.is_none() {
                " after held-out prompts"
            } else {
                ""
            },
            o.temperature,
            o.top_k.map_or(String::new(), |k| format!(", top-k {k}"))
        ));
        log.say(text.clone());
        if data.additions.is_some() {
            let (right, formed, lines) = super::additions::check_sample(&text);
            log.say(format!(
                "({lines} complete lines sampled: {formed} of the form a+b=c, {right} of them right)"
            ));
        }
        text
    } else {
        String::new()
    };

    let csv = o.out.join("losses.csv");
    std::fs::write(&csv, history.csv())?;
    let curve = o.out.join("loss_curve.svg");
    let window = (history.batch_losses.len() / 200).max(1);
    let evals = |f: fn(&(usize, f64, f64)) -> f64| {
        history
            .evals
            .iter()
            .map(|e| (e.0 as f64, f(e)))
            .collect::<Vec<_>>()
    };
    let title = format!(
        "tiny_gpt: {} layers, width {}, {}",
        o.layers,
        o.width,
        o.corpus
            .as_ref()
            .map_or("additions".to_string(), |p| p.display().to_string())
    );
    std::fs::write(
        &curve,
        loss_curve_svg(
            &title,
            &[
                (
                    &format!("batch loss (mean of {window} steps)"),
                    "#888",
                    history.smoothed(window),
                ),
                ("train loss", "#1f77b4", evals(|e| e.1)),
                ("val loss", "#d62728", evals(|e| e.2)),
            ],
        ),
    )?;
    log.say(format!(
        "files:     {} (checkpoint), {} (loss curve), {} (losses)",
        checkpoint.display(),
        curve.display(),
        csv.display()
    ));
    let wall_time = wall.elapsed();
    log.say(format!("wall time {:.1} s", wall_time.as_secs_f64()));

    Ok(Summary {
        options: o,
        model,
        start_step,
        end_step: end,
        history,
        final_val_loss,
        exact,
        sample,
        step_time: mean_step,
        wall_time,
        printed: log.lines,
        checkpoint,
        curve,
        csv,
    })
}

/// `--sample` tokens with the temperature and top-k asked for, from the
/// sampling stream of `--seed`: after `--prompt` (default: a newline, or the
/// first token of the held-out text when the vocabulary has no newline); on
/// the additions without `--prompt`, the answers to held-out prompts, 5 tokens
/// (4 digits and the newline) after each `a+b=`, one line per pair.
pub fn sample_text(o: &Options, data: &Data, model: &mut Gpt) -> Result<String, Error> {
    let sampling = Sampling {
        temperature: o.temperature,
        top_k: o.top_k,
    };
    let mut rng = StdRng::seed_from_u64(o.seed ^ SAMPLE_STREAM);
    let tok = &data.tokenizer;
    if let (Some(adds), None) = (&data.additions, &o.prompt) {
        let per_line = super::additions::ANSWER_DIGITS + 1;
        let mut text = String::new();
        for (k, p) in adds.held_out.iter().cycle().enumerate() {
            let n = per_line.min(o.sample - k * per_line);
            let prompt = tok.as_dyn().encode(&p.prompt())?;
            let new = in_eval_mode(model, |m| m.generate(&prompt, n, sampling, &mut rng));
            text.push_str(&p.prompt());
            text.push_str(&tok.decode_lossy(&new));
            if (k + 1) * per_line >= o.sample {
                break;
            }
        }
        return Ok(text);
    }
    let prompt_ids: Vec<usize> = match &o.prompt {
        Some(p) => tok
            .as_dyn()
            .encode(p)
            .map_err(|e| format_err(format!("--prompt: {e}")))?,
        None => match tok.as_dyn().encode("\n") {
            Ok(ids) => ids,
            Err(_) => vec![data.val.tokens[0] as usize],
        },
    };
    if prompt_ids.is_empty() {
        return Err(format_err("--prompt: the prompt has no token".into()));
    }
    let new = in_eval_mode(model, |m| {
        m.generate(&prompt_ids, o.sample, sampling, &mut rng)
    });
    let mut all = prompt_ids;
    all.extend(new);
    Ok(tok.decode_lossy(&all))
}
