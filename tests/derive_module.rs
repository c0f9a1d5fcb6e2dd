//! `#[derive(Module)]` from outside the crate: names, buffers, skipped fields,
//! training mode, RNG states, and checkpoints of derived models.

mod common;

use common::TempPath;
use ferrograd::io::{load_into, load_safetensors, save_module};
use ferrograd::nn::{
    Activation, BoxedModule, Dropout, LayerNorm, Linear, Module, ModuleParams, RngState, Sequential,
};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{Element, Tensor};

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn names<T: Element>(m: &(impl ModuleParams<T> + ?Sized)) -> Vec<String> {
    m.named_parameters().into_iter().map(|(n, _)| n).collect()
}

fn buffer_names<T: Element>(m: &(impl ModuleParams<T> + ?Sized)) -> Vec<String> {
    m.named_buffers().into_iter().map(|(n, _)| n).collect()
}

/// Not a module and not a tensor: must be skipped.
#[derive(Debug, Clone, PartialEq)]
struct Config {
    width: usize,
    name: String,
}

#[derive(Module)]
struct Block<T: Element = f32> {
    attn: Linear<T>,
    ln: LayerNorm<T>,
    drop: Dropout,
}

impl<T: Element> Module<T> for Block<T> {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        x + self.drop.forward(&self.ln.forward(&self.attn.forward(x)))
    }
}

#[derive(Module)]
struct Body<T: Element = f32> {
    blocks: Vec<Block<T>>,
}

impl<T: Element> Module<T> for Body<T> {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        self.blocks.iter().fold(x.clone(), |h, b| b.forward(&h))
    }
}

#[derive(Module)]
struct Net<T: Element = f32> {
    fc1: Linear<T>,
    body: Body<T>,
    head: Option<Linear<T>>,
    scale: Tensor<T>,
    #[module(buffer)]
    running_mean: Tensor<T>,
    #[module(skip)]
    config: Config,
}

impl<T: Element> Net<T> {
    fn new(width: usize, head: bool, seed: u64) -> Self {
        let mut r = rng(seed);
        let blocks = (0..2)
            .map(|i| Block {
                attn: Linear::new(width, width, true, &mut r),
                ln: LayerNorm::with_default_eps(width),
                drop: Dropout::new(0.5, seed * 10 + i),
            })
            .collect();
        Net {
            fc1: Linear::new(3, width, true, &mut r),
            body: Body { blocks },
            head: head.then(|| Linear::new(width, 2, false, &mut r)),
            scale: Tensor::randn(&[width], &mut r).requires_grad(),
            running_mean: Tensor::randn(&[width], &mut r),
            config: Config {
                width,
                name: format!("net {seed}"),
            },
        }
    }
}

impl<T: Element> Module<T> for Net<T> {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        let h = self.body.forward(&self.fc1.forward(x)) * &self.scale - &self.running_mean;
        match &self.head {
            Some(head) => head.forward(&h),
            None => h,
        }
    }
}

#[test]
fn nested_names_follow_pytorch() {
    let net = Net::<f32>::new(4, true, 1);
    let expected = [
        "fc1.weight",
        "fc1.bias",
        "body.blocks.0.attn.weight",
        "body.blocks.0.attn.bias",
        "body.blocks.0.ln.weight",
        "body.blocks.0.ln.bias",
        "body.blocks.1.attn.weight",
        "body.blocks.1.attn.bias",
        "body.blocks.1.ln.weight",
        "body.blocks.1.ln.bias",
        "head.weight",
        "scale",
    ];
    assert_eq!(names(&net), expected);
    // the handles are the layers' own
    let params = net.named_parameters();
    assert_eq!(params[0].1.id(), net.fc1.weight().id());
    assert_eq!(params[6].1.id(), net.body.blocks[1].attn.weight().id());
    assert_eq!(params[10].1.id(), net.head.as_ref().unwrap().weight().id());
    assert_eq!(params[11].1.id(), net.scale.id());
    assert_eq!(net.parameters().len(), expected.len());
    // shapes are the layers'
    assert_eq!(params[2].1.shape(), &[4, 4]);
    assert_eq!(params[10].1.shape(), &[2, 4]);
    // the skipped field is still there, untouched
    assert_eq!(net.config.width, 4);
    assert_eq!(net.config.name, "net 1");
}

