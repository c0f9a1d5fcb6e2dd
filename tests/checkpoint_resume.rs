//! Resumable training through `io::Checkpoint` (issue 9).
//!
//! A model with dropout and layer norm, trained on shuffled mini-batches with a
//! warm-up + cosine schedule: for every optimizer, training 2N steps in one go
//! and training N steps, saving a checkpoint, restoring it into freshly built
//! objects (other init seed, other dropout and shuffler seeds) and training N
//! more steps give bit-identical weights and losses. The checkpoint falls in the
//! middle of an epoch. Restoring checks what it restores, with clear errors.

mod common;

use common::TempPath;
use std::ops::Range;

use ferrograd::data::{gather_rows, Batches, Shuffler};
use ferrograd::io::{
    load_safetensors, save_safetensors, save_safetensors_with_metadata, Checkpoint,
};
use ferrograd::nn::{Dropout, LayerNorm, Linear, Module, RngState};
use ferrograd::optim::lr::{CosineAnnealingLr, LinearLr, LrSchedule, Scheduler, SequentialLr};
use ferrograd::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, RmsProp,
    RmsPropConfig, Sgd, SgdConfig,
};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{loss, Element, Tensor};

const SAMPLES: usize = 22;
const BATCH: usize = 4; // 6 batches per epoch, the last of 2
const N: usize = 9; // the checkpoint falls on batch 3 of epoch 1
const IN: usize = 5;
const HIDDEN: usize = 8;
const CLASSES: usize = 3;

#[derive(Module)]
struct Net<T: Element = f32> {
    fc1: Linear<T>,
    ln: LayerNorm<T>,
    drop: Dropout,
    fc2: Linear<T>,
}

impl<T: Element> Module<T> for Net<T> {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        let h = self.ln.forward(&self.fc1.forward(x)).relu();
        self.fc2.forward(&self.drop.forward(&h))
    }
}

impl<T: Element> Net<T> {
    /// Weights drawn from `seed`; the dropout's stream is `seed` too.
    fn new(hidden: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        Net {
            fc1: Linear::new(IN, hidden, true, &mut rng),
            ln: LayerNorm::new(hidden, T::from_f64_lossy(1e-5)),
            drop: Dropout::new(0.2, seed),
            fc2: Linear::new(hidden, CLASSES, true, &mut rng),
        }
    }
}

/// The same parameters as [`Net`], without a dropout.
#[derive(Module)]
struct NetNoDrop<T: Element = f32> {
    fc1: Linear<T>,
    ln: LayerNorm<T>,
    fc2: Linear<T>,
}

impl<T: Element> Module<T> for NetNoDrop<T> {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        self.fc2
            .forward(&self.ln.forward(&self.fc1.forward(x)).relu())
    }
}

/// A fixed synthetic data set: inputs and class labels.
struct Data<T: Element> {
    x: Tensor<T>,
    labels: Vec<usize>,
}

fn data<T: Element>() -> Data<T> {
    let x = Tensor::<T>::randn(&[SAMPLES, IN], &mut StdRng::seed_from_u64(100));
    let v = x.to_vec();
    // the class: which of the first three features is largest
    let labels = (0..SAMPLES)
        .map(|i| {
            let row = &v[i * IN..i * IN + CLASSES];
            (0..CLASSES)
                .max_by(|&a, &b| row[a].partial_cmp(&row[b]).unwrap())
                .unwrap()
        })
        .collect();
    Data { x, labels }
}

fn schedule<T: Element>() -> SequentialLr<T> {
    LinearLr::warmup(T::from_f64_lossy(0.25), 3)
        .then(3, CosineAnnealingLr::new(2 * N, T::from_f64_lossy(0.01)))
}

type Make<T> = fn(Vec<(String, Tensor<T>)>) -> Box<dyn Optimizer<T>>;

/// Everything a training run holds.
struct Run<T: Element> {
    net: Net<T>,
    opt: Box<dyn Optimizer<T>>,
    sched: Scheduler<T, SequentialLr<T>>,
    shuffler: Shuffler,
    /// The epoch underway, when one is.
    epoch: Option<Batches>,
}

