//! The smallest complete training story: a two-layer network learns to tell
//! points inside a circle from points outside it, trained by hand with
//! `backward()` and plain gradient descent (`w ← w − lr·∂loss/∂w`).
//!
//! Run: `cargo run --release --example quickstart`

use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{Error, Tensor};

/// Points in [-1, 1]², labelled 1 inside the circle of radius 0.7, else 0.
fn circle_data(n: usize, rng: &mut StdRng) -> (Tensor, Tensor) {
    let x = Tensor::<f32>::rand_uniform(&[n, 2], -1.0, 1.0, rng);
    let r2 = x.square().sum_axis(1, true);
    let y = r2
        .to_vec()
        .iter()
        .map(|&r| if r < 0.49 { 1.0 } else { 0.0 })
        .collect();
    (x, Tensor::from_vec(y, &[n, 1]).expect("n labels"))
}

fn main() -> Result<(), Error> {
    let mut rng = StdRng::seed_from_u64(7);
    let (x, y) = circle_data(512, &mut rng);
    let (x_test, y_test) = circle_data(256, &mut rng);

    // 1. random initial weights (scaled by 1/sqrt(fan_in)) that ask for gradients
    let w1 = (Tensor::<f32>::randn(&[2, 32], &mut rng) * (1.0 / 2f32.sqrt())).requires_grad();
    let b1 = Tensor::<f32>::zeros(&[32]).requires_grad();
    let w2 = (Tensor::<f32>::randn(&[32, 1], &mut rng) * (1.0 / 32f32.sqrt())).requires_grad();
    let b2 = Tensor::<f32>::zeros(&[1]).requires_grad();
    let params = [&w1, &b1, &w2, &b2];
    let forward = |x: &Tensor| (x.matmul(&w1) + &b1).tanh().matmul(&w2) + &b2;

    let lr = 0.5;
    for epoch in 0..=400 {
        // 2. forward pass: probabilities that each point is inside
        let p = forward(&x).sigmoid();
        // 3. the loss: binary cross-entropy averaged over the batch
        let loss = -(&y * p.clamp(1e-7, 1.0).log()
            + (1.0 - &y) * (1.0 - &p).clamp(1e-7, 1.0).log())
        .mean();
        // 4. backward pass: the gradient of the loss for every weight
        let grads = loss.backward()?;
        // 5. gradient descent, in place
        for w in params {
            w.assign(&(w - grads.get(w).expect("every weight is used") * lr))?;
        }
        if epoch % 50 == 0 {
            println!(
                "epoch {epoch:3}  loss {:.4}  gradient norm {:.4}",
                loss.item(),
                grads.global_norm()
            );
        }
    }

    // evaluation records no graph
    let pred = {
        let _guard = ferrograd::no_grad();
        forward(&x_test).sigmoid().to_vec()
    };
    let hits = pred
        .iter()
        .zip(y_test.to_vec())
        .filter(|(p, t)| (**p > 0.5) == (*t > 0.5))
        .count();
    println!(
        "test accuracy: {:.1}%",
        100.0 * hits as f64 / pred.len() as f64
    );
    Ok(())
}
