//! Known values (derived by hand in the comments), gradchecks with respect to every
//! tensor argument, edge cases and errors of the losses.

use super::{per_sample, CrossEntropyOptions};
use crate::ops::map_plain;
use crate::ops::test_util::{assert_close, check, rand_leaf};
use crate::{Error, Tensor};

fn t(values: &[f64], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(values.to_vec(), shape).unwrap()
}

fn leaf(values: &[f64], shape: &[usize]) -> Tensor<f64> {
    t(values, shape).requires_grad()
}

/// A leaf of probabilities in [0.05, 0.95).
fn prob_leaf(shape: &[usize], seed: u64) -> Tensor<f64> {
    map_plain(&rand_leaf(shape, seed).detach(), crate::ops::Cheap, |v| {
        0.5 + 0.45 * v
    })
    .requires_grad()
}

fn ln(v: f64) -> f64 {
    v.ln()
}

fn all_finite(x: &Tensor<f64>) -> bool {
    x.to_vec().iter().all(|v| v.is_finite())
}

// ----- regression losses -----

#[test]
fn seed_l1_example() {
    // The seed: output [0.6, 0.4], target [1, 0]: |1 − 0.6| + |0 − 0.4| = 0.8.
    let out = t(&[0.6, 0.4], &[2]);
    let target = t(&[1.0, 0.0], &[2]);
    assert_close(&per_sample::l1(&out, &target).unwrap(), &[0.4, 0.4], 1e-15);
    assert_close(&per_sample::l1(&out, &target).unwrap().sum(), &[0.8], 1e-15);
    assert_close(&super::l1(&out, &target).unwrap(), &[0.4], 1e-15);
    let out32 = Tensor::<f32>::from_vec(vec![0.6, 0.4], &[2]).unwrap();
    let target32 = Tensor::<f32>::from_vec(vec![1.0, 0.0], &[2]).unwrap();
    assert_close(&super::l1(&out32, &target32).unwrap(), &[0.4], 1e-6);
}

#[test]
fn regression_values() {
    // d = pred − target = [0, 2, −2, 0.5]
    let pred = t(&[1.0, 2.0, 3.0, 0.0], &[2, 2]);
    let target = t(&[1.0, 0.0, 5.0, -0.5], &[2, 2]);
    // mse: (0 + 4 + 4 + 0.25) / 4
    assert_close(&super::mse(&pred, &target).unwrap(), &[8.25 / 4.0], 1e-15);
    assert_close(
        &per_sample::mse(&pred, &target).unwrap(),
        &[0.0, 4.0, 4.0, 0.25],
        0.0,
    );
    assert_eq!(per_sample::mse(&pred, &target).unwrap().shape(), &[2, 2]);
    // l1: (0 + 2 + 2 + 0.5) / 4
    assert_close(&super::l1(&pred, &target).unwrap(), &[4.5 / 4.0], 1e-15);
    // huber, delta 1: ½·0², 1·(2 − ½), 1·(2 − ½), ½·0.5²
    assert_close(
        &per_sample::huber(&pred, &target, 1.0).unwrap(),
        &[0.0, 1.5, 1.5, 0.125],
        1e-15,
    );
    assert_close(
        &super::huber(&pred, &target, 1.0).unwrap(),
        &[3.125 / 4.0],
        1e-15,
    );
    // huber, delta 3: everything is quadratic, ½d²
    assert_close(
        &per_sample::huber(&pred, &target, 3.0).unwrap(),
        &[0.0, 2.0, 2.0, 0.125],
        1e-15,
    );
    // at |d| = delta exactly, both branches agree: delta·(delta − ½delta) = ½delta²
    assert_close(
        &per_sample::huber(&pred, &target, 2.0).unwrap(),
        &[0.0, 2.0, 2.0, 0.125],
        1e-15,
    );
    // infinite delta: ½d² everywhere
    assert_close(
        &per_sample::huber(&pred, &target, f64::INFINITY).unwrap(),
        &[0.0, 2.0, 2.0, 0.125],
        0.0,
    );
    // 0-d tensors work and give 0-d losses
    let l = super::mse(&Tensor::scalar(3.0), &Tensor::scalar(1.0)).unwrap();
    assert_eq!(l.shape(), &[] as &[usize]);
    assert_eq!(l.item(), 4.0);
}

