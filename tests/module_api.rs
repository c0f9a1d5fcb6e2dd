//! The `Module` API as `API.md` states it, with nothing but `Module` imported:
//! `parameters()`, `named_parameters()` and `set_training` on built-in layers,
//! on a derived model and on boxed modules; `freeze`/`unfreeze` on a part.

use ferrograd::nn::{Activation, Dropout, Linear, Mlp, Module, Sequential};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::Tensor;

#[derive(Module)]
struct Net {
    encoder: Mlp,
    drop: Dropout,
    head: Linear,
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.head
            .forward(&self.drop.forward(&self.encoder.forward(x)))
    }
}

fn net() -> Net {
    let mut rng = StdRng::seed_from_u64(1);
    Net {
        encoder: Mlp::new(&[3, 8, 8], Activation::Relu, &mut rng),
        drop: Dropout::new(0.5, 7),
        head: Linear::new(8, 2, true, &mut rng),
    }
}

#[test]
fn parameters_with_only_module_in_scope() {
    let mut net = net();
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "encoder.0.weight",
            "encoder.0.bias",
            "encoder.1.weight",
            "encoder.1.bias",
            "head.weight",
            "head.bias"
        ]
    );
    assert_eq!(net.parameters().len(), 6);
    assert_eq!(net.encoder.parameters().len(), 4);
    assert_eq!(net.head.named_parameters()[0].0, "weight");
    net.set_training(false);
    assert_eq!(net.training_mode(), Some(false));
    let x = Tensor::<f32>::ones(&[4, 3]);
    assert_eq!(
        net.forward(&x).to_vec(),
        net.forward(&x).to_vec(),
        "no dropout in eval"
    );

    let boxed: Box<dyn Module> = Box::new(net);
    assert_eq!(boxed.parameters().len(), 6);
    let mut seq: Sequential = Sequential::new();
    seq.push(Linear::new(3, 2, true, &mut StdRng::seed_from_u64(2)));
    assert_eq!(seq.named_parameters()[0].0, "0.weight");
    seq.set_training(true);
}

#[test]
fn freezing_a_part_of_a_model() {
    let net = net();
    net.encoder.freeze();
    let x = Tensor::<f32>::ones(&[4, 3]);
    let grads = net.forward(&x).sum().backward().unwrap();
    assert_eq!(grads.len(), 2, "only the head is trained");
    for p in net.encoder.parameters() {
        assert!(grads.get(&p).is_none() && !p.needs_grad());
    }
    net.unfreeze();
    assert_eq!(net.forward(&x).sum().backward().unwrap().len(), 6);
}