impl<T: Element> Run<T> {
    /// A fresh run: weights, dropout and shuffler all seeded from `seed`.
    fn new(seed: u64, make: Make<T>) -> Self {
        let net = Net::new(HIDDEN, seed);
        let mut opt = make(net.named_parameters());
        let sched = Scheduler::new(&mut *opt, schedule());
        Run {
            net,
            opt,
            sched,
            shuffler: Shuffler::new(seed + 1000),
            epoch: None,
        }
    }

    /// Trains the steps `steps`, one batch each; returns the losses.
    fn train(&mut self, steps: Range<usize>, data: &Data<T>) -> Vec<T> {
        let per_epoch = Batches::new(SAMPLES, BATCH).len();
        steps
            .map(|step| {
                let within = step % per_epoch;
                if within == 0 {
                    self.epoch = Some(self.shuffler.next_epoch(SAMPLES, BATCH));
                } else if self.epoch.is_none() {
                    // resumed mid-epoch: the epoch underway was drawn before
                    let underway = self.shuffler.epochs() - 1;
                    self.epoch = Some(self.shuffler.epoch_batches(underway, SAMPLES, BATCH));
                }
                let batch = self.epoch.as_ref().unwrap().iter().nth(within).unwrap();
                let labels: Vec<usize> = batch.iter().map(|&i| data.labels[i]).collect();
                let logits = self.net.forward(&gather_rows(&data.x, batch));
                let l = loss::cross_entropy(&logits, &labels).unwrap();
                self.opt.step(&l.backward().unwrap()).unwrap();
                self.sched.step(&mut *self.opt);
                l.to_vec()[0]
            })
            .collect()
    }

    fn checkpoint(&self, step: usize) -> Checkpoint<T> {
        Checkpoint::new(step as u64)
            .model(&self.net)
            .optimizer(&*self.opt)
            .scheduler(&self.sched)
            .rng("shuffle", self.shuffler.state())
    }

    fn restore(&mut self, ck: &Checkpoint<T>) -> ferrograd::Result<()> {
        ck.restore_model(&self.net)?;
        ck.restore_optimizer(&mut *self.opt)?;
        ck.restore_scheduler(&mut self.sched, &mut *self.opt)?;
        self.shuffler.set_state(ck.rng_state("shuffle")?);
        Ok(())
    }

    fn weights(&self) -> Vec<(String, Vec<T>)> {
        self.net
            .named_parameters()
            .into_iter()
            .map(|(n, p)| (n, p.to_vec()))
            .collect()
    }
}

/// 2N steps straight, against N steps, a checkpoint through a file, a restore into
/// a run built from other seeds, and N more steps: the same weights and losses,
/// bit for bit. Returns the straight run and the resumed one.
fn resume_is_bit_identical<T: Element>(tag: &str, make: Make<T>) -> (Run<T>, Run<T>) {
    let data = data::<T>();
    let mut straight = Run::new(1, make);
    let straight_losses = straight.train(0..2 * N, &data);

    let mut first = Run::new(1, make);
    let mut losses = first.train(0..N, &data);
    let path = TempPath::new(tag);
    first.checkpoint(N).save(&path).unwrap();
    drop(first);

    let mut resumed = Run::new(2, make);
    assert_ne!(resumed.weights(), straight.weights(), "{tag}: another init");
    let ck = Checkpoint::<T>::load(&path).unwrap();
    assert_eq!(ck.step(), N as u64, "{tag}");
    resumed.restore(&ck).unwrap();
    losses.extend(resumed.train(N..2 * N, &data));

    assert_eq!(losses, straight_losses, "{tag}: losses");
    assert_eq!(resumed.weights(), straight.weights(), "{tag}: weights");
    assert_eq!(
        resumed.opt.state_dict(),
        straight.opt.state_dict(),
        "{tag}: optimizer state"
    );
    assert_eq!(resumed.opt.group_lrs(), straight.opt.group_lrs(), "{tag}");
    assert_eq!(
        resumed.sched.state_dict(),
        straight.sched.state_dict(),
        "{tag}"
    );
    assert_eq!(
        resumed.net.drop.rng_state(),
        straight.net.drop.rng_state(),
        "{tag}"
    );
    assert_eq!(resumed.shuffler, straight.shuffler, "{tag}");
    (straight, resumed)
}