#[test]
fn regression_gradients_by_hand() {
    // mse: ∂/∂pred = 2d/n, ∂/∂target = −2d/n; d = [1, −3], n = 2
    let pred = leaf(&[2.0, -1.0], &[2]);
    let target = leaf(&[1.0, 2.0], &[2]);
    let g = super::mse(&pred, &target).unwrap().backward().unwrap();
    assert_close(g.get(&pred).unwrap(), &[1.0, -3.0], 1e-15);
    assert_close(g.get(&target).unwrap(), &[-1.0, 3.0], 1e-15);
    // l1: sign(d)/n, and 0 where d = 0
    let pred = leaf(&[2.0, -1.0, 5.0], &[3]);
    let target = leaf(&[1.0, 2.0, 5.0], &[3]);
    let g = super::l1(&pred, &target).unwrap().backward().unwrap();
    assert_close(g.get(&pred).unwrap(), &[1. / 3., -1. / 3., 0.0], 1e-15);
    assert_close(g.get(&target).unwrap(), &[-1. / 3., 1. / 3., 0.0], 1e-15);
    // huber, delta 1: d where |d| < 1, delta·sign(d) beyond; d = [0.5, −3, 0]
    let pred = leaf(&[0.5, -3.0, 0.0], &[3]);
    let target = leaf(&[0.0, 0.0, 0.0], &[3]);
    let g = super::huber(&pred, &target, 1.0)
        .unwrap()
        .backward()
        .unwrap();
    assert_close(g.get(&pred).unwrap(), &[0.5 / 3., -1. / 3., 0.0], 1e-15);
    assert_close(g.get(&target).unwrap(), &[-0.5 / 3., 1. / 3., 0.0], 1e-15);
}

#[test]
fn gradcheck_regression() {
    // d = pred − target = [−0.2, −0.7, 1.5, −2.0, 0.75, −0.1]: both sides of
    // delta = 0.5, away from the kinks at 0 and ±delta.
    let pred = leaf(&[0.1, -0.3, 1.7, -2.0, 0.45, 0.9], &[2, 3]);
    let target = leaf(&[0.3, 0.4, 0.2, 0.0, -0.3, 1.0], &[2, 3]);
    let inputs = [pred, target];
    check(|x| super::mse(&x[0], &x[1]).unwrap(), &inputs);
    check(|x| super::l1(&x[0], &x[1]).unwrap(), &inputs);
    check(|x| super::huber(&x[0], &x[1], 0.5).unwrap(), &inputs);
    check(|x| per_sample::mse(&x[0], &x[1]).unwrap(), &inputs);
    check(|x| per_sample::l1(&x[0], &x[1]).unwrap(), &inputs);
    check(|x| per_sample::huber(&x[0], &x[1], 0.5).unwrap(), &inputs);
    check(|x| per_sample::huber(&x[0], &x[1], 3.0).unwrap(), &inputs);
    // strided inputs (a transposed view) give the same gradients
    check(|x| super::mse(&x[0].t(), &x[1].t()).unwrap(), &inputs);
}

// ----- classification losses -----

#[test]
fn cross_entropy_values() {
    // row 0: equal logits, −log(1/3) = ln 3;
    // row 1: softmax [1, 2, 5]/8, target 2: −log(5/8) = ln 1.6;
    // row 2: softmax [1, 2, 5]/8 shifted by +10 (shift invariant), target 0: ln 8.
    let logits = t(
        &[
            0.,
            0.,
            0.,
            0.,
            ln(2.),
            ln(5.),
            10.,
            10. + ln(2.),
            10. + ln(5.),
        ],
        &[3, 3],
    );
    let targets = [1, 2, 0];
    let per = per_sample::cross_entropy(&logits, &targets).unwrap();
    assert_eq!(per.shape(), &[3]);
    assert_close(&per, &[ln(3.), ln(1.6), ln(8.)], 1e-14);
    let mean = (ln(3.) + ln(1.6) + ln(8.)) / 3.0;
    assert_close(
        &super::cross_entropy(&logits, &targets).unwrap(),
        &[mean],
        1e-14,
    );
    // nll of log_softmax is cross_entropy
    let logp = logits.log_softmax(1);
    assert_close(
        &per_sample::nll(&logp, &targets).unwrap(),
        &[ln(3.), ln(1.6), ln(8.)],
        1e-14,
    );
    assert_close(&super::nll(&logp, &targets).unwrap(), &[mean], 1e-14);
    // f32
    let l32 = super::cross_entropy(
        &Tensor::<f32>::from_vec(vec![0., 0., 0., 0.], &[1, 4]).unwrap(),
        &[2],
    )
    .unwrap();
    assert_close(&l32, &[ln(4.)], 1e-6);
}

