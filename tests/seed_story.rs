//! The seed's numbers, reproduced with the public API, chapter by chapter: one
//! sample's L1 loss (0.8 summed over the outputs, 0.4 as a mean), what its
//! gradient says, the average loss over three samples (0.2, 0.5, 0.1), and one
//! gradient-descent step (0.17 − 0.01 × 200 = −1.83).

use ferrograd::data::{gather_rows, Batches};
use ferrograd::gradcheck::gradcheck;
use ferrograd::loss::{self, per_sample};
use ferrograd::optim::{Optimizer, Sgd, SgdConfig};
use ferrograd::{Error, Tensor};

fn t(values: &[f64], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(values.to_vec(), shape).expect("values match the shape")
}

fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-12,
        "{actual} is not {expected}"
    );
}

/// Output (0.6, 0.4) against target (1, 0): |1 − 0.6| + |0 − 0.4| = 0.8.
#[test]
fn one_sample_l1_loss_summed_is_0_8_and_its_mean_is_0_4() -> Result<(), Error> {
    let out = t(&[0.6, 0.4], &[2]);
    let target = t(&[1.0, 0.0], &[2]);
    let per_output = per_sample::l1(&out, &target)?;
    assert_eq!(per_output.shape(), &[2]);
    let v = per_output.to_vec();
    assert_close(v[0], 0.4); // |1 − 0.6|
    assert_close(v[1], 0.4); // |0 − 0.4|
    assert_close(per_sample::l1(&out, &target)?.sum().item(), 0.8);
    // `loss::l1` takes the mean over the outputs instead of the sum
    assert_close(loss::l1(&out, &target)?.item(), 0.4);
    // in f32, the default element type, too
    let out32 = Tensor::<f32>::from_vec(vec![0.6, 0.4], &[2])?;
    let target32 = Tensor::<f32>::from_vec(vec![1.0, 0.0], &[2])?;
    let sum32 = per_sample::l1(&out32, &target32)?.sum().item();
    assert!((sum32 - 0.8).abs() < 1e-6, "{sum32}");
    Ok(())
}

/// The outputs come from a softmax; the gradient of the 0.8 loss says to raise the
/// "leaf" logit (negative gradient) and lower the other, at a rate of 0.48 each.
#[test]
fn the_gradient_gives_direction_and_rate() -> Result<(), Error> {
    // logits whose softmax is exactly (0.6, 0.4)
    let logits = t(&[0.6f64.ln(), 0.4f64.ln()], &[1, 2]).requires_grad();
    let target = t(&[1.0, 0.0], &[1, 2]);
    let out = logits.softmax(-1);
    assert_close(out.to_vec()[0], 0.6);
    let loss = per_sample::l1(&out, &target)?.sum();
    assert_close(loss.item(), 0.8);
    // loss = (1 − p) + p' = 2(1 − p) with p = softmax₀, so ∂loss/∂z₀ = −2p(1 − p) = −0.48
    let grads = loss.backward()?;
    let g = grads.get(&logits).expect("the logits are reached").to_vec();
    assert!(
        (g[0] + 0.48).abs() < 1e-12 && (g[1] - 0.48).abs() < 1e-12,
        "{g:?}"
    );
    // the rate: a small step h changes the loss by about gradient × h
    let h = 1e-4;
    let moved = t(&[0.6f64.ln() + h, 0.4f64.ln()], &[1, 2]);
    let loss_moved = per_sample::l1(&moved.softmax(-1), &target)?.sum().item();
    let predicted = loss.item() + g[0] * h;
    assert!(
        (loss_moved - predicted).abs() < 1e-8,
        "{loss_moved} vs {predicted}"
    );
    assert!(loss_moved < loss.item()); // moving against the gradient's sign lowers the loss
                                       // and the same, checked by finite differences over every weight of a tiny layer
    let x = t(&[0.3, -1.2, 0.8, 2.0], &[1, 4]);
    let w = t(&[0.1, -0.2, 0.4, 0.3, -0.5, 0.2, 0.05, -0.1], &[4, 2]).requires_grad();
    let report = gradcheck(
        |p| {
            per_sample::l1(&x.matmul(&p[0]).softmax(-1), &target)
                .expect("same shapes")
                .sum()
        },
        &[w],
    )?;
    assert_eq!(report.elements_checked, 8);
    Ok(())
}

