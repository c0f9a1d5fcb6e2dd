//! Resumable training: optimizer and scheduler state dicts.
//!
//! For every optimizer, training 2N steps in one go and training N steps, saving
//! the state (through the tensor and string maps, and through a safetensors file
//! holding the model's weights too), loading it into a fresh optimizer and training
//! N more steps give bit-identical parameters. The same holds for a scheduler
//! stopped mid-schedule. Loading checks the kind, the names, the groups and the
//! shapes, and changes nothing when it fails.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ferrograd::io::{load_safetensors, load_safetensors_metadata, save_safetensors_with_metadata};
use ferrograd::optim::lr::{
    CosineAnnealingLr, ExponentialLr, LinearLr, LrSchedule, Scheduler, SchedulerState, StepLr,
};
use ferrograd::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, OptimizerState,
    ParamGroup, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use ferrograd::{Element, Tensor};

/// Steps before the checkpoint, and after it.
const N: usize = 4;

type Params<T> = Vec<(String, Tensor<T>)>;
type Make<T> = Box<dyn Fn(Params<T>) -> Box<dyn Optimizer<T>>>;

fn t<T: Element>(v: f64) -> T {
    T::from_f64_lossy(v)
}

fn tensor<T: Element>(shape: &[usize], f: impl Fn(usize) -> f64) -> Tensor<T> {
    let n = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| t(f(i))).collect(), shape).unwrap()
}

/// A linear layer, and `late`, which gets gradients only after the checkpoint (so
/// the checkpoint holds a parameter that has no state yet).
fn init<T: Element>() -> Params<T> {
    vec![
        (
            "fc.weight".into(),
            tensor(&[3, 2], |i| 0.3 * i as f64 - 0.7).requires_grad(),
        ),
        (
            "fc.bias".into(),
            tensor(&[2], |i| 0.1 + 0.2 * i as f64).requires_grad(),
        ),
        (
            "late".into(),
            tensor(&[2], |i| 1.0 - i as f64).requires_grad(),
        ),
    ]
}

/// The loss of step `k`: a different batch each step.
fn loss<T: Element>(params: &Params<T>, k: usize) -> Tensor<T> {
    let (w, b, late) = (&params[0].1, &params[1].1, &params[2].1);
    let x = tensor::<T>(&[4, 3], |i| ((i * 7 + k * 3) % 11) as f64 / 5.0 - 1.0);
    let y = tensor::<T>(&[4, 2], |i| ((i * 5 + k) % 7) as f64 / 3.0 - 1.0);
    let fit = (x.matmul(w) + b - y).square().mean();
    if k >= N {
        fit + (late * t::<T>(1.5)).sin().sum()
    } else {
        fit
    }
}

fn bits<T: Element>(x: &Tensor<T>) -> Vec<u64> {
    x.to_vec()
        .into_iter()
        .map(|v| v.to_f64_lossless().to_bits())
        .collect()
}

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "ferrograd-optim-state-{tag}-{}.safetensors",
        std::process::id()
    ))
}

