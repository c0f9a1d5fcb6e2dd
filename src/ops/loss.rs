//! Primitives of the losses whose PyTorch definition is not a composite of
//! other ops: binary cross-entropy of probabilities, with PyTorch's clamped logs
//! and its bounded gradient. Public through `loss::bce` and `loss::per_sample::bce`.

use super::{zip_plain, Cheap, Costly, ReadMany};
use crate::autograd::{grads, BackwardCx, InputGrads, Op};
use crate::element::{c, Element};
use crate::tensor::{Seen, Tensor};

/// PyTorch's floor for a log term of the loss.
const LOG_FLOOR: f64 = -100.0;
/// PyTorch's floor for `p·(1 − p)` in the gradient.
const EPS: f64 = 1e-12;

/// `−(y·max(log p, −100) + (1 − y)·max(log(1 − p), −100))` elementwise, for
/// probabilities `p` and targets `y` of one shape (checked by the caller).
pub(crate) fn bce<T: Element>(p: &Tensor<T>, y: &Tensor<T>) -> Tensor<T> {
    let seen = Seen::note(&[p, y]);
    let data = {
        let r = ReadMany::new(&[p, y]);
        crate::kernels::elementwise::zip(
            r.get(0),
            p.layout(),
            r.get(1),
            y.layout(),
            Costly,
            |p, y| {
                let (lp, l1p) = clamped_logs(p);
                (y - T::one()) * l1p - y * lp
            },
        )
    };
    Tensor::from_op_data(seen, data, p.shape(), Bce, &[p, y])
}

/// `max(log p, −100)` and `max(log(1 − p), −100)`.
#[inline]
fn clamped_logs<T: Element>(p: T) -> (T, T) {
    let floor = c::<T>(LOG_FLOOR);
    (p.ln().max(floor), (-p).ln_1p().max(floor))
}

struct Bce;

impl<T: Element> Op<T> for Bce {
    fn name(&self) -> &'static str {
        "bce"
    }
    /// As PyTorch: `∂/∂p = (p − y) / max(p·(1 − p), 1e-12)` (bounded, where the
    /// derivative of the clamped function would be 0 or ±inf at the ends), and
    /// `∂/∂y = max(log(1 − p), −100) − max(log p, −100)`.
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let (p, y) = (cx.input(0), cx.input(1));
        let g = &g;
        if cx.create_graph {
            // the same, from recorded ops; the logs of p clamped to [e⁻¹⁰⁰, 1]
            // so that their own derivatives stay finite at 0 and 1
            let gp = cx.needs(0).then(|| {
                let curvature = p.mul(&p.rsub_scalar(T::one()));
                g.mul(&p.sub(y))
                    .div(&curvature.clamp(c(EPS), T::infinity()))
            });
            let gy = cx.needs(1).then(|| {
                let tiny = c::<T>(LOG_FLOOR.exp());
                let log_p = p.clamp(tiny, T::one()).log();
                let log_1mp = p.rsub_scalar(T::one()).clamp(tiny, T::one()).log();
                g.mul(&log_1mp.sub(&log_p))
            });
            return grads![gp, gy];
        }
        let s = g.shape();
        let gp = cx.needs(0).then(|| {
            let bounded = zip_plain(s, p, y, Cheap, |p, y| {
                (p - y) / (p * (T::one() - p)).max(c(EPS))
            });
            bounded.mul(g)
        });
        let gy = cx.needs(1).then(|| {
            let logs = crate::ops::map_plain(p, Costly, |p| {
                let (lp, l1p) = clamped_logs(p);
                l1p - lp
            });
            logs.mul(g)
        });
        grads![gp, gy]
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_util::assert_close;
    use crate::Tensor;

    #[test]
    fn gradients_at_the_ends_are_pytorchs() {
        // target 1: PyTorch gives (p − 1) / max(p(1 − p), 1e-12) = −1e12 at p = 0,
        // 1e-40 and 1e-30 (this crate once gave 0, −inf and −1e30)
        let p = Tensor::<f64>::from_vec(vec![0.0, 1e-40, 1e-30, 0.25, 1.0, 0.0], &[6])
            .unwrap()
            .requires_grad();
        let y = Tensor::<f64>::from_vec(vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0], &[6]).unwrap();
        let l = super::bce(&p, &y);
        assert_close(
            &l,
            &[
                100.0,
                92.103_403_719_761_84,
                69.077_552_789_821_37,
                4f64.ln(),
                100.0,
                0.0,
            ],
            1e-14,
        );
        let g = l.sum().backward().unwrap();
        assert_close(
            g.get(&p).unwrap(),
            &[-1e12, -1e12, -1e12, -4.0, 1e12, 0.0],
            1e-14,
        );
        // f32 the same
        let p = Tensor::<f32>::from_vec(vec![0.0, 1e-30], &[2])
            .unwrap()
            .requires_grad();
        let y = Tensor::<f32>::ones(&[2]);
        let g = super::bce(&p, &y).sum().backward().unwrap();
        assert_close(g.get(&p).unwrap(), &[-1e12, -1e12], 1e-6);
    }
}