#[test]
fn cross_entropy_is_stable_for_huge_logits() {
    // logp = [0, −2000]: target 0 costs 0, target 1 costs 2000; nothing overflows.
    let logits = leaf(&[1000., -1000., 1000., -1000.], &[2, 2]);
    let per = per_sample::cross_entropy(&logits, &[0, 1]).unwrap();
    assert_close(&per, &[0.0, 2000.0], 1e-15);
    let g = per.sum().backward().unwrap();
    // softmax − onehot = [1, 0] − [1, 0] and [1, 0] − [0, 1]
    assert_close(g.get(&logits).unwrap(), &[0., 0., 1., -1.], 1e-15);
    // f32 as well
    let l = per_sample::cross_entropy(
        &Tensor::<f32>::from_vec(vec![1000., -1000.], &[1, 2]).unwrap(),
        &[1],
    )
    .unwrap();
    assert_close(&l, &[2000.0], 1e-7);
}

#[test]
fn cross_entropy_gradient_is_softmax_minus_onehot_over_n() {
    let logits = rand_leaf(&[3, 4], 11);
    let targets = [3, 0, 3];
    let g = super::cross_entropy(&logits, &targets)
        .unwrap()
        .backward()
        .unwrap();
    let sm = logits.softmax(1).to_vec();
    let expected: Vec<f64> = (0..12)
        .map(|k| {
            let onehot = if k % 4 == targets[k / 4] { 1.0 } else { 0.0 };
            (sm[k] - onehot) / 3.0
        })
        .collect();
    assert_close(g.get(&logits).unwrap(), &expected, 1e-14);
}

#[test]
fn label_smoothing_and_ignore_index() {
    // row 0: softmax [1, 2, 5]/8, logp = −[ln 8, ln 4, ln 1.6]; row 1: equal logits.
    let logits = t(&[0., ln(2.), ln(5.), 0., 0., 0.], &[2, 3]);
    let eps = 0.1;
    let smooth = |nll: f64, all: [f64; 3]| (1.0 - eps) * nll + eps * all.iter().sum::<f64>() / 3.0;
    let row0 = smooth(ln(1.6), [ln(8.), ln(4.), ln(1.6)]); // target 2
    let row1 = smooth(ln(3.), [ln(3.); 3]); // = ln 3 whatever ε
    let opts = CrossEntropyOptions {
        label_smoothing: eps,
        ignore_index: None,
    };
    let per = per_sample::cross_entropy_with(&logits, &[2, 0], opts).unwrap();
    assert_close(&per, &[row0, row1], 1e-14);
    assert_close(&per.index_select(0, &[1]), &[ln(3.)], 1e-14);
    assert_close(
        &super::cross_entropy_with(&logits, &[2, 0], opts).unwrap(),
        &[(row0 + row1) / 2.0],
        1e-14,
    );
    // ε = 1: the loss is the mean of −logp over classes, whatever the target
    let uniform = CrossEntropyOptions {
        label_smoothing: 1.0,
        ..Default::default()
    };
    assert_close(
        &per_sample::cross_entropy_with(&logits, &[0, 1], uniform).unwrap(),
        &[(ln(8.) + ln(4.) + ln(1.6)) / 3.0, ln(3.)],
        1e-14,
    );

    // ignore_index: the ignored row gives 0 per sample and is left out of the mean
    let ignore = CrossEntropyOptions {
        label_smoothing: eps,
        ignore_index: Some(5),
    };
    let per = per_sample::cross_entropy_with(&logits, &[2, 5], ignore).unwrap();
    assert_close(&per, &[row0, 0.0], 1e-14);
    assert_close(
        &super::cross_entropy_with(&logits, &[2, 5], ignore).unwrap(),
        &[row0],
        1e-14,
    );
    // an ignore_index that is a valid class ignores the rows with that class
    let ignore0 = CrossEntropyOptions {
        ignore_index: Some(0),
        ..Default::default()
    };
    assert_close(
        &super::cross_entropy_with(&logits, &[2, 0], ignore0).unwrap(),
        &[ln(1.6)],
        1e-14,
    );
    // ignored rows get no gradient, kept rows get (softmax − onehot) / kept
    let x = logits.requires_grad();
    let g = super::cross_entropy_with(&x, &[2, 0], ignore0)
        .unwrap()
        .backward()
        .unwrap();
    assert_close(
        g.get(&x).unwrap(),
        &[1. / 8., 2. / 8., 5. / 8. - 1., 0., 0., 0.],
        1e-14,
    );
    // every row ignored: NaN, as PyTorch (0 / 0), and no NaN gradient
    let l = super::cross_entropy_with(&x, &[0, 0], ignore0).unwrap();
    assert!(l.item().is_nan());
    assert!(all_finite(l.backward().unwrap().get(&x).unwrap()));
}