/// Trains 2N steps straight; and N steps, checkpoints, resumes in a fresh optimizer
/// over weights read back from the file, and trains N more: both must agree bit for
/// bit. Returns the checkpointed state for further checks.
fn resume_matches<T: Element>(tag: &str, make: Make<T>) -> OptimizerState<T> {
    let straight = init::<T>();
    let mut opt = make(straight.clone());
    for k in 0..2 * N {
        opt.step(&loss(&straight, k).backward().unwrap()).unwrap();
    }

    let first = init::<T>();
    let mut opt1 = make(first.clone());
    for k in 0..N {
        opt1.step(&loss(&first, k).backward().unwrap()).unwrap();
    }
    let state = opt1.state_dict();
    // through the maps
    let (tensors, meta) = state.to_maps("optim.");
    assert_eq!(
        OptimizerState::from_maps("optim.", &tensors, &meta).unwrap(),
        state,
        "{tag}"
    );
    // through one file with the model's weights
    let path = temp_path(tag);
    let mut all: Params<T> = first.iter().map(|(n, p)| (n.clone(), p.detach())).collect();
    all.extend(tensors);
    save_safetensors_with_metadata(&path, &all, &meta).unwrap();
    drop((opt1, first));

    let file: BTreeMap<String, Tensor<T>> = load_safetensors(&path).unwrap();
    let meta = load_safetensors_metadata(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let resumed: Params<T> = init::<T>()
        .into_iter()
        .map(|(n, _)| {
            let p = file[&n].clone().requires_grad();
            (n, p)
        })
        .collect();
    let mut opt2 = make(resumed.clone());
    opt2.set_lr(t(0.123)); // the state brings back the saved rates
    let loaded = OptimizerState::from_maps("optim.", &file, &meta).unwrap();
    assert_eq!(loaded, state, "{tag}");
    opt2.load_state_dict(&loaded).unwrap();
    assert_eq!(opt2.group_lrs(), opt.group_lrs(), "{tag}");
    assert_eq!(
        opt2.state_dict(),
        state,
        "{tag}: load then save is the identity"
    );
    for k in N..2 * N {
        opt2.step(&loss(&resumed, k).backward().unwrap()).unwrap();
    }
    for ((name, a), (_, b)) in straight.iter().zip(&resumed) {
        assert_eq!(bits(a), bits(b), "{tag}: {name}");
    }
    assert_eq!(opt2.state_dict(), opt.state_dict(), "{tag}");
    state
}

fn unnamed<T: Element>(params: Params<T>) -> Vec<Tensor<T>> {
    params.into_iter().map(|(_, p)| p).collect()
}

#[test]
fn sgd_with_momentum_and_nesterov_resumes_bit_for_bit() {
    let state = resume_matches::<f32>(
        "sgd-momentum",
        Box::new(|p| {
            Box::new(Sgd::new_named(
                p,
                SgdConfig {
                    lr: 0.05,
                    momentum: 0.9,
                    dampening: 0.1,
                    weight_decay: 1e-2,
                    ..Default::default()
                },
            ))
        }),
    );
    assert_eq!(state.kind, "Sgd");
    assert_eq!(state.params["fc.weight"].step, N);
    assert_eq!(
        state.params["fc.weight"].buffers.keys().collect::<Vec<_>>(),
        ["momentum_buffer"]
    );
    assert_eq!(
        (
            state.params["late"].step,
            state.params["late"].buffers.len()
        ),
        (0, 0)
    );
    resume_matches::<f32>(
        "sgd-nesterov",
        Box::new(|p| {
            Box::new(Sgd::new(
                unnamed(p),
                SgdConfig {
                    lr: 0.05,
                    momentum: 0.8,
                    nesterov: true,
                    ..Default::default()
                },
            ))
        }),
    );
    // plain SGD: step counts only
    let state = resume_matches::<f64>(
        "sgd-plain",
        Box::new(|p| Box::new(Sgd::new_named(p, SgdConfig::default()))),
    );
    assert!(state.params["fc.bias"].buffers.is_empty());
}

#[test]
fn adam_and_adamw_resume_bit_for_bit() {
    let state = resume_matches::<f32>(
        "adam",
        Box::new(|p| {
            Box::new(Adam::new_named(
                p,
                AdamConfig {
                    lr: 0.01,
                    weight_decay: 1e-3,
                    ..Default::default()
                },
            ))
        }),
    );
    assert_eq!(state.groups[0]["beta2"], "0.999");
    assert_eq!(
        state.params["fc.weight"].buffers["exp_avg_sq"].shape(),
        &[3, 2]
    );
    resume_matches::<f64>(
        "adam-f64",
        Box::new(|p| Box::new(Adam::new(unnamed(p), AdamConfig::default()))),
    );
    resume_matches::<f32>(
        "adamw",
        Box::new(|p| {
            Box::new(AdamW::new_named(
                p,
                AdamWConfig {
                    lr: 0.01,
                    ..Default::default()
                },
            ))
        }),
    );
}

#[test]
fn rmsprop_centered_with_momentum_resumes_bit_for_bit() {
    let state = resume_matches::<f32>(
        "rmsprop",
        Box::new(|p| {
            Box::new(RmsProp::new_named(
                p,
                RmsPropConfig {
                    lr: 0.01,
                    centered: true,
                    momentum: 0.9,
                    weight_decay: 1e-3,
                    ..Default::default()
                },
            ))
        }),
    );
    assert_eq!(
        state.params["fc.bias"].buffers.keys().collect::<Vec<_>>(),
        ["grad_avg", "momentum_buffer", "square_avg"]
    );
    assert_eq!(state.groups[0]["centered"], "true");
}

#[test]
fn adagrad_resumes_bit_for_bit() {
    resume_matches::<f32>(
        "adagrad",
        Box::new(|p| {
            Box::new(Adagrad::new(
                unnamed(p),
                AdagradConfig {
                    lr: 0.1,
                    lr_decay: 0.05,
                    weight_decay: 1e-3,
                    initial_accumulator_value: 0.1,
                    ..Default::default()
                },
            ))
        }),
    );
}

#[test]
fn parameter_groups_resume_bit_for_bit() {
    let state = resume_matches::<f32>(
        "groups",
        Box::new(|p| {
            let (decay, no_decay): (Params<f32>, Params<f32>) =
                p.into_iter().partition(|(_, p)| p.ndim() >= 2);
            let cfg = AdamWConfig {
                lr: 0.02,
                weight_decay: 0.1,
                ..Default::default()
            };
            Box::new(AdamW::with_groups(vec![
                ParamGroup::named(decay, cfg),
                ParamGroup::named(
                    no_decay,
                    AdamWConfig {
                        lr: 0.01,
                        weight_decay: 0.0,
                        ..cfg
                    },
                ),
            ]))
        }),
    );
    assert_eq!(state.groups.len(), 2);
    assert_eq!(
        (
            state.groups[0]["lr"].as_str(),
            state.groups[1]["lr"].as_str()
        ),
        ("0.02", "0.01")
    );
    assert_eq!(
        (
            state.params["fc.weight"].group,
            state.params["fc.bias"].group
        ),
        (0, 1)
    );
}

/// Warm-up, cosine, then steps: the checkpoint falls inside the cosine, and the
/// resumed run crosses the last milestone.
fn sequential() -> ferrograd::optim::lr::SequentialLr<f32> {
    LinearLr::warmup(0.1, 3)
        .then(3, CosineAnnealingLr::new(6, 0.001))
        .then(7, StepLr::new(2, 0.5))
}

fn two_groups(p: Params<f32>) -> Sgd<f32> {
    let (decay, no_decay): (Params<f32>, Params<f32>) =
        p.into_iter().partition(|(_, p)| p.ndim() >= 2);
    Sgd::with_groups(vec![
        ParamGroup::named(
            decay,
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 1e-2,
                ..Default::default()
            },
        ),
        ParamGroup::named(
            no_decay,
            SgdConfig {
                lr: 0.03,
                momentum: 0.5,
                ..Default::default()
            },
        ),
    ])
}