#[test]
fn option_none_contributes_nothing() {
    let net = Net::<f32>::new(4, false, 1);
    let n = names(&net);
    assert_eq!(n.len(), 11);
    assert!(!n.iter().any(|n| n.starts_with("head")), "{n:?}");
    assert_eq!(n.last().unwrap(), "scale");
    let x = Tensor::<f32>::ones(&[5, 3]);
    assert_eq!(net.forward(&x).shape(), &[5, 4]);
}

#[test]
fn buffers_are_listed_apart_and_not_trained() {
    let net = Net::<f64>::new(3, true, 2);
    assert_eq!(buffer_names(&net), ["running_mean"]);
    let (_, buf) = &net.named_buffers()[0];
    assert_eq!(buf.id(), net.running_mean.id());
    assert_eq!(buf.to_vec(), net.running_mean.to_vec());
    assert!(!net.parameters().iter().any(|p| p.id() == buf.id()));
    assert!(!names(&net).contains(&"running_mean".to_string()));
    // layers have none
    assert!(buffer_names::<f64>(&net.fc1).is_empty());
}

#[test]
fn save_module_then_load_into_a_fresh_model_restores_everything() -> ferrograd::Result<()> {
    let trained = Net::<f32>::new(4, true, 3);
    let path = TempPath::new("roundtrip");
    save_module(&trained, &path)?;
    let saved = load_safetensors::<f32, _>(&path)?;
    let mut keys: Vec<String> = names(&trained);
    keys.push("running_mean".into());
    keys.sort();
    assert_eq!(saved.keys().cloned().collect::<Vec<_>>(), keys);

    let mut fresh = Net::<f32>::new(4, true, 99);
    assert_ne!(fresh.scale.to_vec(), trained.scale.to_vec());
    let handle = fresh.body.blocks[0].attn.weight().clone(); // e.g. an optimizer's
    let report = load_into(&fresh, &path)?;
    assert!(report.is_complete());
    assert_eq!(report.loaded.len(), 13);
    for ((n, a), (m, b)) in trained
        .named_parameters()
        .iter()
        .chain(&trained.named_buffers())
        .zip(
            fresh
                .named_parameters()
                .iter()
                .chain(&fresh.named_buffers()),
        )
    {
        assert_eq!(n, m);
        assert_eq!(a.to_vec(), b.to_vec(), "{n}");
    }
    assert_eq!(
        handle.to_vec(),
        trained.body.blocks[0].attn.weight().to_vec()
    );
    assert_eq!(fresh.running_mean.to_vec(), trained.running_mean.to_vec());
    // the same function in evaluation mode
    let mut trained = trained;
    trained.set_training(false);
    fresh.set_training(false);
    let x = Tensor::<f32>::randn(&[2, 3], &mut rng(5));
    assert_eq!(fresh.forward(&x).to_vec(), trained.forward(&x).to_vec());
    // still trainable leaves
    let grads = fresh.forward(&x).sum().backward()?;
    assert_eq!(grads.get(&fresh.scale).unwrap().shape(), &[4]);
    Ok(())
}

#[derive(Module)]
struct Inner {
    drop: Dropout,
}

#[derive(Module)]
struct Outer {
    inner: Inner,
    #[module(skip)]
    label: &'static str,
}

impl Module for Outer {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.inner.drop.forward(x)
    }
}

#[test]
fn set_training_reaches_a_dropout_two_levels_down() {
    let mut m = Outer {
        inner: Inner {
            drop: Dropout::new(0.5, 3),
        },
        label: "outer",
    };
    let x = Tensor::<f32>::full(&[256], 3.0);
    assert_eq!(m.training_mode(), Some(true));
    let train = m.forward(&x).to_vec();
    assert!(train.contains(&0.0) && train.contains(&6.0), "{train:?}");
    m.set_training(false);
    assert_eq!(m.training_mode(), Some(false));
    assert!(!m.inner.drop.is_training());
    assert_eq!(m.forward(&x).to_vec(), x.to_vec());
    m.set_training(true);
    assert!(m.forward(&x).to_vec().contains(&0.0));
    assert_eq!(m.label, "outer");

    // and three levels down in Net: evaluation is deterministic and drops nothing
    let mut net = Net::<f32>::new(4, true, 4);
    let x = Tensor::<f32>::randn(&[8, 3], &mut rng(1));
    assert_ne!(net.forward(&x).to_vec(), net.forward(&x).to_vec());
    net.set_training(false);
    assert!(net.body.blocks.iter().all(|b| !b.drop.is_training()));
    assert_eq!(net.training_mode(), Some(false));
    let expected = {
        let mut h = net.fc1.forward(&x);
        for b in &net.body.blocks {
            h = &h + b.ln.forward(&b.attn.forward(&h));
        }
        net.head
            .as_ref()
            .unwrap()
            .forward(&(h * &net.scale - &net.running_mean))
    };
    assert_eq!(net.forward(&x).to_vec(), expected.to_vec());
}

