//! Parameter groups (PyTorch's `param_groups`): each group's own config, checked
//! by hand and against one optimizer per group; learning rates per group, and
//! schedulers that scale each group from its own base rate.

use ferrograd::nn::{Module, ModuleParams};
use ferrograd::optim::lr::{ExponentialLr, LinearLr, LrSchedule, Scheduler, StepLr};
use ferrograd::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Optim, Optimizer, ParamGroup,
    RmsProp, RmsPropConfig, Sgd, SgdConfig, UpdateRule,
};
use ferrograd::{Gradients, Tensor};

fn leaf(v: &[f64]) -> Tensor<f64> {
    Tensor::from_slice(v, &[v.len()]).unwrap().requires_grad()
}

fn grads(pairs: &[(&Tensor<f64>, &[f64])]) -> Gradients<f64> {
    let mut g = Gradients::new();
    for (p, v) in pairs {
        g.insert(p, Tensor::from_slice(v, p.shape()).unwrap());
    }
    g
}

#[test]
fn sgd_applies_each_groups_lr_and_weight_decay() {
    let a = leaf(&[1.0, 2.0]);
    let b = leaf(&[4.0]);
    let mut opt = Sgd::with_groups(vec![
        ParamGroup::new(
            vec![a.clone()],
            SgdConfig {
                lr: 0.5,
                weight_decay: 0.25,
                ..Default::default()
            },
        ),
        ParamGroup::new(
            vec![b.clone()],
            SgdConfig {
                lr: 0.125,
                ..Default::default()
            },
        ),
    ]);
    opt.step(&grads(&[(&a, &[1.0, -1.0]), (&b, &[2.0])]))
        .unwrap();
    // a: g + λp = [1 + 0.25, −1 + 0.5] = [1.25, −0.5];  p − 0.5·g = [0.375, 2.25]
    // b: no decay: 4 − 0.125·2 = 3.75
    assert_eq!(a.to_vec(), vec![0.375, 2.25]);
    assert_eq!(b.to_vec(), vec![3.75]);
}

#[test]
fn adamw_decays_only_the_matrices_of_the_everyday_split() {
    struct Net {
        w: Tensor<f64>,
        b: Tensor<f64>,
    }
    impl Module<f64> for Net {
        fn forward(&self, x: &Tensor<f64>) -> Tensor<f64> {
            x.matmul(&self.w) + &self.b
        }
    }
    impl ModuleParams<f64> for Net {
        fn named_parameters(&self) -> Vec<(String, Tensor<f64>)> {
            vec![
                ("fc.weight".into(), self.w.clone()),
                ("fc.bias".into(), self.b.clone()),
            ]
        }
    }
    let model = Net {
        w: Tensor::full(&[2, 2], 2.0).requires_grad(),
        b: Tensor::full(&[2], 2.0).requires_grad(),
    };
    let (decay, no_decay): (Vec<_>, Vec<_>) = model
        .named_parameters()
        .into_iter()
        .partition(|(_, p)| p.ndim() >= 2);
    let cfg = AdamWConfig {
        lr: 0.1,
        weight_decay: 0.5,
        ..Default::default()
    };
    let mut opt = AdamW::with_groups(vec![
        ParamGroup::named(decay, cfg),
        ParamGroup::named(
            no_decay,
            AdamWConfig {
                weight_decay: 0.0,
                ..cfg
            },
        ),
    ]);
    assert_eq!(opt.param_name(0), Some("fc.weight"));
    assert_eq!(opt.param_name(1), Some("fc.bias"));
    // a zero gradient: the Adam part moves nothing (m = 0), only the decay acts
    opt.step(&grads(&[(&model.w, &[0.0; 4]), (&model.b, &[0.0, 0.0])]))
        .unwrap();
    // w ← w·(1 − lr·λ) = 2·0.95 = 1.9; b is not decayed
    assert!(model.w.to_vec().iter().all(|&v| (v - 1.9).abs() < 1e-15));
    assert_eq!(model.b.to_vec(), vec![2.0, 2.0]);
}

