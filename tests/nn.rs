//! `ferrograd::nn` used from outside the crate, through its public API only.

use std::sync::Arc;

use ferrograd::gradcheck::gradcheck;
use ferrograd::nn::functional::layer_norm;
use ferrograd::nn::init::{
    calculate_gain, kaiming_uniform, xavier_normal, xavier_uniform, FanMode, Nonlinearity,
};
use ferrograd::nn::{
    Activation, BoxedModule, Dropout, Embedding, LayerNorm, Linear, Mlp, Module, Sequential,
};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{Error, Tensor};

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn leaf(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::rand_uniform(shape, -1.0, 1.0, &mut rng(seed)).requires_grad()
}

fn names<T: ferrograd::Element>(m: &impl Module<T>) -> Vec<String> {
    m.named_parameters().into_iter().map(|(n, _)| n).collect()
}

/// Plain gradient descent on every parameter, in place.
fn sgd_step<T: ferrograd::Element>(m: &impl Module<T>, loss: &Tensor<T>, lr: T) {
    let grads = loss.backward().unwrap();
    for p in m.parameters() {
        let g = grads
            .get(&p)
            .expect("every parameter takes part in the loss");
        p.assign(&(&p - g * lr)).unwrap();
    }
}

#[test]
fn mlp_learns_xor_with_plain_gradient_descent() {
    let x = Tensor::<f32>::from_vec(vec![0., 0., 0., 1., 1., 0., 1., 1.], &[4, 2]).unwrap();
    let y = Tensor::<f32>::from_vec(vec![0., 1., 1., 0.], &[4, 1]).unwrap();
    let mlp: Mlp = Mlp::new(&[2, 8, 1], Activation::Tanh, &mut rng(0));
    let loss_of = |m: &Mlp| (m.forward(&x) - &y).square().mean();
    let first = loss_of(&mlp).item();
    for _ in 0..1000 {
        let loss = loss_of(&mlp);
        sgd_step(&mlp, &loss, 0.2);
    }
    let last = loss_of(&mlp).item();
    assert!(last < 1e-3, "loss {first} -> {last}");
    let pred = mlp.forward(&x).to_vec();
    for (p, t) in pred.iter().zip([0., 1., 1., 0.]) {
        assert!((p - t).abs() < 0.1, "predictions {pred:?}");
    }
}

#[test]
fn sequential_of_embedding_layer_norm_and_linear_trains() {
    // a tiny next-token table: id i -> class (i + 1) % 4, fitted with a squared error
    let mut r = rng(1);
    let emb: Embedding = Embedding::new(4, 8, &mut r);
    let net = Sequential::new()
        .with(LayerNorm::with_default_eps(8))
        .with(Linear::new(8, 16, true, &mut r))
        .with(Activation::Relu)
        .with(Linear::new(16, 4, true, &mut r));
    let ids = [0usize, 1, 2, 3, 2, 1];
    let target = Tensor::<f32>::eye(4).index_select(0, &[1, 2, 3, 0, 3, 2]);
    let loss_of = || {
        let h = emb.forward_ids(&ids, &[6]);
        (net.forward(&h) - &target).square().mean()
    };
    let first = loss_of().item();
    for _ in 0..200 {
        let loss = loss_of();
        let grads = loss.backward().unwrap();
        for p in net.parameters().iter().chain(emb.parameters().iter()) {
            p.assign(&(p - grads.get(p).unwrap() * 0.5)).unwrap();
        }
    }
    let last = loss_of().item();
    assert!(last < 0.1 * first, "loss {first} -> {last}");
    let pred = net
        .forward(&emb.forward_ids(&ids, &[6]))
        .argmax(-1)
        .to_vec();
    assert_eq!(pred, vec![1., 2., 3., 0., 3., 2.]);
}