#[test]
fn rng_states_save_and_restore_the_dropout_masks() {
    let net = Net::<f32>::new(4, false, 5);
    let states = net.named_rng_states();
    let names: Vec<&str> = states.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["body.blocks.0.drop", "body.blocks.1.drop"]);
    assert_eq!(states[0].1, RngState::new(50, 0));
    assert_eq!(states[1].1, RngState::new(51, 0));

    let x = Tensor::<f32>::randn(&[16, 3], &mut rng(2));
    net.forward(&x); // one mask each
    let saved = net.named_rng_states();
    assert!(saved.iter().all(|(_, s)| s.draws == 1));
    // as strings, the way a checkpoint's metadata keeps them
    let text: Vec<(String, String)> = saved
        .iter()
        .map(|(n, s)| (n.clone(), s.to_string()))
        .collect();
    assert_eq!(text[1].1, "seed=51,draws=1");
    let outputs: Vec<Vec<f32>> = (0..3).map(|_| net.forward(&x).to_vec()).collect();
    assert_ne!(outputs[0], outputs[1]);

    // restore into the same model, and into a fresh one with other seeds
    let parsed: Vec<(String, RngState)> = text
        .iter()
        .map(|(n, s)| (n.clone(), s.parse().unwrap()))
        .collect();
    assert_eq!(parsed, saved);
    net.load_rng_states(&parsed).unwrap();
    let again: Vec<Vec<f32>> = (0..3).map(|_| net.forward(&x).to_vec()).collect();
    assert_eq!(again, outputs);

    let fresh = Net::<f32>::new(4, false, 77);
    for ((_, a), (_, b)) in net.named_parameters().iter().zip(fresh.named_parameters()) {
        b.assign(a).unwrap();
    }
    fresh.running_mean.assign(&net.running_mean).unwrap();
    fresh.load_rng_states(&parsed).unwrap();
    assert_eq!(fresh.forward(&x).to_vec(), outputs[0]);

    // one by name
    assert!(net.set_named_rng_state("body.blocks.1.drop", RngState::new(9, 4)));
    assert_eq!(net.body.blocks[1].drop.rng_state(), RngState::new(9, 4));
    assert!(!net.set_named_rng_state("body.blocks.2.drop", RngState::new(9, 4)));
    assert!(!net.set_named_rng_state("body.blocks.1", RngState::new(9, 4)));
    assert!(!net.set_named_rng_state("body", RngState::new(9, 4)));

    // names that do not fit: an error naming them, nothing set
    let before = net.named_rng_states();
    let wrong = vec![
        ("body.blocks.0.drop".to_string(), RngState::new(1, 1)),
        ("blocks.1.drop".to_string(), RngState::new(1, 1)),
    ];
    let err = net.load_rng_states(&wrong).unwrap_err().to_string();
    assert!(
        err.contains(r#"missing ["body.blocks.1.drop"], unexpected ["blocks.1.drop"]"#),
        "{err}"
    );
    assert_eq!(net.named_rng_states(), before);
}

#[derive(Module)]
struct Pair<T: Element>(Linear<T>, #[module(skip)] usize, Tensor<T>);

impl<T: Element> Module<T> for Pair<T> {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        self.0.forward(x) + &self.2
    }
}

#[test]
fn tuple_structs_name_fields_by_position() {
    let p = Pair::<f64>(
        Linear::new(2, 3, true, &mut rng(0)),
        7,
        Tensor::zeros(&[3]).requires_grad(),
    );
    assert_eq!(names(&p), ["0.weight", "0.bias", "2"]);
    assert_eq!(p.parameters()[2].id(), p.2.id());
    assert_eq!(p.1, 7);
    assert_eq!(p.forward(&Tensor::zeros(&[1, 2])).shape(), &[1, 3]);
}

