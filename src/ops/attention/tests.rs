//! Tests of the fused attention op against the composite of recorded ops.
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{combined_mask, recorded_attention};
use crate::nn::functional::{
    scaled_dot_product_attention as sdpa, scaled_dot_product_attention_with_rng as sdpa_rng,
};
use crate::ops::test_util::{assert_close, check, rand_leaf};
use crate::Tensor;

/// A 0/1 mask of `shape` with about a third of the entries set.
fn mask01(shape: &[usize], seed: u64) -> Tensor<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = crate::shape::numel(shape);
    let v = (0..n)
        .map(|_| f64::from(rng.random::<f64>() < 0.35))
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// The composite form with the dropout masks drawn as the composite drew
/// them (one `f64` per weight, dropped below `p`).
#[allow(clippy::too_many_arguments)]
fn composite(
    q: &Tensor<f64>,
    k: &Tensor<f64>,
    v: &Tensor<f64>,
    mask: Option<&Tensor<f64>>,
    causal: bool,
    p: f64,
    scale: Option<f64>,
    seed: u64,
) -> Tensor<f64> {
    let (sq, sk) = (q.shape(), k.shape());
    let n = sq.len();
    let (tq, tk, d) = (sq[n - 2], sk[n - 2], sq[n - 1]);
    let scale = scale.unwrap_or(1.0 / (d as f64).sqrt());
    let user = mask.map(|m| m.not_equal_scalar(0.0));
    let masked = combined_mask(tq, tk, user.as_ref(), causal);
    // the documented draw (one f64 per weight, row-major, dropped below
    // p), written out here rather than taken from DropMask
    let drop = (p > 0.0).then(|| {
        let mut scores = sq[..n - 2].to_vec();
        scores.extend([tq, tk]);
        let mut rng = StdRng::seed_from_u64(seed);
        let keep = if p == 1.0 { 0.0 } else { 1.0 / (1.0 - p) };
        let data = (0..crate::shape::numel(&scores))
            .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
            .collect();
        Tensor::from_vec(data, &scores).unwrap()
    });
    recorded_attention(q, k, v, masked.as_ref(), scale, drop.as_ref())
}

/// Fused and composite agree on the output and on all three gradients
/// (under a random upstream gradient).
#[track_caller]
#[allow(clippy::too_many_arguments)]
fn agree(
    q: &Tensor<f64>,
    k: &Tensor<f64>,
    v: &Tensor<f64>,
    mask: Option<&Tensor<f64>>,
    causal: bool,
    p: f64,
    scale: Option<f64>,
    tol: f64,
) {
    let seed = 99;
    let fused = sdpa_rng(
        q,
        k,
        v,
        mask,
        causal,
        p,
        scale,
        &mut StdRng::seed_from_u64(seed),
    );
    let reference = composite(q, k, v, mask, causal, p, scale, seed);
    let op = fused.grad_fn().map(|f| f.op.name());
    assert_eq!(op, Some("scaled_dot_product_attention"));
    assert_eq!(fused.shape(), reference.shape());
    assert_close(&fused, &reference.to_vec(), tol);
    let u = Tensor::<f64>::randn(fused.shape(), &mut StdRng::seed_from_u64(5));
    let gf = fused.backward_with(&u).unwrap();
    let gr = reference.backward_with(&u).unwrap();
    for (name, x) in [("q", q), ("k", k), ("v", v)] {
        let (a, b) = (gf.get(x), gr.get(x));
        assert_eq!(a.is_some(), b.is_some(), "gradient of {name}");
        if let (Some(a), Some(b)) = (a, b) {
            assert_eq!(a.shape(), x.shape(), "gradient of {name}");
            assert_close(a, &b.to_vec(), tol);
        }
    }
}

#[test]
fn fused_matches_the_composite_across_shapes_and_masks() {
    // (q, k, v shapes) with Tq ≠ Tk and Dv ≠ D
    let cases: &[(&[usize], &[usize], &[usize])] = &[
        (&[3, 4], &[5, 4], &[5, 2]),
        (&[5, 4], &[3, 4], &[3, 6]),
        (&[2, 3, 4], &[2, 5, 4], &[2, 5, 3]),
        (&[2, 3, 4, 5], &[2, 3, 6, 5], &[2, 3, 6, 2]),
        (&[1, 1, 1, 3], &[1, 1, 1, 3], &[1, 1, 1, 1]),
    ];
    for (i, &(sq, sk, sv)) in cases.iter().enumerate() {
        let s = 10 * i as u64;
        let (q, k, v) = (rand_leaf(sq, s), rand_leaf(sk, s + 1), rand_leaf(sv, s + 2));
        let n = sq.len();
        let (tq, tk) = (sq[n - 2], sk[n - 2]);
        let mut full = sq[..n - 2].to_vec();
        full.extend([tq, tk]);
        let mut key_pad = vec![1; n];
        key_pad[n - 1] = tk;
        key_pad[0] = sq[0];
        let masks = [
            None,
            Some(mask01(&[tq, tk], s + 3)),
            Some(mask01(&full, s + 4)),
            Some(mask01(&key_pad, s + 5)),
            Some(mask01(&[tk], s + 6)),
            Some(mask01(&[tq, 1], s + 7)),
        ];
        for m in &masks {
            for causal in [false, true] {
                agree(&q, &k, &v, m.as_ref(), causal, 0.0, None, 1e-12);
            }
        }
        agree(&q, &k, &v, None, true, 0.0, Some(0.7), 1e-12);
    }
}