#[test]
fn ignored_rows_may_hold_anything() {
    // a −inf logit in an ignored row, and an ignore index beyond C
    let x = leaf(&[f64::NEG_INFINITY, 0.0, 1.0, 2.0], &[2, 2]);
    let opts = CrossEntropyOptions {
        label_smoothing: 0.5,
        ignore_index: Some(usize::MAX),
    };
    let l = super::cross_entropy_with(&x, &[usize::MAX, 1], opts).unwrap();
    // row 1: logp = [−ln(1 + e), −ln(1 + e⁻¹)]
    let (a, b) = ((1.0 + 1f64.exp()).ln(), (1.0 + (-1f64).exp()).ln());
    assert_close(&l, &[0.5 * b + 0.5 * (a + b) / 2.0], 1e-14);
    let g = l.backward().unwrap();
    assert_close(&g.get(&x).unwrap().narrow(0, 0, 1), &[0.0, 0.0], 0.0);
    // without smoothing, a −inf logit off target in a kept row is harmless
    let l = super::cross_entropy(&x, &[1, 1]).unwrap();
    assert_close(&l, &[b / 2.0], 1e-14);
    assert!(all_finite(l.backward().unwrap().get(&x).unwrap()));
}

#[test]
fn gradcheck_classification() {
    let logits = rand_leaf(&[4, 5], 21);
    let targets = [1, 0, 4, 4];
    check(
        |x| super::cross_entropy(&x[0], &targets).unwrap(),
        &[logits.clone()],
    );
    check(
        |x| per_sample::cross_entropy(&x[0], &targets).unwrap(),
        &[logits.clone()],
    );
    let opts = CrossEntropyOptions {
        label_smoothing: 0.3,
        ignore_index: Some(4),
    };
    check(
        |x| super::cross_entropy_with(&x[0], &targets, opts).unwrap(),
        &[logits.clone()],
    );
    check(
        |x| per_sample::cross_entropy_with(&x[0], &targets, opts).unwrap(),
        &[logits.clone()],
    );
    // scaled logits (sharper softmax) and a transposed view
    check(
        |x| super::cross_entropy(&x[0].mul_scalar(8.0), &targets).unwrap(),
        &[logits.clone()],
    );
    let logits_t = rand_leaf(&[5, 4], 22);
    check(
        |x| super::cross_entropy(&x[0].t(), &targets).unwrap(),
        &[logits_t],
    );
    // nll, on log-probabilities and on arbitrary scores
    check(
        |x| super::nll(&x[0].log_softmax(1), &targets).unwrap(),
        &[logits.clone()],
    );
    check(|x| per_sample::nll(&x[0], &targets).unwrap(), &[logits]);
}

// ----- binary losses -----

