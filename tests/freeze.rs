//! Freezing part of a model: frozen parameters get no gradient, optimizers leave
//! them as they are (also in strict mode), and thawing trains them again.

use ferrograd::loss::mse;
use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::Tensor;

#[test]
fn a_frozen_layer_stays_put_while_the_rest_trains() {
    let mut rng = StdRng::seed_from_u64(2);
    let model = Mlp::<f32>::new(&[2, 8, 1], Activation::Tanh, &mut rng);
    let x = Tensor::<f32>::randn(&[16, 2], &mut rng);
    let y = x.sum_axis(1, true).sin();
    let mut opt = Adam::new_named(
        model.named_parameters(),
        AdamConfig {
            lr: 1e-2,
            ..Default::default()
        },
    )
    .strict(true);
    let params = model.parameters();
    let (first, rest) = params.split_at(2);
    first.iter().for_each(|p| p.set_requires_grad(false));
    let frozen: Vec<Vec<f32>> = first.iter().map(|p| p.to_vec()).collect();
    let rest_before: Vec<Vec<f32>> = rest.iter().map(|p| p.to_vec()).collect();
    let mut losses = vec![];
    for _ in 0..50 {
        let loss = mse(&model.forward(&x), &y).unwrap();
        losses.push(loss.item());
        let grads = loss.backward().unwrap();
        assert_eq!(grads.len(), 2, "only the second layer has gradients");
        let report = opt
            .step(&grads)
            .expect("strict mode accepts frozen parameters");
        let skipped: Vec<&str> = report
            .skipped
            .iter()
            .map(|s| s.name.as_deref().unwrap())
            .collect();
        assert_eq!(skipped, ["0.weight", "0.bias"]);
    }
    assert!(losses[49] < losses[0], "{losses:?}");
    let now: Vec<Vec<f32>> = first.iter().map(|p| p.to_vec()).collect();
    assert_eq!(now, frozen, "frozen parameters are unchanged");
    assert!(rest.iter().zip(&rest_before).all(|(p, b)| &p.to_vec() != b));

    // thawed: the same handles train again, and strict mode wants their gradients
    first.iter().for_each(|p| p.set_requires_grad(true));
    let grads = mse(&model.forward(&x), &y).unwrap().backward().unwrap();
    assert_eq!(grads.len(), 4);
    assert!(opt.step(&grads).unwrap().skipped.is_empty());
    assert_ne!(first[0].to_vec(), frozen[0]);
    let partial = mse(&model.forward(&x), &y).unwrap().backward().unwrap();
    let mut only_rest = ferrograd::Gradients::new();
    for p in rest {
        only_rest.insert(p, partial.get(p).unwrap().clone());
    }
    assert!(
        opt.step(&only_rest).is_err(),
        "a thawed parameter without a gradient"
    );
}