#[test]
fn strided_and_shared_inputs() {
    // q, k and v as views of one [B, T, 3·H·D] tensor, heads transposed in
    let qkv = rand_leaf(&[2, 5, 3 * 2 * 3], 30);
    let heads = |t: &Tensor<f64>| t.reshape(&[2, 5, 2, 3]).transpose(1, 2);
    let parts = qkv.chunk(3, -1);
    let (q, k, v) = (heads(&parts[0]), heads(&parts[1]), heads(&parts[2]));
    let y = sdpa(&q, &k, &v, None, true, 0.0, None);
    let r = composite(&q, &k, &v, None, true, 0.0, None, 0);
    assert_close(&y, &r.to_vec(), 1e-12);
    let u = Tensor::<f64>::randn(y.shape(), &mut StdRng::seed_from_u64(1));
    let (a, b) = (y.backward_with(&u).unwrap(), r.backward_with(&u).unwrap());
    assert_close(a.get(&qkv).unwrap(), &b.get(&qkv).unwrap().to_vec(), 1e-12);
    // k given as a transposed leaf
    let kt = rand_leaf(&[2, 4, 6], 31);
    let q = rand_leaf(&[2, 3, 4], 32);
    let v = rand_leaf(&[2, 6, 2], 33);
    let k = kt.transpose(1, 2);
    agree(&q, &k, &v, None, false, 0.0, None, 1e-12);
}

#[test]
fn parallel_path_matches_the_composite() {
    // 16 heads of 32×32 scores: above the parallel size
    let (q, k, v) = (
        rand_leaf(&[4, 4, 32, 16], 40),
        rand_leaf(&[4, 4, 32, 16], 41),
        rand_leaf(&[4, 4, 32, 8], 42),
    );
    let pad = mask01(&[4, 1, 1, 32], 43);
    agree(&q, &k, &v, None, true, 0.0, None, 1e-12);
    agree(&q, &k, &v, Some(&pad), true, 0.0, None, 1e-12);
    agree(&q, &k, &v, Some(&pad), false, 0.3, None, 1e-12);
}

#[test]
fn causal_blocks_match_the_composite() {
    // more rows than a block, Tq above and below Tk, block edges inside
    // and beyond the shorter side
    for (i, &(tq, tk)) in [(70, 45), (45, 70), (64, 64), (33, 100), (100, 1)]
        .iter()
        .enumerate()
    {
        let s = 200 + 10 * i as u64;
        let q = rand_leaf(&[2, tq, 5], s);
        let k = rand_leaf(&[2, tk, 5], s + 1);
        let v = rand_leaf(&[2, tk, 3], s + 2);
        let pad = mask01(&[2, 1, tk], s + 3);
        agree(&q, &k, &v, None, true, 0.0, None, 1e-12);
        agree(&q, &k, &v, Some(&pad), true, 0.0, None, 1e-12);
        agree(&q, &k, &v, None, true, 0.25, None, 1e-12);
        agree(&q.detach(), &k, &v.detach(), None, true, 0.0, None, 1e-12);
    }
}

#[test]
fn nan_and_infinite_scores_propagate() {
    let q = Tensor::<f64>::from_vec(vec![1., f64::NAN, 1.], &[3, 1]).unwrap();
    let k = Tensor::<f64>::from_vec(vec![1., 2.], &[2, 1]).unwrap();
    let y = sdpa(&q, &k, &k, None, false, 0.0, None).to_vec();
    assert!(y[0].is_finite() && y[2].is_finite() && y[1].is_nan());
    // only NaN scores, and a masked key beside them: NaN, not zeros
    let m = Tensor::<f64>::from_vec(vec![0., 1.], &[2]).unwrap();
    let y = sdpa(&q, &k, &k, Some(&m), false, 0.0, None).to_vec();
    assert!(y[1].is_nan() && y[0] == 1.0);
}

#[test]
fn only_the_wanted_gradients() {
    let q = rand_leaf(&[2, 3, 4], 50);
    let k = rand_leaf(&[2, 5, 4], 51).detach();
    let v = rand_leaf(&[2, 5, 3], 52);
    agree(&q, &k, &v, None, true, 0.0, None, 1e-12);
    let (q2, v2) = (q.detach(), v.detach());
    let k2 = k.requires_grad();
    agree(&q2, &k2, &v2, None, false, 0.0, None, 1e-12);
    agree(&q2, &k2.detach(), &v, None, false, 0.5, None, 1e-12);
}