#[test]
fn a_scheduler_resumes_mid_schedule_bit_for_bit() {
    let straight = init::<f32>();
    let mut opt = two_groups(straight.clone());
    let mut sched = Scheduler::new(&mut opt, sequential());
    let mut lrs = Vec::new();
    for k in 0..2 * N {
        opt.step(&loss(&straight, k).backward().unwrap()).unwrap();
        sched.step(&mut opt);
        lrs.push(opt.group_lrs());
    }

    let first = init::<f32>();
    let mut opt1 = two_groups(first.clone());
    let mut sched1 = Scheduler::new(&mut opt1, sequential());
    for k in 0..N {
        opt1.step(&loss(&first, k).backward().unwrap()).unwrap();
        sched1.step(&mut opt1);
    }
    let sched_state = sched1.state_dict();
    assert_eq!(sched_state.epoch, N);
    assert_eq!(sched_state.base_lrs, vec![0.1, 0.03]);
    assert_eq!(sched_state.schedule["kind"], "SequentialLr");
    assert_eq!(sched_state.schedule["milestones"], "3,7");
    assert_eq!(sched_state.schedule["1.kind"], "CosineAnnealingLr");
    assert_eq!(sched_state.schedule["2.step_size"], "2");
    let (tensors, mut meta) = opt1.state_dict().to_maps("optim.");
    meta.extend(sched_state.to_map("sched."));
    assert_eq!(
        SchedulerState::from_map("sched.", &meta).unwrap(),
        sched_state
    );
    let path = temp_path("scheduler");
    let mut all: Params<f32> = first.iter().map(|(n, p)| (n.clone(), p.detach())).collect();
    all.extend(tensors);
    save_safetensors_with_metadata(&path, &all, &meta).unwrap();

    let file: BTreeMap<String, Tensor<f32>> = load_safetensors(&path).unwrap();
    let meta = load_safetensors_metadata(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let opt_state = OptimizerState::from_maps("optim.", &file, &meta).unwrap();
    let sched_state = SchedulerState::from_map("sched.", &meta).unwrap();

    // Either order of loading works: the scheduler made before the optimizer's state
    // is loaded (as in PyTorch), or after (the scheduler's load sets the rates).
    for scheduler_first in [true, false] {
        // fresh buffers each time (requires_grad shares the loaded tensor's buffer)
        let resumed: Params<f32> = init::<f32>()
            .into_iter()
            .map(|(n, _)| {
                let w = &file[&n];
                let p = Tensor::from_vec(w.to_vec(), w.shape()).unwrap();
                (n, p.requires_grad())
            })
            .collect();
        let mut opt2 = two_groups(resumed.clone());
        let mut sched2 = if scheduler_first {
            let s = Scheduler::new(&mut opt2, sequential());
            opt2.load_state_dict(&opt_state).unwrap();
            s
        } else {
            opt2.load_state_dict(&opt_state).unwrap();
            Scheduler::new(&mut opt2, sequential())
        };
        sched2.load_state_dict(&mut opt2, &sched_state).unwrap();
        assert_eq!(sched2.epoch(), N);
        assert_eq!(opt2.group_lrs(), lrs[N - 1]);
        for (k, want) in (N..2 * N).zip(&lrs[N..]) {
            opt2.step(&loss(&resumed, k).backward().unwrap()).unwrap();
            sched2.step(&mut opt2);
            let got: Vec<u32> = opt2.group_lrs().iter().map(|v| v.to_bits()).collect();
            let want: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "rates after step {k}");
        }
        for ((name, a), (_, b)) in straight.iter().zip(&resumed) {
            assert_eq!(
                bits(a),
                bits(b),
                "{name} (scheduler first: {scheduler_first})"
            );
        }
        assert_eq!(sched2.state_dict(), sched.state_dict());
    }
}