#[test]
fn sgd_with_momentum_and_nesterov_resumes_bit_for_bit() {
    resume_is_bit_identical::<f32>("sgd", |p| {
        Box::new(Sgd::new_named(
            p,
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 1e-3,
                ..Default::default()
            },
        ))
    });
}

#[test]
fn adam_resumes_bit_for_bit() {
    resume_is_bit_identical::<f32>("adam", |p| {
        Box::new(Adam::new_named(
            p,
            AdamConfig {
                lr: 1e-2,
                ..Default::default()
            },
        ))
    });
}

#[test]
fn adamw_resumes_bit_for_bit() {
    resume_is_bit_identical::<f32>("adamw", |p| {
        Box::new(AdamW::new_named(
            p,
            AdamWConfig {
                lr: 1e-2,
                weight_decay: 0.1,
                ..Default::default()
            },
        ))
    });
}

#[test]
fn rmsprop_centered_with_momentum_resumes_bit_for_bit() {
    resume_is_bit_identical::<f32>("rmsprop", |p| {
        Box::new(RmsProp::new_named(
            p,
            RmsPropConfig {
                lr: 1e-2,
                momentum: 0.5,
                centered: true,
                ..Default::default()
            },
        ))
    });
}

#[test]
fn adagrad_resumes_bit_for_bit() {
    resume_is_bit_identical::<f32>("adagrad", |p| {
        Box::new(Adagrad::new_named(
            p,
            AdagradConfig {
                lr: 0.05,
                ..Default::default()
            },
        ))
    });
}

#[test]
fn f64_with_unnamed_parameters_resumes_bit_for_bit() {
    resume_is_bit_identical::<f64>("adam-f64", |p| {
        let params = p.into_iter().map(|(_, t)| t).collect();
        Box::new(Adam::new(
            params,
            AdamConfig {
                lr: 1e-2,
                ..Default::default()
            },
        ))
    });
}

fn adam(p: Vec<(String, Tensor<f32>)>) -> Box<dyn Optimizer<f32>> {
    Box::new(Adam::new_named(
        p,
        AdamConfig {
            lr: 1e-2,
            ..Default::default()
        },
    ))
}

/// The test above would notice a random stream left out of the checkpoint.
#[test]
fn leaving_out_an_rng_state_changes_the_run() {
    let data = data::<f32>();
    let (straight, _) = resume_is_bit_identical("control", adam);
    let mut first = Run::new(1, adam);
    first.train(0..N, &data);
    let ck = first.checkpoint(N);

    // the dropout's stream restarted
    let mut resumed = Run::new(2, adam);
    resumed.restore(&ck).unwrap();
    resumed.net.drop.reseed(1);
    resumed.train(N..2 * N, &data);
    assert_ne!(resumed.weights(), straight.weights());

    // the shuffler on another stream, at the same epoch
    let mut resumed = Run::new(2, adam);
    resumed.restore(&ck).unwrap();
    let RngState { seed, draws } = ck.rng_state("shuffle").unwrap();
    resumed.shuffler.set_state(RngState::new(seed + 1, draws));
    resumed.train(N..2 * N, &data);
    assert_ne!(resumed.weights(), straight.weights());
}