#[test]
fn named_parameters_names_and_order() {
    let mut r = rng(2);
    let mlp = Mlp::<f32>::new(&[3, 5, 4, 2], Activation::Relu, &mut r);
    assert_eq!(
        names(&mlp),
        ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    );
    let shapes: Vec<Vec<usize>> = mlp
        .parameters()
        .iter()
        .map(|p| p.shape().to_vec())
        .collect();
    assert_eq!(
        shapes,
        [
            vec![5, 3],
            vec![5],
            vec![4, 5],
            vec![4],
            vec![2, 4],
            vec![2]
        ]
    );

    let boxed: BoxedModule = Box::new(LayerNorm::with_default_eps(2));
    let seq = Sequential::new()
        .with(Linear::new(3, 4, true, &mut r))
        .with(Activation::Gelu)
        .with(Dropout::new(0.1, 0))
        .with(Linear::new(4, 2, false, &mut r))
        .with(boxed)
        .with(Sequential::new().with(Embedding::new(5, 2, &mut r)));
    assert_eq!(
        names(&seq),
        [
            "0.weight",
            "0.bias",
            "3.weight",
            "4.weight",
            "4.bias",
            "5.0.weight"
        ]
    );
    assert_eq!(
        names(&Linear::<f64>::new(2, 2, true, &mut r)),
        ["weight", "bias"]
    );
    assert_eq!(names(&Embedding::<f64>::new(2, 2, &mut r)), ["weight"]);
    assert_eq!(names(&LayerNorm::<f64>::new(2, 1e-5)), ["weight", "bias"]);
    assert!(names::<f32>(&Activation::Relu).is_empty());
    assert!(names::<f32>(&Dropout::new(0.5, 0)).is_empty());
    // every parameter is a leaf that asks for a gradient, and the handles are the module's
    for p in seq.parameters() {
        assert!(p.is_leaf() && p.needs_grad());
    }
    // the handles share the module's buffers: an update through one is seen by the module
    seq.parameters()[2].assign(&Tensor::zeros(&[2, 4])).unwrap();
    assert_eq!(seq.named_parameters()[2].1.to_vec(), vec![0.0; 8]);
}

#[test]
fn set_training_passes_through_sequential() {
    let mut r = rng(3);
    let fc = Linear::<f32>::new(6, 6, true, &mut r);
    let w = fc.weight().clone();
    let mut net = Sequential::new().with(fc).with(Dropout::new(0.5, 9));
    let x = Tensor::<f32>::randn(&[32, 6], &mut r);
    let plain = x.matmul(&w.t()) + net.parameters()[1].clone();
    let train = net.forward(&x).to_vec();
    assert!(train.contains(&0.0), "dropout active in training");
    net.set_training(false);
    let eval = net.forward(&x).to_vec();
    for (a, b) in eval.iter().zip(plain.to_vec()) {
        assert!((a - b).abs() < 1e-6);
    }
    assert_eq!(
        net.forward(&x).to_vec(),
        eval,
        "deterministic in evaluation"
    );
    net.set_training(true);
    assert_ne!(net.forward(&x).to_vec(), eval);
}

