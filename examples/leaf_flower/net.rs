//! The network, written out by hand so that every weight has a name.

use ferrograd::loss::per_sample;
use ferrograd::nn::init::xavier_normal;
use ferrograd::rand::rngs::StdRng;
use ferrograd::{no_grad, Error, Tensor};

use super::{LossKind, Split};

/// `4 → hidden (tanh) → 2`, written out by hand so that every weight has a name:
/// `w1[i, k]` connects input `i` to hidden unit `k`, `w2[k, c]` hidden unit `k` to
/// output `c`.
#[derive(Clone, Debug)]
pub struct Net {
    /// `[4, hidden]`
    pub w1: Tensor,
    /// `[hidden]`
    pub b1: Tensor,
    /// `[hidden, 2]`
    pub w2: Tensor,
    /// `[2]`
    pub b2: Tensor,
}

impl Net {
    /// Random weights (Xavier-normal: small enough that tanh does not saturate),
    /// zero biases, all asking for gradients.
    pub fn new(hidden: usize, rng: &mut StdRng) -> Net {
        Net {
            w1: xavier_normal(&[4, hidden], 1.0, rng).requires_grad(),
            b1: Tensor::zeros(&[hidden]).requires_grad(),
            w2: xavier_normal(&[hidden, 2], 1.0, rng).requires_grad(),
            b2: Tensor::zeros(&[2]).requires_grad(),
        }
    }

    /// The logits `[n, 2]` of inputs `[n, 4]`; `softmax(-1)` of them are the outputs.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let hidden = (x.matmul(&self.w1) + &self.b1).tanh();
        hidden.matmul(&self.w2) + &self.b2
    }

    /// The parameters by name, as they are saved.
    pub fn named(&self) -> [(&'static str, &Tensor); 4] {
        [
            ("w1", &self.w1),
            ("b1", &self.b1),
            ("w2", &self.w2),
            ("b2", &self.b2),
        ]
    }

    /// Handles to the four parameter tensors (sharing their data).
    pub fn parameters(&self) -> Vec<Tensor> {
        self.named().iter().map(|(_, t)| (*t).clone()).collect()
    }

    pub fn count(&self) -> usize {
        self.named().iter().map(|(_, t)| t.numel()).sum()
    }
}

/// Each sample's loss, `[n]`, from the logits, the one-hot targets and the classes.
///
/// `l1` and `mse` compare the softmax outputs with the one-hot targets and sum over
/// the two outputs, as the story does (`|1 − 0.6| + |0 − 0.4| = 0.8`); `ce` is the
/// cross-entropy of the logits. A batch's loss is the mean of these.
pub fn sample_losses(
    kind: LossKind,
    logits: &Tensor,
    onehot: &Tensor,
    labels: &[usize],
) -> Result<Tensor, Error> {
    Ok(match kind {
        LossKind::L1 => per_sample::l1(&logits.softmax(-1), onehot)?.sum_axis(1, false),
        LossKind::Mse => per_sample::mse(&logits.softmax(-1), onehot)?.sum_axis(1, false),
        LossKind::Ce => per_sample::cross_entropy(logits, labels)?,
    })
}

/// The average loss and the accuracy on a split, without recording a graph.
pub fn evaluate(net: &Net, data: &Split, kind: LossKind) -> Result<(f32, f32), Error> {
    let _guard = no_grad();
    let logits = net.forward(&data.x);
    let loss = sample_losses(kind, &logits, &data.onehot, &data.labels)?.mean();
    let predicted = logits.argmax(-1).to_vec();
    let hits = predicted
        .iter()
        .zip(&data.labels)
        .filter(|(p, &c)| **p as usize == c)
        .count();
    Ok((loss.item(), hits as f32 / data.labels.len() as f32))
}