fn message(r: ferrograd::Result<()>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn restoring_a_missing_part_is_an_error() {
    let net = Net::<f32>::new(HIDDEN, 1);
    let mut opt = adam(net.named_parameters());
    let mut sched = Scheduler::new(&mut *opt, schedule());
    let path = TempPath::new("missing");

    Checkpoint::new(5).model(&net).save(&path).unwrap();
    let ck = Checkpoint::<f32>::load(&path).unwrap();
    let before = opt.state_dict();
    let err = message(ck.restore_optimizer(&mut *opt));
    assert_eq!(
        err,
        "format: checkpoint: it was saved without an optimizer (it holds only: model)"
    );
    assert_eq!(opt.state_dict(), before);
    let err = message(ck.restore_scheduler(&mut sched, &mut *opt));
    assert!(
        err.contains("saved without a scheduler (it holds only: model)"),
        "{err}"
    );
    let err = ck.rng_state("shuffle").unwrap_err().to_string();
    assert!(
        err.contains(r#"no RNG state named "shuffle" (it has [])"#),
        "{err}"
    );

    Checkpoint::<f32>::new(5)
        .optimizer(&*opt)
        .scheduler(&sched)
        .save(&path)
        .unwrap();
    let ck = Checkpoint::<f32>::load(&path).unwrap();
    let err = message(ck.restore_model(&net));
    assert!(
        err.contains("saved without a model (it holds only: optimizer, scheduler)"),
        "{err}"
    );
    ck.restore_optimizer(&mut *opt).unwrap();
    ck.restore_scheduler(&mut sched, &mut *opt).unwrap();

    let err = message(Checkpoint::<f32>::new(0).restore_model(&net));
    assert!(
        err.contains("(it holds no part: only the step and named values)"),
        "{err}"
    );
}

#[test]
fn restoring_into_another_kind_of_optimizer_is_an_error() {
    let data = data::<f32>();
    let mut run = Run::new(1, adam);
    run.train(0..3, &data);
    let ck = run.checkpoint(3);

    let net = Net::<f32>::new(HIDDEN, 2);
    let mut sgd = Sgd::new_named(net.named_parameters(), SgdConfig::default());
    let before = sgd.state_dict();
    let err = message(ck.restore_optimizer(&mut sgd));
    assert!(
        err.contains("the state was saved by Adam, not by Sgd"),
        "{err}"
    );
    assert_eq!(sgd.state_dict(), before, "nothing changed");

    // the scheduler state is about learning rates only: it fits any optimizer
    let mut sched = Scheduler::new(&mut sgd, schedule());
    ck.restore_scheduler(&mut sched, &mut sgd).unwrap();
    assert_eq!(sgd.lr(), run.opt.lr());

    // another kind of schedule
    let mut other = Scheduler::new(&mut sgd, CosineAnnealingLr::new(10, 0.0));
    let err = message(ck.restore_scheduler(&mut other, &mut sgd));
    assert!(
        err.contains("the state was saved by SequentialLr, not by CosineAnnealingLr"),
        "{err}"
    );
}

#[test]
fn restoring_a_model_that_does_not_fit_is_an_error() {
    let net = Net::<f32>::new(HIDDEN, 1);
    let ck = Checkpoint::new(0).model(&net);

    // other shapes: every mismatch named, nothing assigned
    let narrow = Net::<f32>::new(6, 2);
    let before = narrow.named_parameters()[0].1.to_vec();
    let err = message(ck.restore_model(&narrow));
    assert!(
        err.starts_with("format: checkpoint does not fit the module: "),
        "{err}"
    );
    assert!(
        err.contains(
            r#"parameter "fc1.weight" has shape [6, 5] in the module but [8, 5] in the checkpoint"#
        ),
        "{err}"
    );
    assert!(
        err.contains(r#"parameter "fc2.weight" has shape [3, 6]"#),
        "{err}"
    );
    assert_eq!(narrow.named_parameters()[0].1.to_vec(), before);
    assert_eq!(narrow.drop.rng_state(), RngState::new(2, 0));

    // the same weights but no dropout: the RNG states do not fit
    let plain = NetNoDrop::<f32> {
        fc1: Linear::new(IN, HIDDEN, true, &mut StdRng::seed_from_u64(3)),
        ln: LayerNorm::new(HIDDEN, 1e-5),
        fc2: Linear::new(HIDDEN, CLASSES, true, &mut StdRng::seed_from_u64(3)),
    };
    let before = plain.fc1.weight().to_vec();
    let err = message(ck.restore_model(&plain));
    assert_eq!(
        err,
        r#"format: checkpoint: its RNG states do not fit the model: missing [], unexpected ["drop"]"#
    );
    assert_eq!(plain.fc1.weight().to_vec(), before, "nothing assigned");

    // a fitting model takes everything, the dropout's state included
    net.drop.set_rng_state(RngState::new(1, 17));
    let ck = Checkpoint::new(0).model(&net);
    let fresh = Net::<f32>::new(HIDDEN, 5);
    ck.restore_model(&fresh).unwrap();
    assert_eq!(fresh.drop.rng_state(), RngState::new(1, 17));
    for ((name, a), (_, b)) in net.named_parameters().iter().zip(fresh.named_parameters()) {
        assert_eq!(a.to_vec(), b.to_vec(), "{name}");
    }
}

#[test]
fn step_and_named_rngs_round_trip() {
    let net = Net::<f64>::new(HIDDEN, 4);
    net.forward(&Tensor::zeros(&[2, IN])); // one dropout mask
    let mut shuffler = Shuffler::new(31);
    shuffler.next_epoch(10, 3);
    let ck = Checkpoint::new(u64::MAX)
        .model(&net)
        .rng("shuffle", shuffler.state())
        .rng("augment.crop", RngState::new(u64::MAX, 12))
        .rng("", RngState::new(0, 0))
        .meta("epoch", 7)
        .meta("note", "a=b,c");
    let path = TempPath::new("round-trip");
    ck.save(&path).unwrap();
    let back = Checkpoint::<f64>::load(&path).unwrap();
    assert_eq!(back.step(), u64::MAX);
    assert_eq!(back.rng_states(), ck.rng_states());
    assert_eq!(back.rng_state("shuffle").unwrap(), RngState::new(31, 1));
    assert_eq!(
        back.rng_state("augment.crop").unwrap(),
        RngState::new(u64::MAX, 12)
    );
    assert_eq!(back.meta_value("epoch"), Some("7"));
    assert_eq!(back.meta_value("note"), Some("a=b,c"));
    assert_eq!(back.meta_value("missing"), None);
    assert_eq!(back.meta_values().len(), 2);
    assert_eq!(
        back.model_rng_states().unwrap(),
        [("drop".to_string(), RngState::new(4, 1))]
    );
    assert!(back.optimizer_state().is_none() && back.scheduler_state().is_none());
    let names: Vec<&str> = back
        .model_tensors()
        .unwrap()
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "fc1.bias",
            "fc1.weight",
            "fc2.bias",
            "fc2.weight",
            "ln.bias",
            "ln.weight"
        ]
    );
    // in memory, the same bytes as the file
    assert_eq!(ck.to_bytes().unwrap(), std::fs::read(&path).unwrap());
    let from_bytes = Checkpoint::<f64>::from_bytes(&ck.to_bytes().unwrap()).unwrap();
    assert_eq!(from_bytes.rng_states(), ck.rng_states());
    // an f64 checkpoint loads into f32 too
    let as_f32 = Checkpoint::<f32>::load(&path).unwrap();
    assert_eq!(as_f32.step(), u64::MAX);
    // the checkpoint holds copies: training on does not change it
    let w = net.fc1.weight().to_vec();
    net.fc1
        .weight()
        .assign(&Tensor::zeros(&[HIDDEN, IN]))
        .unwrap();
    let saved = &ck.model_tensors().unwrap()[0];
    assert_eq!((saved.0.as_str(), saved.1.to_vec()), ("fc1.weight", w));
}

/// The file is plain safetensors, readable by the reference implementation (what
/// `safetensors.torch.load_file` uses), with the weights under `model.`.
#[test]
fn the_file_is_plain_safetensors() {
    use safetensors::{Dtype, SafeTensors};

    let data = data::<f32>();
    let mut run = Run::new(1, adam);
    run.train(0..2, &data);
    let bytes = run.checkpoint(2).meta("epoch", 0).to_bytes().unwrap();
    let st = SafeTensors::deserialize(&bytes).expect("the safetensors crate reads it");
    let mut names: Vec<String> = st.names().into_iter().map(str::to_owned).collect();
    names.sort();
    let mut expected = Vec::new();
    for (name, p) in run.net.named_parameters() {
        let view = st.tensor(&format!("model.{name}")).unwrap();
        assert_eq!((view.dtype(), view.shape()), (Dtype::F32, p.shape()));
        let le: Vec<u8> = p.to_vec().iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(view.data(), &le[..], "{name}");
        expected.push(format!("model.{name}"));
        expected.push(format!("optim.param.{name}.exp_avg"));
        expected.push(format!("optim.param.{name}.exp_avg_sq"));
    }
    expected.sort();
    assert_eq!(names, expected);

    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().as_ref().unwrap();
    assert_eq!(meta["checkpoint.version"], "1");
    assert_eq!(meta["checkpoint.step"], "2");
    assert_eq!(meta["checkpoint.parts"], "model,optimizer,scheduler");
    assert_eq!(meta["model.rng.drop"], "seed=1,draws=2");
    assert_eq!(meta["rng.shuffle"], "seed=1001,draws=1");
    assert_eq!(meta["optim.kind"], "Adam");
    assert_eq!(meta["optim.param.fc1.weight.step"], "2");
    assert_eq!(meta["sched.epoch"], "2");
    assert_eq!(meta["meta.epoch"], "0");
}

#[test]
fn loading_rejects_what_is_not_a_checkpoint() {
    let path = TempPath::new("reject");
    let w = Tensor::<f32>::ones(&[2]);
    let load_err = |meta: &[(&str, &str)], tensors: &[(&str, &Tensor<f32>)]| {
        let meta = meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        save_safetensors_with_metadata(&path, tensors, &meta).unwrap();
        Checkpoint::<f32>::load(&path).unwrap_err().to_string()
    };
    let ok = [
        ("checkpoint.version", "1"),
        ("checkpoint.step", "3"),
        ("checkpoint.parts", "model"),
    ];

    save_safetensors(&path, &[("w", &w)]).unwrap();
    let err = Checkpoint::<f32>::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("no checkpoint.version in the file's metadata: not a training checkpoint"),
        "{err}"
    );

    let err = load_err(&[("checkpoint.version", "2")], &[]);
    assert!(
        err.contains(
            r#"format version "2" is not supported: this version of ferrograd reads version 1"#
        ),
        "{err}"
    );
    let err = load_err(&ok, &[("model.w", &w), ("w", &w)]);
    assert!(err.contains(r#"tensor "w" belongs to no part"#), "{err}");
    let err = load_err(&ok[..2], &[]);
    assert!(err.contains("no checkpoint.parts"), "{err}");
    let err = load_err(&[ok[0], ok[1], ("checkpoint.parts", "model,ema")], &[]);
    assert!(err.contains(r#"unknown part "ema""#), "{err}");
    let err = load_err(&[ok[0], ("checkpoint.step", "-1"), ok[2]], &[]);
    assert!(
        err.contains(r#"checkpoint.step is "-1", not a count"#),
        "{err}"
    );
    let err = load_err(&[ok[0], ok[1], ok[2], ("rng.shuffle", "seed=1")], &[]);
    assert!(
        err.contains(r#"rng.shuffle is "seed=1", not an RNG state"#),
        "{err}"
    );
    let err = load_err(&[ok[0], ok[1], ok[2], ("optim.kind", "Adam")], &[]);
    assert!(err.contains("optim.kind but no optimizer part"), "{err}");
    let err = load_err(&[ok[0], ok[1], ok[2], ("checkpoint.epoch", "1")], &[]);
    assert!(err.contains("unknown key checkpoint.epoch"), "{err}");
    // an optimizer part is read whole
    let err = load_err(
        &[
            ok[0],
            ok[1],
            ("checkpoint.parts", "optimizer"),
            ("optim.kind", "Adam"),
        ],
        &[],
    );
    assert!(
        err.contains("optimizer state: no optim.groups entry"),
        "{err}"
    );

    // other tools' metadata is ignored; the weights read as plain safetensors
    let meta = [ok[0], ok[1], ok[2], ("format", "pt")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    save_safetensors_with_metadata(&path, &[("model.w", &w)], &meta).unwrap();
    let ck = Checkpoint::<f32>::load(&path).unwrap();
    assert_eq!(ck.step(), 3);
    assert_eq!(ck.model_tensors().unwrap()[0].0, "w");
    assert_eq!(
        load_safetensors::<f32, _>(&path).unwrap()["model.w"].to_vec(),
        vec![1.0, 1.0]
    );
}