fn adam_after_one_step() -> (Params<f32>, Adam<f32>) {
    let params = init::<f32>();
    let mut opt = Adam::new_named(params.clone(), AdamConfig::default());
    opt.step(&loss(&params, 0).backward().unwrap()).unwrap();
    (params, opt)
}

/// The message of loading `state` into a fresh Adam over the same parameters, which
/// must be left untouched.
fn load_error(state: &OptimizerState<f32>) -> String {
    let (_, mut opt) = adam_after_one_step();
    let before = opt.state_dict();
    let err = opt.load_state_dict(state).unwrap_err().to_string();
    assert_eq!(opt.state_dict(), before, "a failed load changes nothing");
    err
}

#[test]
fn loading_checks_kind_names_groups_shapes_and_values() {
    const OP: &str = "Adam::load_state_dict: ";
    let (_, opt) = adam_after_one_step();
    let good = opt.state_dict();
    let edited = |edit: &dyn Fn(&mut OptimizerState<f32>)| {
        let mut s = good.clone();
        edit(&mut s);
        load_error(&s).strip_prefix(OP).unwrap().to_string()
    };

    // another kind of optimizer (AdamW's state has the same fields and buffers)
    let adamw = AdamW::new_named(init::<f32>(), AdamWConfig::default());
    let err = load_error(&adamw.state_dict());
    assert_eq!(
        err,
        "Adam::load_state_dict: the state was saved by AdamW, not by Adam"
    );

    // names
    assert_eq!(
        edited(&|s| {
            let e = s.params.remove("fc.bias").unwrap();
            s.params.insert("head.bias".into(), e);
        }),
        "the state has an entry for parameter head.bias, which this optimizer does not have"
    );
    assert_eq!(
        edited(&|s| {
            s.params.remove("late");
            s.params.remove("fc.bias");
        }),
        "the state has no entry for parameters fc.bias, late"
    );
    // a state keyed by position does not load into a named optimizer, nor the reverse
    let positional = Adam::new(unnamed(init::<f32>()), AdamConfig::default()).state_dict();
    assert_eq!(
        positional.params.keys().collect::<Vec<_>>(),
        ["0", "1", "2"]
    );
    assert!(load_error(&positional).contains("parameter 0, which this optimizer does not have"));
    let mut unnamed_opt = Adam::new(unnamed(init::<f32>()), AdamConfig::default());
    let err = unnamed_opt.load_state_dict(&good).unwrap_err().to_string();
    assert!(
        err.contains("(its parameters are unnamed: keyed by position)"),
        "{err}"
    );

    // groups
    assert_eq!(
        edited(&|s| s.groups.push(s.groups[0].clone())),
        "the state has 2 parameter groups, this optimizer 1"
    );
    assert_eq!(
        edited(&|s| s.params.get_mut("fc.bias").unwrap().group = 1),
        "parameter fc.bias is in group 1 in the state, but in group 0 here"
    );

    // buffers
    assert_eq!(
        edited(&|s| {
            let e = s.params.get_mut("fc.weight").unwrap();
            e.buffers.insert("exp_avg".into(), Tensor::zeros(&[2, 3]));
        }),
        "buffer exp_avg of parameter fc.weight has shape [2, 3], but the parameter has \
         shape [3, 2]"
    );
    assert_eq!(
        edited(&|s| {
            let e = s.params.get_mut("fc.bias").unwrap();
            e.buffers
                .insert("max_exp_avg_sq".into(), Tensor::zeros(&[2]));
        }),
        "parameter fc.bias: unknown state buffer max_exp_avg_sq"
    );
    assert_eq!(
        edited(&|s| {
            s.params
                .get_mut("fc.bias")
                .unwrap()
                .buffers
                .remove("exp_avg_sq");
        }),
        "parameter fc.bias: missing state buffer exp_avg_sq"
    );
    assert_eq!(
        edited(&|s| {
            let e = s.params.get_mut("late").unwrap();
            e.buffers.insert("exp_avg".into(), Tensor::zeros(&[2]));
        }),
        "parameter late has step 0 (no state yet) but a buffer exp_avg"
    );

    // hyper-parameters
    let group =
        |f: &'static dyn Fn(&mut BTreeMap<String, String>)| edited(&|s| f(&mut s.groups[0]));
    assert_eq!(
        group(&|g| {
            g.insert("beta1".into(), "1.5".into());
        }),
        "group 0: invalid beta1 1.5: expected 0 <= beta1 < 1"
    );
    assert_eq!(
        group(&|g| {
            g.insert("lr".into(), "fast".into());
        }),
        "group 0: field lr: \"fast\" is not a number of the expected type"
    );
    assert_eq!(
        group(&|g| {
            g.remove("eps");
        }),
        "group 0: missing field eps"
    );
    assert_eq!(
        group(&|g| {
            g.insert("amsgrad".into(), "false".into());
        }),
        "group 0: unknown hyper-parameter amsgrad"
    );

    // and the good state loads
    let (_, mut fresh) = adam_after_one_step();
    fresh.set_lr(0.5);
    fresh.load_state_dict(&good).unwrap();
    assert_eq!(fresh.lr(), 1e-3);
}

