//! The losses used from outside the crate, as a training loop would: the seed
//! example, gradchecks through the public API with respect to every tensor
//! argument, errors instead of panics, and small models that learn.

use ferrograd::data::{gather_rows, Batches};
use ferrograd::gradcheck::gradcheck;
use ferrograd::loss::{self, per_sample, CrossEntropyOptions};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{Error, Tensor};

fn t(values: &[f64], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(values.to_vec(), shape).unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn seed_example() {
    // output [0.6, 0.4] against target [1, 0]: |1 − 0.6| + |0 − 0.4| = 0.8, mean 0.4
    let out = Tensor::<f32>::from_vec(vec![0.6, 0.4], &[2]).unwrap();
    let target = Tensor::<f32>::from_vec(vec![1.0, 0.0], &[2]).unwrap();
    let total = per_sample::l1(&out, &target).unwrap().sum().item();
    assert!((total - 0.8).abs() < 1e-6, "{total}");
    let mean = loss::l1(&out, &target).unwrap().item();
    assert!((mean - 0.4).abs() < 1e-6, "{mean}");
    // its gradient: d|o − t|/do = sign(o − t) = [−1, 1]
    let out = out.requires_grad();
    let g = per_sample::l1(&out, &target)
        .unwrap()
        .sum()
        .backward()
        .unwrap();
    assert_eq!(g.get(&out).unwrap().to_vec(), vec![-1.0, 1.0]);
}

/// Every loss, with respect to every tensor argument, through the public gradcheck.
#[test]
fn gradcheck_every_loss_and_argument() {
    let mut rng = StdRng::seed_from_u64(5);
    let leaf = |shape: &[usize], lo: f64, hi: f64, rng: &mut StdRng| {
        Tensor::<f64>::rand_uniform(shape, lo, hi, rng).requires_grad()
    };
    let pred = leaf(&[3, 4], -1.0, 1.0, &mut rng);
    // keep |pred − target| ≥ 0.05 and away from huber's delta (0.5) to avoid kinks
    let target = leaf(&[3, 4], -1.0, 1.0, &mut rng);
    let safe: Vec<f64> = pred
        .to_vec()
        .iter()
        .zip(target.to_vec())
        .map(|(p, t)| {
            let d = p - t;
            if d.abs() < 0.05 || (d.abs() - 0.5).abs() < 0.05 {
                t + 0.2
            } else {
                t
            }
        })
        .collect();
    let target = t(&safe, &[3, 4]).requires_grad();
    let probs = leaf(&[3, 4], 0.05, 0.95, &mut rng);
    let soft = leaf(&[3, 4], 0.0, 1.0, &mut rng);
    let logits = leaf(&[3, 4], -3.0, 3.0, &mut rng);
    let dist = leaf(&[3, 4], 0.1, 1.0, &mut rng);
    let classes = [3, 0, 3];

    type Case = (&'static str, fn(&[Tensor<f64>]) -> Tensor<f64>, usize);
    let cases: [Case; 14] = [
        ("mse", |x| loss::mse(&x[0], &x[1]).unwrap(), 0),
        ("l1", |x| loss::l1(&x[0], &x[1]).unwrap(), 0),
        ("huber", |x| loss::huber(&x[0], &x[1], 0.5).unwrap(), 0),
        ("bce", |x| loss::bce(&x[0], &x[1]).unwrap(), 1),
        (
            "bce_with_logits",
            |x| loss::bce_with_logits(&x[0], &x[1]).unwrap(),
            2,
        ),
        ("kl_div", |x| loss::kl_div(&x[0], &x[1]).unwrap(), 3),
        (
            "per_sample::mse",
            |x| per_sample::mse(&x[0], &x[1]).unwrap(),
            0,
        ),
        (
            "per_sample::l1",
            |x| per_sample::l1(&x[0], &x[1]).unwrap(),
            0,
        ),
        (
            "per_sample::huber",
            |x| per_sample::huber(&x[0], &x[1], 0.5).unwrap(),
            0,
        ),
        (
            "per_sample::bce",
            |x| per_sample::bce(&x[0], &x[1]).unwrap(),
            1,
        ),
        (
            "per_sample::bce_with_logits",
            |x| per_sample::bce_with_logits(&x[0], &x[1]).unwrap(),
            2,
        ),
        (
            "per_sample::kl_div",
            |x| per_sample::kl_div(&x[0], &x[1]).unwrap(),
            3,
        ),
        (
            "cross_entropy",
            |x| loss::cross_entropy(&x[0], &[3, 0, 3]).unwrap(),
            4,
        ),
        (
            "nll",
            |x| loss::nll(&x[0].log_softmax(1), &[3, 0, 3]).unwrap(),
            4,
        ),
    ];
    let inputs: [Vec<Tensor<f64>>; 5] = [
        vec![pred, target],
        vec![probs, soft.clone()],
        vec![logits.clone(), soft],
        vec![logits.log_softmax(1).detach().requires_grad(), dist],
        vec![logits],
    ];
    for (name, f, which) in cases {
        let report = gradcheck(f, &inputs[which]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(report.inputs_checked, inputs[which].len(), "{name}");
    }
    // and the per-row forms, with the options
    let opts = CrossEntropyOptions {
        label_smoothing: 0.25,
        ignore_index: Some(0),
    };
    let x = &inputs[4];
    gradcheck(|x| per_sample::cross_entropy(&x[0], &classes).unwrap(), x).unwrap();
    gradcheck(
        |x| per_sample::cross_entropy_with(&x[0], &classes, opts).unwrap(),
        x,
    )
    .unwrap();
    gradcheck(
        |x| loss::cross_entropy_with(&x[0], &classes, opts).unwrap(),
        x,
    )
    .unwrap();
    gradcheck(|x| per_sample::nll(&x[0], &classes).unwrap(), x).unwrap();
}

#[test]
fn losses_are_0d_and_generic() {
    let a = Tensor::<f32>::from_vec(vec![0.2, 0.7, 0.9, 0.1], &[2, 2]).unwrap();
    let b = Tensor::<f32>::from_vec(vec![0.0, 1.0, 1.0, 0.0], &[2, 2]).unwrap();
    let all: [Tensor<f32>; 9] = [
        loss::mse(&a, &b).unwrap(),
        loss::l1(&a, &b).unwrap(),
        loss::huber(&a, &b, 1.0).unwrap(),
        loss::cross_entropy(&a, &[1, 0]).unwrap(),
        loss::cross_entropy_with(&a, &[1, 0], CrossEntropyOptions::default()).unwrap(),
        loss::nll(&a.log_softmax(1), &[1, 0]).unwrap(),
        loss::bce(&a, &b).unwrap(),
        loss::bce_with_logits(&a, &b).unwrap(),
        loss::kl_div(&a.log_softmax(1), &b).unwrap(),
    ];
    for l in &all {
        assert_eq!(l.shape(), &[] as &[usize]);
        assert!(l.item().is_finite());
    }
    // f32 and f64 agree
    let a64 = t(&[0.2, 0.7, 0.9, 0.1], &[2, 2]);
    let b64 = t(&[0.0, 1.0, 1.0, 0.0], &[2, 2]);
    let bce64 = loss::bce(&a64, &b64).unwrap().item();
    assert!(close(all[6].item() as f64, bce64, 1e-6));
    // −(log 0.8 + log 0.7 + log 0.9 + log 0.9) / 4
    let expected = -(0.8f64.ln() + 0.7f64.ln() + 0.9f64.ln() + 0.9f64.ln()) / 4.0;
    assert!(close(bce64, expected, 1e-14));
}

#[test]
fn cross_entropy_matches_log_softmax_by_hand() {
    // logits [2, 1, 0.1] (a textbook example): softmax ≈ [0.659, 0.242, 0.099]
    let logits = t(&[2.0, 1.0, 0.1], &[1, 3]);
    let z: f64 = [2.0f64, 1.0, 0.1].iter().map(|v| v.exp()).sum();
    for (class, logit) in [(0, 2.0), (1, 1.0), (2, 0.1)] {
        let expected = z.ln() - logit; // −log(e^logit / z)
        let got = loss::cross_entropy(&logits, &[class]).unwrap().item();
        assert!(close(got, expected, 1e-14), "{class}: {got} vs {expected}");
    }
    assert!(close(
        loss::cross_entropy(&logits, &[0]).unwrap().item(),
        0.4170300162778335,
        1e-12
    ));
}

#[test]
fn errors_not_panics() {
    let x = Tensor::<f32>::zeros(&[4, 3]);
    assert!(matches!(
        loss::cross_entropy(&x, &[0, 1, 2, 3]),
        Err(Error::IndexOutOfRange {
            index: 3,
            size: 3,
            ..
        })
    ));
    assert!(matches!(
        loss::cross_entropy(&x, &[0, 1]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        loss::nll(&x.flatten(), &[0]),
        Err(Error::InvalidArgument { .. })
    ));
    // [N] predictions against [N, 1] targets would broadcast to [N, N]: refused
    let pred = Tensor::<f32>::zeros(&[4]);
    let target = Tensor::<f32>::zeros(&[4, 1]);
    match loss::mse(&pred, &target) {
        Err(Error::ShapeMismatch { op, lhs, rhs }) => {
            assert_eq!((op, lhs, rhs), ("mse", vec![4], vec![4, 1]));
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    assert!(loss::bce(&Tensor::<f32>::full(&[2], 1.5), &Tensor::zeros(&[2])).is_err());
    assert!(loss::huber(&pred, &pred, 0.0f32).is_err());
}

#[test]
fn logistic_regression_learns_with_bce_with_logits() {
    // labels from a hidden linear rule; full-batch gradient descent
    let mut rng = StdRng::seed_from_u64(11);
    let x = Tensor::<f64>::randn(&[64, 2], &mut rng);
    let labels: Vec<f64> = x
        .to_vec()
        .chunks(2)
        .map(|r| if 2.0 * r[0] - r[1] > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let y = Tensor::from_vec(labels.clone(), &[64, 1]).unwrap();
    let w = Tensor::<f64>::zeros(&[2, 1]).requires_grad();
    let b = Tensor::<f64>::zeros(&[1]).requires_grad();
    let first = loss::bce_with_logits(&(x.matmul(&w) + &b), &y)
        .unwrap()
        .item();
    assert!(close(first, 2f64.ln(), 1e-12)); // zero logits: log 2
    for _ in 0..200 {
        let l = loss::bce_with_logits(&(x.matmul(&w) + &b), &y).unwrap();
        let g = l.backward().unwrap();
        for p in [&w, &b] {
            p.assign(&(p - g.get(p).unwrap() * 1.0)).unwrap();
        }
    }
    let logits = (x.matmul(&w) + &b).to_vec();
    let correct = logits
        .iter()
        .zip(&labels)
        .filter(|(z, y)| (**z > 0.0) == (**y == 1.0))
        .count();
    assert!(correct >= 62, "{correct}/64");
    // bce on the sigmoid gives the same loss
    let z = x.matmul(&w) + &b;
    assert!(close(
        loss::bce(&z.sigmoid(), &y).unwrap().item(),
        loss::bce_with_logits(&z, &y).unwrap().item(),
        1e-10
    ));
}

#[test]
fn softmax_classifier_learns_with_minibatches() {
    // three Gaussian blobs, a linear softmax classifier, shuffled mini-batches
    let mut rng = StdRng::seed_from_u64(3);
    let centers = [[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]];
    let n = 90;
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let noise = Tensor::<f32>::randn(&[n, 2], &mut rng).to_vec();
    let data: Vec<f32> = (0..n)
        .flat_map(|i| {
            let c = centers[labels[i]];
            [c[0] + 0.5 * noise[2 * i], c[1] + 0.5 * noise[2 * i + 1]]
        })
        .collect();
    let x = Tensor::from_vec(data, &[n, 2]).unwrap();
    let w = Tensor::<f32>::zeros(&[2, 3]).requires_grad();
    let b = Tensor::<f32>::zeros(&[3]).requires_grad();
    let opts = CrossEntropyOptions {
        label_smoothing: 0.05,
        ignore_index: None,
    };
    for _epoch in 0..15 {
        for batch in Batches::new(n, 16).shuffle(&mut rng) {
            let xb = gather_rows(&x, &batch);
            let yb: Vec<usize> = batch.iter().map(|&i| labels[i]).collect();
            let l = loss::cross_entropy_with(&(xb.matmul(&w) + &b), &yb, opts).unwrap();
            let g = l.backward().unwrap();
            for p in [&w, &b] {
                p.assign(&(p - g.get(p).unwrap() * 0.5)).unwrap();
            }
        }
    }
    let pred = (x.matmul(&w) + &b).argmax(1).to_vec();
    let correct = pred
        .iter()
        .zip(&labels)
        .filter(|(p, y)| **p as usize == **y)
        .count();
    assert!(correct >= 85, "{correct}/{n}");
    let l = loss::cross_entropy(&(x.matmul(&w) + &b), &labels)
        .unwrap()
        .item();
    assert!(l < 0.3, "{l}");
}