/// Three samples with losses 0.2, 0.5 and 0.1 average to 0.8 / 3.
#[test]
fn average_loss_over_three_samples() -> Result<(), Error> {
    // outputs (leaf, flower) and one-hot targets giving summed L1 losses 0.2, 0.5, 0.1
    let out = t(&[0.9, 0.1, 0.75, 0.25, 0.05, 0.95], &[3, 2]);
    let target = t(&[1.0, 0.0, 1.0, 0.0, 0.0, 1.0], &[3, 2]);
    let per_sample_loss = per_sample::l1(&out, &target)?.sum_axis(1, false);
    let v = per_sample_loss.to_vec();
    for (got, want) in v.iter().zip([0.2, 0.5, 0.1]) {
        assert!((got - want).abs() < 1e-12, "{v:?}");
    }
    let average = per_sample_loss.mean().item();
    assert!((average - 0.8 / 3.0).abs() < 1e-12, "{average}");
    assert!((average - 0.266_666_666_666_666_7).abs() < 1e-12);
    // An epoch in batches of 2 and 1: weighting each batch's mean by its size gives
    // the same average (a plain mean of the batch means, (0.35 + 0.1) / 2 = 0.225,
    // would not).
    let mut total = 0.0;
    let mut batch_means = Vec::new();
    for batch in &Batches::new(3, 2) {
        let loss = per_sample::l1(&gather_rows(&out, batch), &gather_rows(&target, batch))?
            .sum_axis(1, false)
            .mean()
            .item();
        total += loss * batch.len() as f64;
        batch_means.push(loss);
    }
    assert!((total / 3.0 - average).abs() < 1e-12);
    assert!((batch_means.iter().sum::<f64>() / 2.0 - 0.225).abs() < 1e-12);
    Ok(())
}

/// A weight of 0.17 with gradient 200 and learning rate 0.01: 0.17 − 0.01 × 200 = −1.83.
#[test]
fn one_sgd_step_from_0_17_with_gradient_200_gives_minus_1_83() -> Result<(), Error> {
    let w = t(&[0.17], &[1]).requires_grad();
    let loss = (&w * 200.0).sum(); // ∂loss/∂w = 200
    let grads = loss.backward()?;
    assert_eq!(grads.get(&w).expect("w is used").to_vec(), vec![200.0]);

    // by hand, new = old − lr × grad
    let by_hand = t(&[0.17], &[1]).requires_grad();
    by_hand.assign(&(&by_hand - grads.get(&w).expect("w is used") * 0.01))?;
    assert!((by_hand.item() + 1.83).abs() < 1e-12, "{}", by_hand.item());

    // with the optimizer: plain SGD is the same rule
    let mut opt = Sgd::new(
        vec![w.clone()],
        SgdConfig {
            lr: 0.01,
            ..Default::default()
        },
    );
    let report = opt.step(&grads)?;
    assert!(report.all_updated());
    assert!((w.item() + 1.83).abs() < 1e-12, "{}", w.item());

    // f32 as well
    let w32 = Tensor::<f32>::from_vec(vec![0.17], &[1])?.requires_grad();
    let grads32 = (&w32 * 200.0).sum().backward()?;
    Sgd::new(
        vec![w32.clone()],
        SgdConfig {
            lr: 0.01,
            ..Default::default()
        },
    )
    .step(&grads32)?;
    assert!((w32.item() + 1.83).abs() < 1e-5, "{}", w32.item());
    Ok(())
}