#[test]
fn from_maps_reads_only_what_to_maps_writes() {
    let (_, opt) = adam_after_one_step();
    let state = opt.state_dict();
    let (tensors, meta) = state.to_maps("optim.");
    assert_eq!(meta["optim.kind"], "Adam");
    assert_eq!(meta["optim.groups"], "1");
    assert_eq!(meta["optim.group.0.lr"], "0.001");
    assert_eq!(meta["optim.param.fc.weight.group"], "0");
    assert_eq!(meta["optim.param.fc.weight.step"], "1");
    assert_eq!(meta["optim.param.late.step"], "0"); // no gradient yet
    assert!(tensors.contains_key("optim.param.fc.bias.exp_avg"));

    // keys without the prefix are someone else's: ignored
    let mut with_model = tensors.clone();
    with_model.insert("fc.weight".into(), Tensor::zeros(&[3, 2]));
    let mut meta_model = meta.clone();
    meta_model.insert("format".into(), "pt".into());
    assert_eq!(
        OptimizerState::from_maps("optim.", &with_model, &meta_model).unwrap(),
        state
    );
    // and no prefix works when the file holds nothing else
    let (t0, m0) = state.to_maps("");
    assert_eq!(OptimizerState::from_maps("", &t0, &m0).unwrap(), state);

    let err = |t: &BTreeMap<String, Tensor<f32>>, m: &BTreeMap<String, String>| {
        OptimizerState::from_maps("optim.", t, m)
            .unwrap_err()
            .to_string()
    };
    let mut m = meta.clone();
    m.remove("optim.kind");
    assert_eq!(
        err(&tensors, &m),
        "format: optimizer state: no optim.kind entry"
    );
    let mut m = meta.clone();
    m.insert("optim.lr".into(), "0.1".into());
    assert_eq!(
        err(&tensors, &m),
        "format: optimizer state: unknown key optim.lr"
    );
    let mut m = meta.clone();
    m.insert("optim.param.late.step".into(), "-1".into());
    assert_eq!(
        err(&tensors, &m),
        "format: optimizer state: optim.param.late.step is \"-1\", not a count"
    );
    let mut m = meta.clone();
    m.insert("optim.group.1.lr".into(), "0.1".into());
    assert_eq!(
        err(&tensors, &m),
        "format: optimizer state: hyper-parameters for group 1, but optim.groups is 1"
    );
    let mut t = tensors.clone();
    t.insert("optim.param.head.exp_avg".into(), Tensor::zeros(&[1]));
    assert_eq!(
        err(&t, &meta),
        "format: optimizer state: tensor optim.param.head.exp_avg belongs to no parameter"
    );
}