#[test]
fn bce_values_and_clamp() {
    // −log 0.5, −log(1 − 0.8) = ln 5, y = 0.25 at p = 0.5: ln 2 either way,
    // p = 0 with y = 1: −max(log 0, −100) = 100; p = 1 with y = 0: 100;
    // p = 0 with y = 0 and p = 1 with y = 1: 0.
    let p = t(&[0.5, 0.8, 0.5, 0.0, 1.0, 0.0, 1.0], &[7]);
    let y = t(&[1.0, 0.0, 0.25, 1.0, 0.0, 0.0, 1.0], &[7]);
    let per = per_sample::bce(&p, &y).unwrap();
    assert_close(&per, &[ln(2.), ln(5.), ln(2.), 100., 100., 0., 0.], 1e-14);
    assert_close(
        &super::bce(&p, &y).unwrap(),
        &[(2.0 * ln(2.) + ln(5.) + 200.) / 7.0],
        1e-14,
    );
    // f32: p = 0 also gives exactly 100
    let p32 = Tensor::<f32>::from_vec(vec![0.0, 0.5], &[2]).unwrap();
    let y32 = Tensor::<f32>::from_vec(vec![1.0, 1.0], &[2]).unwrap();
    assert_close(
        &per_sample::bce(&p32, &y32).unwrap(),
        &[100.0, ln(2.)],
        1e-6,
    );
}

#[test]
fn bce_gradients_are_finite_at_zero_and_one() {
    let p = leaf(&[0.0, 1.0, 0.0, 1.0, 0.25], &[5]);
    let y = leaf(&[1.0, 0.0, 0.0, 1.0, 1.0], &[5]);
    let g = per_sample::bce(&p, &y).unwrap().sum().backward().unwrap();
    // PyTorch's ∂/∂p = (p − y) / max(p(1 − p), 1e-12): ∓1e12 where the answer is
    // the wrong end, 0 at the right end, −0.75 / 0.1875 = −4 at p = 0.25.
    assert_close(g.get(&p).unwrap(), &[-1e12, 1e12, 0., 0., -4.], 1e-14);
    // ∂/∂y = log(1 − p) − log p with the clamped logs: 0 − (−100) at p = 0
    assert_close(
        g.get(&y).unwrap(),
        &[100., -100., 100., -100., ln(0.75) - ln(0.25)],
        1e-14,
    );
}

#[test]
fn bce_with_logits_values() {
    // x = 0: ln 2 for any y; x = ±100 with the wrong label: 100 (+ e⁻¹⁰⁰);
    // x = 100 with the right label: log(1 + e⁻¹⁰⁰) ≈ 3.7e−44, and no overflow;
    // x = 20, y = 1: log(1 + e⁻²⁰) to full relative precision.
    let x = t(&[0.0, 0.0, 100.0, -100.0, 100.0, 20.0], &[6]);
    let y = t(&[1.0, 0.3, 0.0, 1.0, 1.0, 1.0], &[6]);
    let per = per_sample::bce_with_logits(&x, &y).unwrap().to_vec();
    assert!((per[0] - ln(2.)).abs() < 1e-15 && (per[1] - ln(2.)).abs() < 1e-15);
    assert_eq!(per[2..4], [100.0, 100.0]);
    assert!((per[4] / (-100f64).exp() - 1.0).abs() < 1e-12);
    assert!((per[5] / (-20f64).exp().ln_1p() - 1.0).abs() < 1e-12);
    // the same in f32: no overflow or NaN at ±100
    let x32 = Tensor::<f32>::from_vec(vec![100.0, -100.0, 100.0, -100.0], &[4]).unwrap();
    let y32 = Tensor::<f32>::from_vec(vec![0.0, 1.0, 1.0, 0.0], &[4]).unwrap();
    assert_close(
        &per_sample::bce_with_logits(&x32, &y32).unwrap(),
        &[100.0, 100.0, 0.0, 0.0],
        1e-6,
    );
    // agrees with bce(sigmoid(x)) where the latter is accurate
    let x = rand_leaf(&[3, 4], 31).mul_scalar(4.0);
    let y = prob_leaf(&[3, 4], 32);
    assert_close(
        &super::bce_with_logits(&x, &y).unwrap(),
        &[super::bce(&x.sigmoid(), &y).unwrap().item()],
        1e-12,
    );
}

#[test]
fn bce_with_logits_gradients_by_hand() {
    // ∂/∂x = σ(x) − y (σ(0) = ½ exactly, at the kink of max(x, 0)); ∂/∂y = −x; n = 4
    let x = leaf(&[0.0, 100.0, -100.0, 0.0], &[4]);
    let y = leaf(&[1.0, 0.0, 1.0, 0.5], &[4]);
    let g = super::bce_with_logits(&x, &y).unwrap().backward().unwrap();
    assert_close(g.get(&x).unwrap(), &[-0.125, 0.25, -0.25, 0.0], 1e-15);
    assert_close(g.get(&y).unwrap(), &[0.0, -25.0, 25.0, 0.0], 1e-15);
}