/// One optimizer over two groups moves each parameter exactly as one optimizer per
/// group does, for every algorithm (with configs that differ in every field).
fn groups_match_separate_optimizers<R: UpdateRule<f64>>(c0: R::Config, c1: R::Config)
where
    R::Config: Clone,
{
    let init = |v: &[f64]| leaf(v);
    let (a, b, c) = (init(&[1.0, -2.0, 0.5]), init(&[0.25, 3.0]), init(&[-1.0]));
    let (a2, b2, c2) = (init(&[1.0, -2.0, 0.5]), init(&[0.25, 3.0]), init(&[-1.0]));
    let mut grouped: Optim<f64, R> = Optim::with_groups(vec![
        ParamGroup::new(vec![a.clone(), b.clone()], c0.clone()),
        ParamGroup::new(vec![c.clone()], c1.clone()),
    ]);
    let mut first: Optim<f64, R> = Optim::new(vec![a2.clone(), b2.clone()], c0);
    let mut second: Optim<f64, R> = Optim::new(vec![c2.clone()], c1);
    for k in 0..5 {
        let loss = |a: &Tensor<f64>, b: &Tensor<f64>, c: &Tensor<f64>| {
            let s = 1.0 + 0.3 * k as f64;
            ((a * s).sin().sum() + b.square().sum() * s + (c * b.sum()).exp().sum())
                .backward()
                .unwrap()
        };
        grouped.step(&loss(&a, &b, &c)).unwrap();
        let g = loss(&a2, &b2, &c2);
        first.step(&g).unwrap();
        second.step(&g).unwrap();
    }
    for (x, y) in [(&a, &a2), (&b, &b2), (&c, &c2)] {
        let bits = |t: &Tensor<f64>| t.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(x), bits(y), "{}", R::NAME);
    }
    assert_eq!(
        grouped.state(2).map(|s| format!("{s:?}")),
        second.state(0).map(|s| format!("{s:?}"))
    );
}

#[test]
fn every_optimizer_runs_each_group_with_its_own_config() {
    groups_match_separate_optimizers::<ferrograd::optim::SgdRule>(
        SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.01,
            ..Default::default()
        },
        SgdConfig {
            lr: 0.02,
            momentum: 0.5,
            dampening: 0.3,
            ..Default::default()
        },
    );
    groups_match_separate_optimizers::<ferrograd::optim::AdamRule>(
        AdamConfig {
            lr: 0.05,
            weight_decay: 0.1,
            ..Default::default()
        },
        AdamConfig {
            lr: 0.01,
            beta1: 0.5,
            beta2: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
        },
    );
    groups_match_separate_optimizers::<ferrograd::optim::AdamWRule>(
        AdamWConfig {
            lr: 0.05,
            ..Default::default()
        },
        AdamWConfig {
            lr: 0.02,
            beta1: 0.8,
            weight_decay: 0.3,
            ..Default::default()
        },
    );
    groups_match_separate_optimizers::<ferrograd::optim::RmsPropRule>(
        RmsPropConfig {
            lr: 0.01,
            centered: true,
            momentum: 0.9,
            ..Default::default()
        },
        RmsPropConfig {
            lr: 0.02,
            alpha: 0.9,
            weight_decay: 0.1,
            ..Default::default()
        },
    );
    groups_match_separate_optimizers::<ferrograd::optim::AdagradRule>(
        AdagradConfig {
            lr: 0.1,
            lr_decay: 0.01,
            ..Default::default()
        },
        AdagradConfig {
            lr: 0.05,
            weight_decay: 0.1,
            initial_accumulator_value: 0.5,
            ..Default::default()
        },
    );
}

#[test]
fn lr_reads_the_first_group_and_set_lr_sets_all() {
    let (a, b) = (leaf(&[1.0]), leaf(&[1.0]));
    let mut opt = Adam::with_groups(vec![
        ParamGroup::new(
            vec![a],
            AdamConfig {
                lr: 0.1,
                ..Default::default()
            },
        ),
        ParamGroup::new(
            vec![b],
            AdamConfig {
                lr: 0.2,
                ..Default::default()
            },
        ),
    ]);
    assert_eq!(opt.lr(), 0.1);
    assert_eq!(opt.group_lrs(), vec![0.1, 0.2]);
    opt.set_group_lr(1, 0.3);
    assert_eq!(opt.groups()[1].config().lr, 0.3);
    opt.set_lr(0.05);
    assert_eq!(opt.group_lrs(), vec![0.05, 0.05]);
    let mut boxed: Box<dyn Optimizer<f64>> = Box::new(opt);
    boxed.set_group_lrs(&[0.5, 0.25]);
    assert_eq!(boxed.group_lrs(), vec![0.5, 0.25]);
    assert_eq!(boxed.lr(), 0.5);
}

#[test]
#[should_panic(expected = "Sgd::set_group_lrs: 1 learning rates for 2 parameter groups")]
fn set_group_lrs_wants_one_rate_per_group() {
    let mut opt = Sgd::with_groups(vec![
        ParamGroup::new(vec![leaf(&[1.0])], SgdConfig::default()),
        ParamGroup::new(vec![leaf(&[1.0])], SgdConfig::default()),
    ]);
    opt.set_group_lrs(&[0.1]);
}