/// No type parameter: the element type comes from the fields (`f64` here).
#[derive(Module)]
struct Concrete64 {
    fc: Linear<f64>,
    offset: Tensor<f64>,
}

impl Module<f64> for Concrete64 {
    fn forward(&self, x: &Tensor<f64>) -> Tensor<f64> {
        self.fc.forward(x) + &self.offset
    }
}

/// No type parameter and no element type named: `f32`, the default of `Tensor`.
#[derive(Module)]
struct Concrete32 {
    fc: Linear,
    gain: Tensor,
    drop: Dropout,
}

/// Only a dropout, implemented for `f64` as asked.
#[derive(Module)]
#[module(element = f64)]
struct OnlyDropout {
    drop: Dropout,
}

#[test]
fn concrete_element_types() {
    let c = Concrete64 {
        fc: Linear::from_tensors(Tensor::<f64>::eye(2), None).unwrap(),
        offset: Tensor::from_vec(vec![0.5, -0.5], &[2]).unwrap(),
    };
    assert_eq!(names::<f64>(&c), ["fc.weight", "offset"]);
    let y = c.forward(&Tensor::from_vec(vec![1.0, 2.0], &[1, 2]).unwrap());
    assert_eq!(y.to_vec(), vec![1.5, 1.5]);

    let mut c = Concrete32 {
        fc: Linear::new(2, 2, true, &mut rng(0)),
        gain: Tensor::ones(&[2]),
        drop: Dropout::new(0.1, 0),
    };
    assert_eq!(names::<f32>(&c), ["fc.weight", "fc.bias", "gain"]);
    c.set_training(false);
    assert_eq!(c.training_mode(), Some(false));
    assert!(!c.drop.is_training());

    let mut d = OnlyDropout {
        drop: Dropout::new(0.5, 1),
    };
    assert!(names::<f64>(&d).is_empty());
    ModuleParams::<f64>::set_training(&mut d, false);
    assert!(!d.drop.is_training());
    assert_eq!(
        d.named_rng_states(),
        [("drop".to_string(), RngState::new(1, 0))]
    );
}

/// A generic wrapper: any module inside, with a residual connection
/// (`PhantomData` needs no `skip`).
#[derive(Module)]
struct Residual<T: Element, M> {
    inner: M,
    _element: std::marker::PhantomData<T>,
}

impl<T: Element, M: Module<T>> Module<T> for Residual<T, M> {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        x + self.inner.forward(x)
    }
}

#[test]
fn generic_module_parameters_are_bounded() {
    let r = Residual::<f64, _> {
        inner: Linear::from_tensors(Tensor::<f64>::eye(2), None).unwrap(),
        _element: std::marker::PhantomData,
    };
    assert_eq!(names(&r), ["inner.weight"]);
    let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[1, 2]).unwrap();
    assert_eq!(r.forward(&x).to_vec(), vec![2.0, 4.0]);
    // nested in itself
    let rr = Residual::<f64, _> {
        inner: r,
        _element: std::marker::PhantomData,
    };
    assert_eq!(names(&rr), ["inner.inner.weight"]);
}

/// A module with a mode of its own: adds noise only in training.
#[derive(Module)]
struct Noisy<T: Element> {
    fc: Linear<T>,
    #[module(training)]
    training: bool,
}

impl<T: Element> Module<T> for Noisy<T> {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        let y = self.fc.forward(x);
        if self.training {
            &y + Tensor::ones_like(&y)
        } else {
            y
        }
    }
}

/// Collections and boxes of every kind, nested.
#[derive(Module)]
struct Zoo<T: Element = f32> {
    #[module(flatten)]
    first: Linear<T>,
    layers: Vec<Option<Linear<T>>>,
    pair: [Linear<T>; 2],
    boxed: Box<Linear<T>>,
    dynamic: Option<BoxedModule<T>>,
    seq: Sequential<T>,
    tensors: Vec<Tensor<T>>,
    #[module(buffer)]
    stats: Option<Vec<Tensor<T>>>,
    #[module(buffer)]
    no_stats: Option<Tensor<T>>,
    noisy: Vec<Noisy<T>>,
}