#[test]
fn gradcheck_binary() {
    let p = prob_leaf(&[3, 4], 41);
    let y = prob_leaf(&[3, 4], 42);
    check(
        |x| super::bce(&x[0], &x[1]).unwrap(),
        &[p.clone(), y.clone()],
    );
    check(
        |x| per_sample::bce(&x[0], &x[1]).unwrap(),
        &[p.clone(), y.clone()],
    );
    let logits = rand_leaf(&[3, 4], 43)
        .detach()
        .mul_scalar(5.0)
        .requires_grad();
    check(
        |x| super::bce_with_logits(&x[0], &x[1]).unwrap(),
        &[logits.clone(), y.clone()],
    );
    check(
        |x| per_sample::bce_with_logits(&x[0], &x[1]).unwrap(),
        &[logits, y],
    );
}

// ----- kl_div -----

#[test]
fn kl_div_values() {
    // row 0: p = [½, ½, 0], q = [¼, ¼, ½]: 2·½·ln 2 = ln 2;
    // row 1: p = [1, 0, 0], q = [½, ¼, ¼]: ln 2; batchmean over N = 2: ln 2.
    let q = [0.25, 0.25, 0.5, 0.5, 0.25, 0.25];
    let log_q = t(&q.map(ln), &[2, 3]);
    let p = t(&[0.5, 0.5, 0.0, 1.0, 0.0, 0.0], &[2, 3]);
    assert_close(&super::kl_div(&log_q, &p).unwrap(), &[ln(2.)], 1e-15);
    assert_close(
        &per_sample::kl_div(&log_q, &p).unwrap(),
        &[0.5 * ln(2.), 0.5 * ln(2.), 0., ln(2.), 0., 0.],
        1e-15,
    );
    // identical distributions: 0
    assert_close(
        &super::kl_div(&log_q, &t(&q, &[2, 3])).unwrap(),
        &[0.0],
        1e-15,
    );
    // 1-D and 0-d: N is the size of axis 0 (1 for 0-d)
    let l = super::kl_div(&t(&[ln(0.5), ln(0.5)], &[2]), &t(&[1.0, 0.0], &[2])).unwrap();
    assert_close(&l, &[ln(2.) / 2.0], 1e-15);
    let l = super::kl_div(&Tensor::scalar(ln(0.5)), &Tensor::scalar(1.0)).unwrap();
    assert_close(&l, &[ln(2.)], 1e-15);
}

#[test]
fn kl_div_zero_targets_give_zero_terms_and_gradients() {
    // log_q = −inf where p = 0 (a masked class): the term is still exactly 0
    let log_q = leaf(&[ln(0.5), ln(0.5), f64::NEG_INFINITY], &[1, 3]);
    let p = leaf(&[0.5, 0.0, 0.0], &[1, 3]);
    let per = per_sample::kl_div(&log_q, &p).unwrap();
    assert_close(&per, &[0.0, 0.0, 0.0], 0.0);
    let g = super::kl_div(&log_q, &p).unwrap().backward().unwrap();
    // ∂/∂log_q = −p; ∂/∂p = log p + 1 − log_q, 0 where p = 0
    assert_close(g.get(&log_q).unwrap(), &[-0.5, 0.0, 0.0], 0.0);
    assert_close(g.get(&p).unwrap(), &[1.0, 0.0, 0.0], 1e-15);
}

#[test]
fn gradcheck_kl_div() {
    let log_q = rand_leaf(&[3, 4], 51)
        .log_softmax(1)
        .detach()
        .requires_grad();
    let p = rand_leaf(&[3, 4], 52).softmax(1).detach().requires_grad();
    check(
        |x| super::kl_div(&x[0], &x[1]).unwrap(),
        &[log_q.clone(), p.clone()],
    );
    check(|x| per_sample::kl_div(&x[0], &x[1]).unwrap(), &[log_q, p]);
    // through log_softmax, the usual distillation set-up
    let logits = rand_leaf(&[2, 5], 53);
    let p = rand_leaf(&[2, 5], 54).softmax(1).detach();
    check(
        |x| super::kl_div(&x[0].log_softmax(1), &p).unwrap(),
        &[logits],
    );
}