#[test]
#[should_panic(expected = "Adagrad::set_group_lr: invalid learning rate -1")]
fn set_group_lr_rejects_a_negative_rate() {
    let mut opt = Adagrad::new(vec![leaf(&[1.0])], AdagradConfig::default());
    opt.set_group_lr(0, -1.0);
}

#[test]
fn set_group_config_is_checked_and_keeps_the_states() {
    let w = leaf(&[1.0]);
    let mut opt = Sgd::new(
        vec![w.clone()],
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    );
    opt.step(&grads(&[(&w, &[1.0])])).unwrap();
    let err = opt
        .set_group_config(
            0,
            SgdConfig {
                nesterov: true,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Sgd::set_group_config: Nesterov"),
        "{err}"
    );
    assert_eq!(opt.config().lr, 0.1, "nothing changed");
    // momentum switched on mid-training: its buffer starts as PyTorch's does, as a
    // copy of the gradient
    opt.set_group_config(
        0,
        SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.5,
            ..Default::default()
        },
    )
    .unwrap();
    opt.step(&grads(&[(&w, &[2.0])])).unwrap();
    let s = opt.state(0).unwrap();
    assert_eq!(s.step, 2);
    assert_eq!(s.momentum_buffer.as_deref(), Some(&[2.0][..]));
    assert!((w.item() - (0.9 - 0.2)).abs() < 1e-15);
}

#[test]
fn rmsprop_makes_the_buffers_a_new_config_needs() {
    let w = leaf(&[1.0]);
    let mut opt = RmsProp::new(
        vec![w.clone()],
        RmsPropConfig {
            lr: 0.1,
            ..Default::default()
        },
    );
    opt.step(&grads(&[(&w, &[1.0])])).unwrap();
    assert!(opt.state(0).unwrap().grad_avg.is_none());
    opt.set_group_config(
        0,
        RmsPropConfig {
            lr: 0.1,
            centered: true,
            momentum: 0.5,
            ..Default::default()
        },
    )
    .unwrap();
    opt.step(&grads(&[(&w, &[1.0])])).unwrap();
    let s = opt.state(0).unwrap();
    assert!(s.grad_avg.is_some() && s.momentum_buffer.is_some());
}

#[test]
fn a_parameter_may_belong_to_one_group_only() {
    let (a, b) = (leaf(&[1.0]), leaf(&[2.0, 3.0]));
    let cfg = AdamConfig::default();
    let err = Adam::try_with_groups(vec![
        ParamGroup::new(vec![a.clone(), b.clone()], cfg),
        ParamGroup::new(vec![b.clone()], cfg),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Adam::with_groups: group 1: parameter #2 (shape [2]) in group 1 is the same \
         tensor as parameter #1 (shape [2]) in group 0; a parameter may belong to one \
         group only"
    );
    // add_param_group checks the same, and adds nothing on error
    let mut opt = Adam::new(vec![a.clone()], cfg);
    let err = opt
        .add_param_group(ParamGroup::new(vec![b.clone(), a.clone()], cfg))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("parameter #2 (shape [1]) in group 1 is the same tensor as parameter #0"),
        "{err}"
    );
    assert_eq!((opt.groups().len(), opt.parameters().len()), (1, 1));
    opt.add_param_group(ParamGroup::new(vec![b.clone()], cfg))
        .unwrap();
    assert_eq!(opt.parameters()[1].id(), b.id());
}