#[test]
fn dropout_reproducible_and_scaled() {
    let x = Tensor::<f64>::ones(&[50, 200]);
    let a = Dropout::new(0.4, 123);
    let y = a.forward(&x).to_vec();
    assert_eq!(y, Dropout::new(0.4, 123).forward(&x).to_vec());
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.6).abs() < 1e-12));
    let frac = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    assert!((frac - 0.4).abs() < 0.02, "fraction zeroed {frac}");
    let mut b = Dropout::new(0.4, 123);
    b.set_training(false);
    assert_eq!(b.forward(&x).to_vec(), x.to_vec());
    assert!(matches!(
        Dropout::try_new(2.0, 0),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn gradchecks_through_the_public_api() {
    // Linear on 1-D, 2-D and 3-D inputs, w.r.t. input, weight and bias
    for shape in [vec![3], vec![4, 3], vec![2, 2, 3]] {
        let inputs = [leaf(&shape, 1), leaf(&[2, 3], 2), leaf(&[2], 3)];
        gradcheck(
            |t| {
                Linear::from_tensors(t[1].clone(), Some(t[2].clone()))
                    .unwrap()
                    .forward(&t[0])
            },
            &inputs,
        )
        .unwrap();
    }
    // Mlp, all parameters
    let inputs = [
        leaf(&[2, 2, 3], 4),
        leaf(&[4, 3], 5),
        leaf(&[4], 6),
        leaf(&[2, 4], 7),
        leaf(&[2], 8),
    ];
    gradcheck(
        |t| {
            let l0 = Linear::from_tensors(t[1].clone(), Some(t[2].clone())).unwrap();
            let l1 = Linear::from_tensors(t[3].clone(), Some(t[4].clone())).unwrap();
            Mlp::from_layers(vec![l0, l1], Activation::Tanh)
                .unwrap()
                .forward(&t[0])
        },
        &inputs,
    )
    .unwrap();
    // layer_norm, w.r.t. input, weight and bias, on several shapes
    for shape in [vec![5], vec![3, 4], vec![2, 3, 4]] {
        let d = *shape.last().unwrap();
        let inputs = [leaf(&shape, 9), leaf(&[d], 10), leaf(&[d], 11)];
        gradcheck(
            |t| layer_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5),
            &inputs,
        )
        .unwrap();
    }
    // Embedding with repeated ids
    gradcheck(
        |t| {
            Embedding::from_weight(t[0].clone())
                .unwrap()
                .forward_ids(&[2, 2, 0, 2, 1, 0], &[2, 3])
                .sin()
        },
        &[leaf(&[4, 3], 12)],
    )
    .unwrap();
}

#[test]
fn layer_norm_module_matches_a_hand_computed_example() {
    let ln = LayerNorm::<f64>::new(3, 0.0);
    let x = Tensor::<f64>::from_vec(vec![2., 4., 6.], &[1, 3]).unwrap();
    // mean 4, biased variance 8/3
    let s = (8.0f64 / 3.0).sqrt();
    let y = ln.forward(&x).to_vec();
    for (a, b) in y.iter().zip([-2. / s, 0., 2. / s]) {
        assert!((a - b).abs() < 1e-12, "{y:?}");
    }
    let err = ln.try_forward(&Tensor::zeros(&[2, 4])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layer_norm: incompatible shapes [2, 4] and [3]"
    );
}

#[test]
fn embedding_ids_as_usize_and_as_floats() {
    let emb = Embedding::<f32>::new(6, 3, &mut rng(4));
    let a = emb.forward_ids(&[5, 0, 5], &[1, 3]);
    assert_eq!(a.shape(), &[1, 3, 3]);
    let ids = Tensor::<f32>::from_vec(vec![5., 0., 5.], &[1, 3]).unwrap();
    assert_eq!(emb.forward(&ids).to_vec(), a.to_vec());
    let err = emb.try_forward_ids(&[6], &[1]).unwrap_err();
    assert!(matches!(
        err,
        Error::IndexOutOfRange {
            index: 6,
            size: 6,
            ..
        }
    ));
    let result = std::panic::catch_unwind(|| emb.forward_ids(&[1, 8], &[2]));
    let msg = *result.unwrap_err().downcast::<String>().unwrap();
    assert_eq!(
        msg,
        "embedding: index 8 is out of range for an axis of size 6 (shape [6, 3])"
    );
}

#[test]
fn init_statistics_and_reproducibility() {
    let draw = |seed| xavier_uniform::<f32, _>(&[64, 32], 1.0, &mut rng(seed)).to_vec();
    assert_eq!(draw(5), draw(5));
    assert_ne!(draw(5), draw(6));
    let bound = (6.0f32 / 96.0).sqrt();
    assert!(draw(5).iter().all(|v| v.abs() <= bound));

    let w = xavier_normal::<f64, _>(&[300, 200], 1.0, &mut rng(7)).to_vec();
    let std = (w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64).sqrt();
    assert!(
        (std / (2.0f64 / 500.0).sqrt() - 1.0).abs() < 0.01,
        "std {std}"
    );

    let gain = calculate_gain(Nonlinearity::Relu);
    let w = kaiming_uniform::<f64, _>(&[256, 128], gain, FanMode::FanIn, &mut rng(8)).to_vec();
    let b = gain * (3.0f64 / 128.0).sqrt();
    let max = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(max <= b && max > 0.99 * b);

    // initialise a layer in place
    let fc = Linear::<f32>::new(32, 64, true, &mut rng(9));
    let new = xavier_uniform(fc.weight().shape(), 1.0, &mut rng(5));
    fc.weight().assign(&new).unwrap();
    assert_eq!(fc.weight().to_vec(), draw(5));
}

#[test]
fn modules_are_shared_across_threads() {
    let mlp: Arc<Mlp<f64>> = Arc::new(Mlp::new(&[3, 4, 1], Activation::Silu, &mut rng(10)));
    let x = Tensor::<f64>::ones(&[2, 3]);
    let here = mlp.forward(&x).to_vec();
    let there = {
        let (mlp, x) = (Arc::clone(&mlp), x.clone());
        std::thread::spawn(move || mlp.forward(&x).to_vec())
            .join()
            .unwrap()
    };
    assert_eq!(here, there);
}