#[test]
fn collections_boxes_and_flatten_nest() {
    let mut r = rng(0);
    let mut lin = |i, o, b| Linear::<f32>::new(i, o, b, &mut r);
    let mut zoo = Zoo::<f32> {
        first: lin(1, 1, false),
        layers: vec![Some(lin(2, 2, false)), None, Some(lin(2, 2, true))],
        pair: [lin(1, 1, false), lin(1, 1, false)],
        boxed: Box::new(lin(1, 1, false)),
        dynamic: Some(Box::new(Sequential::new().with(lin(1, 1, false)))),
        seq: Sequential::new()
            .with(Activation::Relu)
            .with(Dropout::new(0.5, 8))
            .with(lin(1, 1, false)),
        tensors: vec![Tensor::zeros(&[1]), Tensor::ones(&[2])],
        stats: Some(vec![Tensor::zeros(&[3]), Tensor::ones(&[3])]),
        no_stats: None,
        noisy: vec![Noisy {
            fc: Linear::from_tensors(Tensor::<f32>::eye(1), None).unwrap(),
            training: true,
        }],
    };
    assert_eq!(
        names(&zoo),
        [
            "weight",
            "layers.0.weight",
            "layers.2.weight",
            "layers.2.bias",
            "pair.0.weight",
            "pair.1.weight",
            "boxed.weight",
            "dynamic.0.weight",
            "seq.2.weight",
            "tensors.0",
            "tensors.1",
            "noisy.0.fc.weight",
        ]
    );
    assert_eq!(buffer_names(&zoo), ["stats.0", "stats.1"]);
    assert_eq!(zoo.named_buffers()[1].1.to_vec(), vec![1.0; 3]);
    assert_eq!(
        zoo.named_rng_states(),
        [("seq.1".to_string(), RngState::new(8, 0))]
    );
    assert_eq!(zoo.training_mode(), Some(true));
    let x = Tensor::<f32>::full(&[1, 1], 2.0);
    assert_eq!(zoo.noisy[0].forward(&x).to_vec(), vec![3.0]);
    zoo.set_training(false);
    assert_eq!(zoo.training_mode(), Some(false));
    assert!(!zoo.noisy[0].training);
    assert_eq!(zoo.noisy[0].training_mode(), Some(false));
    assert_eq!(zoo.noisy[0].forward(&x).to_vec(), vec![2.0]);
    // a Sequential inside a derived struct passes the mode on too
    let y = zoo.seq.forward(&Tensor::full(&[1, 1], 1.0));
    let w = zoo.seq.parameters()[0].to_vec()[0];
    assert_eq!(y.to_vec(), vec![w]);
}

#[test]
fn modules_without_a_mode_report_none() {
    let mut fc = Linear::<f32>::new(2, 2, true, &mut rng(0));
    assert_eq!(fc.training_mode(), None);
    fc.set_training(false);
    assert_eq!(fc.training_mode(), None);
    let pair = Pair::<f32>(fc, 0, Tensor::zeros(&[2]));
    assert_eq!(pair.training_mode(), None);
    assert!(pair.named_rng_states().is_empty());
}

#[test]
fn built_in_layers_keep_their_names() {
    let mut r = rng(0);
    let mlp = ferrograd::nn::Mlp::<f32>::new(&[2, 3, 1], Activation::Tanh, &mut r);
    assert_eq!(names(&mlp), ["0.weight", "0.bias", "1.weight", "1.bias"]);
    assert_eq!(names(&LayerNorm::<f32>::new(3, 1e-5)), ["weight", "bias"]);
    assert_eq!(
        names(&ferrograd::nn::Embedding::<f32>::new(3, 2, &mut r)),
        ["weight"]
    );
    assert_eq!(names(&Linear::<f32>::new(2, 2, false, &mut r)), ["weight"]);
    let seq = Sequential::<f32>::new()
        .with(Linear::new(2, 2, true, &mut r))
        .with(Dropout::new(0.1, 4))
        .with(mlp);
    assert_eq!(
        names(&seq),
        [
            "0.weight",
            "0.bias",
            "2.0.weight",
            "2.0.bias",
            "2.1.weight",
            "2.1.bias"
        ]
    );
    assert_eq!(
        seq.named_rng_states(),
        [("1".to_string(), RngState::new(4, 0))]
    );
    // through a trait object
    let boxed: Box<dyn Module<f32>> = Box::new(seq);
    assert_eq!(boxed.parameters().len(), 6);
    assert_eq!(boxed.training_mode(), Some(true));
}