#[test]
fn scheduler_loading_is_checked_and_changes_nothing_on_error() {
    let w = Tensor::<f32>::zeros(&[1]).requires_grad();
    let mut opt = Sgd::new(
        vec![w.clone()],
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    );
    let mut step = Scheduler::new(&mut opt, StepLr::new(2, 0.5));
    step.step(&mut opt);
    let state = step.state_dict();
    assert_eq!(
        state.schedule,
        BTreeMap::from([
            ("kind".to_string(), "StepLr".to_string()),
            ("step_size".to_string(), "2".to_string()),
            ("gamma".to_string(), "0.5".to_string()),
        ])
    );

    let mut exp = Scheduler::new(&mut opt, ExponentialLr::new(0.9));
    let err = exp.load_state_dict(&mut opt, &state).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ExponentialLr::load_state_dict: the state was saved by StepLr, not by ExponentialLr"
    );
    assert_eq!(exp.epoch(), 0);

    let mut bad = state.clone();
    bad.schedule.insert("step_size".into(), "0".into());
    let mut other = Scheduler::new(&mut opt, StepLr::new(5, 0.1));
    let err = other.load_state_dict(&mut opt, &bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "StepLr::load_state_dict: step_size must be at least 1"
    );
    other.load_state_dict(&mut opt, &state).unwrap();
    assert_eq!(other.schedule(), step.schedule());
    assert_eq!(other.state_dict(), state);

    let mut bad = state.clone();
    bad.last_lrs = vec![-1.0];
    let err = other.load_state_dict(&mut opt, &bad).unwrap_err();
    assert!(
        err.to_string().contains("invalid learning rate -1"),
        "{err}"
    );

    // the number of groups must match
    let mut two = two_groups(init::<f32>());
    let mut sched2 = Scheduler::new(&mut two, StepLr::new(2, 0.5));
    let err = sched2.load_state_dict(&mut two, &state).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Scheduler::load_state_dict: the state has 1 base learning rates, the optimizer 2 \
         parameter groups"
    );

    // SequentialLr: the number of schedules must match; a schedule that fails to
    // load leaves every schedule as it was
    let mut seq = Scheduler::new(&mut opt, sequential());
    let short = Scheduler::new(
        &mut opt,
        LinearLr::warmup(0.5, 2).then(2, ExponentialLr::new(0.5)),
    )
    .state_dict();
    let err = seq.load_state_dict(&mut opt, &short).unwrap_err();
    assert!(
        err.to_string()
            .contains("the state has 1 milestones, this SequentialLr 2"),
        "{err}"
    );
    let other_seq = LinearLr::warmup(0.2, 4)
        .then(4, CosineAnnealingLr::new(3, 0.0))
        .then(9, StepLr::new(1, 0.9));
    let mut wanted = Scheduler::new(&mut opt, other_seq).state_dict();
    wanted.schedule.insert("2.step_size".into(), "0".into());
    let before = seq.state_dict();
    let err = seq.load_state_dict(&mut opt, &wanted).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SequentialLr::load_state_dict: schedule 2: StepLr::load_state_dict: step_size \
         must be at least 1"
    );
    assert_eq!(seq.state_dict(), before);
    wanted.schedule.insert("2.step_size".into(), "1".into());
    seq.load_state_dict(&mut opt, &wanted).unwrap();
    assert_eq!(seq.schedule().milestones(), &[4, 9]);
    assert_eq!(
        seq.schedule().lr(5, 1.0),
        CosineAnnealingLr::new(3, 0.0).lr(1, 1.0)
    );

    // a schedule of one's own, without settings: nothing to save, nothing to load
    struct Constant;
    impl LrSchedule<f32> for Constant {
        fn lr(&self, _: usize, base: f32) -> f32 {
            base
        }
    }
    let mut c = Scheduler::new(&mut opt, Constant);
    c.step(&mut opt);
    let st = c.state_dict();
    assert!(st.schedule.is_empty());
    c.load_state_dict(&mut opt, &st).unwrap();
    let err = c.load_state_dict(&mut opt, &state).unwrap_err();
    assert!(err.to_string().contains("unknown field gamma"), "{err}");

    // the string map
    let map = state.to_map("s.");
    assert_eq!(map["s.epoch"], "1");
    assert_eq!(map["s.base_lrs"], "0.1");
    assert_eq!(map["s.schedule.gamma"], "0.5");
    let mut m = map.clone();
    m.insert("s.extra".into(), "1".into());
    assert_eq!(
        SchedulerState::<f32>::from_map("s.", &m)
            .unwrap_err()
            .to_string(),
        "format: scheduler state: unknown key s.extra"
    );
    m.remove("s.extra");
    m.remove("s.epoch");
    assert_eq!(
        SchedulerState::<f32>::from_map("s.", &m)
            .unwrap_err()
            .to_string(),
        "format: scheduler state: no s.epoch entry"
    );
}