#[test]
fn groups_are_checked_at_construction() {
    let (a, b) = (leaf(&[1.0]), leaf(&[2.0]));
    let err = Sgd::<f64>::try_with_groups(vec![]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Sgd::with_groups: expected at least one parameter group"
    );
    let err = Sgd::try_with_groups(vec![
        ParamGroup::new(vec![a.clone()], SgdConfig::default()),
        ParamGroup::new(
            vec![b.clone()],
            SgdConfig {
                momentum: -1.0,
                ..Default::default()
            },
        ),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Sgd::with_groups: group 1: invalid momentum -1: expected a value >= 0"
    );
    let err = Sgd::try_with_groups(vec![
        ParamGroup::named(vec![("a".into(), a.clone())], SgdConfig::default()),
        ParamGroup::new(vec![b.clone()], SgdConfig::default()),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("or of none"), "{err}");
    let err = Sgd::try_with_groups(vec![
        ParamGroup::named(vec![("w".into(), a.clone())], SgdConfig::default()),
        ParamGroup::named(vec![("w".into(), b.clone())], SgdConfig::default()),
    ])
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("parameters #0 and #1 are both named w"),
        "{err}"
    );
    // an empty group is allowed
    let opt = Sgd::with_groups(vec![
        ParamGroup::new(vec![], SgdConfig::default()),
        ParamGroup::new(vec![a], SgdConfig::default()),
    ]);
    assert_eq!(opt.groups()[0].params().len(), 0);
}

#[test]
fn indices_and_skips_run_across_groups() {
    let (a, b, c) = (leaf(&[1.0]), leaf(&[2.0]), leaf(&[3.0]));
    let mut opt = Adagrad::with_groups(vec![
        ParamGroup::named(
            vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            AdagradConfig::default(),
        ),
        ParamGroup::named(vec![("c".into(), c.clone())], AdagradConfig::default()),
    ]);
    let report = opt.step(&grads(&[(&a, &[1.0]), (&c, &[1.0])])).unwrap();
    assert_eq!(report.updated, 2);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(
        (report.skipped[0].index, report.to_string().as_str()),
        (1, "updated 2 of 3 parameters; no gradient for: b")
    );
    assert!(opt.state(1).is_none() && opt.state(2).is_some());
    let opt = opt.strict(true);
    let mut opt = opt;
    let err = opt.step(&grads(&[(&a, &[1.0])])).unwrap_err();
    assert!(err.to_string().contains("parameter b"), "{err}");
}

/// The rates a scheduler sets on a two-group SGD optimizer over `n` steps.
fn group_lrs_of<S: LrSchedule<f64>>(bases: [f64; 2], schedule: S, n: usize) -> Vec<Vec<f64>> {
    let mut opt = Sgd::with_groups(
        bases
            .iter()
            .map(|&lr| {
                ParamGroup::new(
                    vec![leaf(&[0.0])],
                    SgdConfig {
                        lr,
                        ..Default::default()
                    },
                )
            })
            .collect(),
    );
    let mut sched = Scheduler::new(&mut opt, schedule);
    assert_eq!(sched.base_lrs(), &bases);
    let mut out = vec![opt.group_lrs()];
    for _ in 0..n {
        let first = sched.step(&mut opt);
        assert_eq!(first, opt.lr());
        assert_eq!(sched.last_lrs(), &opt.group_lrs()[..]);
        out.push(opt.group_lrs());
    }
    out
}

#[test]
fn schedulers_scale_each_group_from_its_own_base() {
    // StepLr(2, 0.5) from bases 1 and 0.1
    let got = group_lrs_of([1.0, 0.1], StepLr::new(2, 0.5), 4);
    let want = [
        [1.0, 0.1],
        [1.0, 0.1],
        [0.5, 0.05],
        [0.5, 0.05],
        [0.25, 0.025],
    ];
    for (g, w) in got.iter().zip(want) {
        assert!(
            g.iter().zip(w).all(|(a, b)| (a - b).abs() < 1e-15),
            "{g:?} vs {w:?}"
        );
    }
    // a warm-up from a quarter of each base, then exponential decay
    let got = group_lrs_of(
        [0.8, 0.4],
        LinearLr::warmup(0.25, 2).then(2, ExponentialLr::new(0.5)),
        3,
    );
    let want = [[0.2, 0.1], [0.5, 0.25], [0.8, 0.4], [0.4, 0.2]];
    for (g, w) in got.iter().zip(want) {
        assert!(
            g.iter().zip(w).all(|(a, b)| (a - b).abs() < 1e-15),
            "{g:?} vs {w:?}"
        );
    }
}

#[test]
fn the_scheduled_rates_are_the_ones_each_group_steps_with() {
    let (a, b) = (leaf(&[0.0]), leaf(&[0.0]));
    let mut opt = Sgd::with_groups(vec![
        ParamGroup::new(
            vec![a.clone()],
            SgdConfig {
                lr: 1.0,
                ..Default::default()
            },
        ),
        ParamGroup::new(
            vec![b.clone()],
            SgdConfig {
                lr: 0.5,
                ..Default::default()
            },
        ),
    ]);
    let mut sched = Scheduler::new(&mut opt, ExponentialLr::new(0.5));
    for _ in 0..3 {
        opt.step(&grads(&[(&a, &[1.0]), (&b, &[1.0])])).unwrap();
        sched.step(&mut opt);
    }
    // a moves by 1 + 0.5 + 0.25, b by half of that
    assert_eq!((a.item(), b.item()), (-1.75, -0.875));
}