#[test]
fn fully_masked_rows_give_zeros_and_zero_gradients() {
    let q = rand_leaf(&[2, 3, 4], 60);
    let k = rand_leaf(&[2, 4, 4], 61);
    let v = rand_leaf(&[2, 4, 2], 62);
    // query 1 of batch 0 and query 2 of both batches see no key
    let mut m = vec![0.0; 2 * 3 * 4];
    m[4..8].fill(1.0);
    m[8..12].fill(1.0);
    m[20..24].fill(1.0);
    m[13] = 1.0;
    let mask = Tensor::from_vec(m, &[2, 3, 4]).unwrap();
    let y = sdpa(&q, &k, &v, Some(&mask), false, 0.0, None);
    let yv = y.to_vec();
    for (b, i) in [(0, 1), (0, 2), (1, 2)] {
        let at = (b * 3 + i) * 2;
        assert_eq!(&yv[at..at + 2], &[0.0, 0.0], "row {b}, {i}");
    }
    assert!(yv.iter().all(|v| v.is_finite()));
    let g = y.square().sum().backward().unwrap();
    let gq = g.get(&q).unwrap().to_vec();
    for (b, i) in [(0, 1), (0, 2), (1, 2)] {
        let at = (b * 3 + i) * 4;
        assert_eq!(&gq[at..at + 4], &[0.0; 4], "row {b}, {i}");
    }
    assert!(g.get(&k).unwrap().to_vec().iter().all(|v| v.is_finite()));
    agree(&q, &k, &v, Some(&mask), false, 0.0, None, 1e-12);
    agree(&q, &k, &v, Some(&mask), true, 0.2, None, 1e-12);
}

#[test]
fn dropout_masks_match_the_composite_with_the_same_seed() {
    let q = rand_leaf(&[2, 2, 5, 3], 70);
    let k = rand_leaf(&[2, 2, 6, 3], 71);
    let v = rand_leaf(&[2, 2, 6, 4], 72);
    for p in [0.1, 0.5, 0.9, 1.0] {
        agree(&q, &k, &v, None, false, p, None, 1e-12);
        agree(&q, &k, &v, None, true, p, None, 1e-12);
    }
    // p = 1 drops everything
    let y = sdpa_rng(
        &q,
        &k,
        &v,
        None,
        false,
        1.0,
        None,
        &mut StdRng::seed_from_u64(3),
    );
    assert!(y.to_vec().iter().all(|&v| v == 0.0));
}

#[test]
fn without_recording_the_weights_are_not_kept() {
    let q = rand_leaf(&[2, 3, 4], 80);
    let y = {
        let _g = crate::no_grad();
        sdpa(&q, &q, &q, None, true, 0.0, None)
    };
    assert!(!y.needs_grad());
    let r = composite(&q, &q, &q, None, true, 0.0, None, 0);
    assert_close(&y, &r.to_vec(), 1e-12);
}

#[test]
fn mask_edits_after_the_forward_do_not_reach_the_backward() {
    // the op keeps its own copy of the mask for the recorded form
    let q = rand_leaf(&[3, 2], 90);
    let mask = Tensor::<f64>::from_vec(vec![0., 1., 0.], &[3]).unwrap();
    let y = sdpa(&q, &q, &q, Some(&mask), false, 0.0, None);
    mask.update_with(|m| m.fill(0.0));
    let g1 = crate::grad(
        &y.square().sum(),
        &[&q],
        crate::GradOptions {
            create_graph: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mask2 = Tensor::<f64>::from_vec(vec![0., 1., 0.], &[3]).unwrap();
    let r = composite(&q, &q, &q, Some(&mask2), false, 0.0, None, 0);
    let g2 = r.square().sum().backward().unwrap();
    assert_close(&g1[0], &g2.get(&q).unwrap().to_vec(), 1e-12);
}

#[test]
fn gradcheck_with_masks_causal_and_dropout() {
    let q = rand_leaf(&[2, 3, 4], 100);
    let k = rand_leaf(&[2, 5, 4], 101);
    let v = rand_leaf(&[2, 5, 3], 102);
    let m = mask01(&[2, 1, 5], 103);
    check(
        |x| sdpa(&x[0], &x[1], &x[2], None, false, 0.0, None),
        &[q.clone(), k.clone(), v.clone()],
    );
    check(
        |x| sdpa(&x[0], &x[1], &x[2], Some(&m), true, 0.0, Some(0.8)),
        &[q.clone(), k.clone(), v.clone()],
    );
    check(
        |x| {
            let mut rng = StdRng::seed_from_u64(4);
            sdpa_rng(&x[0], &x[1], &x[2], None, true, 0.4, None, &mut rng)
        },
        &[q, k, v],
    );
    let x = rand_leaf(&[4, 3], 104);
    check(|x| sdpa(&x[0], &x[0], &x[0], None, true, 0.0, None), &[x]);
}