// ----- errors -----

#[test]
fn shape_mismatches_are_errors() {
    let a = Tensor::<f64>::zeros(&[3]);
    let b = Tensor::<f64>::zeros(&[3, 1]);
    let e = super::mse(&a, &b).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "mse", .. }));
    assert_eq!(e.to_string(), "mse: incompatible shapes [3] and [3, 1]");
    assert!(super::l1(&a, &b).is_err());
    assert!(super::huber(&a, &b, 1.0).is_err());
    assert!(super::bce(&a, &b).is_err());
    assert!(super::bce_with_logits(&b, &a).is_err());
    assert!(super::kl_div(&a, &b).is_err());
    assert!(per_sample::mse(&a, &Tensor::zeros(&[])).is_err());
}

#[test]
fn bad_arguments_are_errors() {
    let a = Tensor::<f64>::zeros(&[2]);
    for delta in [0.0, -1.0, f64::NAN] {
        let e = super::huber(&a, &a, delta).unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { op: "huber", .. }),
            "{e}"
        );
    }
    let p = t(&[0.5, 1.5], &[2]);
    let e = super::bce(&p, &a).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bce: probabilities must lie in [0, 1], got 1.5 at element 1 (row-major) of shape [2]"
    );
    assert!(super::bce(&t(&[f64::NAN, 0.5], &[2]), &a).is_err());
    assert!(super::bce(&t(&[-0.1, 0.5], &[2]), &a).is_err());
    let x = Tensor::<f64>::zeros(&[2, 3]);
    for eps in [-0.1, 1.5, f64::NAN] {
        let opts = CrossEntropyOptions {
            label_smoothing: eps,
            ignore_index: None,
        };
        assert!(super::cross_entropy_with(&x, &[0, 1], opts).is_err());
    }
}

#[test]
fn bad_class_targets_are_errors() {
    let x = Tensor::<f64>::zeros(&[2, 3]);
    let e = super::cross_entropy(&x, &[0, 3]).unwrap_err();
    assert!(matches!(
        e,
        Error::IndexOutOfRange {
            op: "cross_entropy",
            index: 3,
            size: 3,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "cross_entropy: index 3 is out of range for an axis of size 3 (shape [2, 3])"
    );
    let e = super::nll(&x, &[7, 0]).unwrap_err();
    assert!(matches!(
        e,
        Error::IndexOutOfRange {
            op: "nll",
            index: 7,
            ..
        }
    ));
    let e = super::cross_entropy(&x, &[0, 1, 2]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cross_entropy: expects one class index per row: 3 targets for scores of shape [2, 3] (2 rows)"
    );
    assert!(per_sample::nll(&x, &[0]).is_err());
    let e = super::cross_entropy(&Tensor::<f64>::zeros(&[6]), &[0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cross_entropy: expects scores of shape [N, C] (2-D), got shape [6]"
    );
    assert!(super::nll(&Tensor::<f64>::zeros(&[1, 2, 3]), &[0]).is_err());
    // the ignored index is exempt from the range check, other indices are not
    let opts = CrossEntropyOptions {
        ignore_index: Some(3),
        ..Default::default()
    };
    assert!(super::cross_entropy_with(&x, &[3, 0], opts).is_ok());
    assert!(super::cross_entropy_with(&x, &[4, 0], opts).is_err());
}

#[test]
fn empty_batches() {
    // no rows: the mean of nothing is NaN (as PyTorch); per sample it is empty
    let x = Tensor::<f64>::zeros(&[0, 3]);
    assert!(super::cross_entropy(&x, &[]).unwrap().item().is_nan());
    assert_eq!(per_sample::cross_entropy(&x, &[]).unwrap().shape(), &[0]);
    // no classes: only ignored rows are possible
    let x = Tensor::<f64>::zeros(&[2, 0]).requires_grad();
    let opts = CrossEntropyOptions {
        ignore_index: Some(0),
        ..Default::default()
    };
    assert_close(
        &per_sample::cross_entropy_with(&x, &[0, 0], opts).unwrap(),
        &[0.0, 0.0],
        0.0,
    );
    assert!(super::cross_entropy(&x, &[0, 0]).is_err());
}
