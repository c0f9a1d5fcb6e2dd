//! `Gradients::accumulate` and `scale`: micro-batching gives the full batch's
//! gradient, and recorded gradients stay differentiable.

use ferrograd::loss::cross_entropy;
use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::rand::{rngs::StdRng, RngExt, SeedableRng};
use ferrograd::{grad, GradOptions, Gradients, Tensor};

#[test]
fn four_micro_batches_give_the_full_batch_gradient() {
    let mut rng = StdRng::seed_from_u64(11);
    let model = Mlp::<f64>::new(&[3, 16, 4], Activation::Relu, &mut rng);
    let x = Tensor::<f64>::randn(&[32, 3], &mut rng);
    let y: Vec<usize> = (0..32).map(|_| rng.random_range(0..4)).collect();
    let full = cross_entropy(&model.forward(&x), &y)
        .unwrap()
        .backward()
        .unwrap();
    let mut acc = Gradients::new();
    for k in 0..4 {
        let xb = x.narrow(0, 8 * k, 8);
        let loss = cross_entropy(&model.forward(&xb), &y[8 * k..8 * k + 8]).unwrap();
        acc += loss.backward().unwrap();
    }
    acc *= 0.25;
    assert_eq!(acc.len(), full.len());
    for p in model.parameters() {
        let (a, f) = (
            acc.get(&p).unwrap().to_vec(),
            full.get(&p).unwrap().to_vec(),
        );
        for (a, f) in a.iter().zip(&f) {
            assert!((a - f).abs() <= 1e-12 * f.abs().max(1.0), "{a} vs {f}");
        }
    }
}

#[test]
fn leaves_in_either_set_are_kept_and_the_other_set_is_untouched() {
    let a = Tensor::<f32>::from_vec(vec![1.0, 2.0], &[2])
        .unwrap()
        .requires_grad();
    let b = Tensor::<f32>::scalar(3.0).requires_grad();
    let mut first = (&a * 2.0).sum().backward().unwrap(); // a: (2, 2)
    let second = (&a * &b).sum().backward().unwrap(); // a: (3, 3), b: 3
    let seen = first.get(&a).unwrap().clone();
    first.accumulate(&second);
    assert_eq!(first.get(&a).unwrap().to_vec(), vec![5.0, 5.0]);
    assert_eq!(first.get(&b).unwrap().item(), 3.0);
    assert_eq!(seen.to_vec(), vec![5.0, 5.0], "summed in place");
    // the other set keeps its own values and buffers
    assert_eq!(second.get(&a).unwrap().to_vec(), vec![3.0, 3.0]);
    first.scale(2.0);
    assert_eq!(first.get(&b).unwrap().item(), 6.0);
    assert_eq!(
        second.get(&b).unwrap().item(),
        3.0,
        "b was copied, not shared"
    );
}

#[test]
fn recorded_gradients_stay_differentiable() {
    // d/dx of x³ recorded, accumulated twice and scaled: 2·½·3x² = 3x²; its
    // derivative 6x
    let x = Tensor::<f64>::scalar(2.0).requires_grad();
    let recorded = GradOptions {
        create_graph: true,
        ..Default::default()
    };
    let mut acc = Gradients::new();
    for _ in 0..2 {
        let g = grad(&x.powi(3), &[&x], recorded.clone()).unwrap().remove(0);
        let mut one = Gradients::new();
        one.insert(&x, g);
        acc.accumulate(&one);
    }
    acc.scale(0.5);
    let g = acc.get(&x).unwrap();
    assert_eq!(g.item(), 12.0);
    assert!(g.needs_grad());
    assert_eq!(
        grad(g, &[&x], GradOptions::default()).unwrap()[0].item(),
        12.0
    );
}
