//! `nn::functional::scaled_dot_product_attention` through the public API:
//! values and gradients against PyTorch, long rows, zero-size shapes, and the
//! errors naming the shapes. (The fused op against its composite form, on many
//! shapes and masks, is tested in `src/ops/attention.rs`; gradcheck and
//! gradgradcheck in `tests/all_ops_gradcheck.rs`.)

use ferrograd::nn::functional::{
    scaled_dot_product_attention as sdpa, try_scaled_dot_product_attention as try_sdpa,
};
use ferrograd::{Error, Tensor};

/// `((i·a + b) mod m − (m − 1)/2) / 4` for `i` in `0..n`: exact in f64, the
/// same values as `vals` in the script that produced the PyTorch figures.
fn vals(shape: &[usize], a: usize, b: usize, m: usize) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|i| (((i * a + b) % m) as f64 - (m - 1) as f64 / 2.0) / 4.0)
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

#[track_caller]
fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, PyTorch {w}"
        );
    }
}

/// Runs attention on the script's inputs and compares `y` and the gradients of
/// `Σ y·w` with PyTorch's.
#[track_caller]
fn against_torch(
    shapes: [&[usize]; 3],
    mask: Option<&Tensor<f64>>,
    causal: bool,
    scale: Option<f64>,
    want: [&[f64]; 4],
) {
    let q = vals(shapes[0], 7, 1, 13).requires_grad();
    let k = vals(shapes[1], 5, 2, 11).requires_grad();
    let v = vals(shapes[2], 3, 4, 7).requires_grad();
    let y = sdpa(&q, &k, &v, mask, causal, 0.0, scale);
    close(&y.to_vec(), want[0], 1e-13, "y");
    let w = vals(y.shape(), 2, 3, 5);
    let g = y.mul(&w).sum().backward().unwrap();
    for (i, (t, name)) in [(&q, "dq"), (&k, "dk"), (&v, "dv")].into_iter().enumerate() {
        close(&g.get(t).unwrap().to_vec(), want[i + 1], 1e-12, name);
    }
}

// The figures below are PyTorch 2.15.0's `F.scaled_dot_product_attention` in
// float64 on CPU (`/work/torchenv/v/bin/python`, run once), with
// `attn_mask = (mask == 0)` (PyTorch's boolean mask means "take part", ours
// "masked out") and, for causal with a mask, `attn_mask & ones(Tq, Tk).tril(0)`
// (PyTorch refuses both at once); the inputs are `vals` above (q: 7, 1, 13;
// k: 5, 2, 11; v: 3, 4, 7; w: 2, 3, 5), the gradients those of `(y * w).sum()`.

/// key padding: `y`, then the gradients of `Σ y·w` for `q`, `k`, `v`.
const KEY_PADDING: [&[f64]; 4] = [
    &[
        0.38327102880959635,
        -0.5540487273776653,
        0.13327102880959638,
        0.41173828655145495,
        -0.5238686003494679,
        0.16173828655145495,
        0.2916122137389711,
        -0.3362416146615882,
        0.04161221373897115,
        -0.105306744348446,
        -0.2533185441001619,
        -0.2040568787581754,
        -0.03613543550024405,
        -0.3734158046114021,
        -0.16027359729780993,
        0.025862847686750304,
        -0.46646185566905746,
        -0.12529840924574376,
    ],
    &[
        -0.016906365791254974,
        0.013767838204270721,
        -0.029815167137221966,
        0.013767838204270721,
        -0.023261537345319452,
        0.021123621391384215,
        0.01048686162868959,
        0.021123621391384215,
        0.0,
        0.0,
        0.0,
        0.0,
        -0.10191787893600382,
        -0.06752323836230573,
        -0.10191787893600382,
        0.12035802636027629,
        -0.09053133602043736,
        -0.04904788336599286,
        -0.09053133602043736,
        0.1045551454351706,
        0.08969166858520745,
        0.033562359136329926,
        0.08969166858520747,
        -0.10338661778722442,
    ],
    &[
        -0.01114754288492869,
        -0.0032117711263730244,
        -0.010013861205135024,
        -0.0020780894465793538,
        -0.0033364718356538345,
        0.009925090291282019,
        -0.0014419629603772837,
        0.011819599166558567,
        0.0260478632897945,
        -0.021717185721624187,
        0.01922428485959183,
        -0.028540764151826856,
        0.0,
        0.0,
        0.0,
        0.0,
        -0.011563848569211974,
        0.015003866556715194,
        -0.007768460694079521,
        0.018799254431847646,
        -0.018910048050775775,
        0.01775886731361177,
        -0.025021533944840364,
        0.011647381419547177,
        0.007837179986470669,
        -0.03960379925751598,
        0.015744009860468443,
        -0.0316969693835182,
        0.014350552927186856,
        0.1366873349523448,
        -0.006038910743672804,
        0.11629787128148514,
        0.0,
        0.0,
        0.0,
        0.0,
        -0.0032776848628817633,
        -0.11484240300844054,
        0.015316434828044677,
        -0.09624828331751409,
    ],
    &[
        0.15666595768259897,
        -0.32420754744879676,
        0.21691926244055065,
        -0.03571136684740196,
        -0.11091852060490376,
        0.17398795149735266,
        -0.07897512474114124,
        -0.027107657246364814,
        0.11552649375685119,
        0.0,
        0.0,
        0.0,
        0.20802053390594422,
        -0.28776627469993465,
        0.24356629230524546,
        -0.007487303217537803,
        0.029328007980018122,
        -0.06119450991185361,
        -0.023880384155523703,
        0.048057641002262064,
        -0.07874388487989326,
        0.04918755765772742,
        0.08398901875177373,
        -0.41190056694494137,
        0.0,
        0.0,
        0.0,
        -0.017819870284665883,
        0.08862533226594603,
        -0.1981610382633117,
    ],
];

/// causal Tq<Tk: `y`, then the gradients of `Σ y·w` for `q`, `k`, `v`.
const CAUSAL_TQ_LT_TK: [&[f64]; 4] = [
    &[
        0.25,
        -0.75,
        0.17964859814271406,
        -0.32789158885628433,
        0.01712659165524104,
        0.1569489043877022,
        0.75,
        -0.25,
        0.6328023433434391,
        -0.367197656656561,
        0.2949372000799375,
        -0.7050627999200625,
    ],
    &[
        0.0,
        0.0,
        0.0,
        0.0,
        -0.03791559216310845,
        -0.037915592163108455,
        0.17062016473398803,
        -0.037915592163108455,
        0.02324100656277249,
        -0.03552353943247856,
        0.10109138145090246,
        -0.03552353943247857,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0038910308595877974,
        0.003891030859587757,
        0.003891030859587806,
        0.0038910308595877657,
        0.009246403098567326,
        -0.004519346794916284,
        0.009246403098567328,
        -0.004519346794916284,
    ],
    &[
        0.06929292650678823,
        -0.15034841389897022,
        0.037915592163108455,
        -0.020271750835017845,
        -0.06395069505267449,
        0.11829502517428782,
        -0.037915592163108455,
        0.05232513955970023,
        -0.005342231454113731,
        0.032053388724682386,
        0.0,
        -0.032053388724682386,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0007953383445834869,
        -0.004828304700422016,
        0.0017326121854177377,
        -0.0038910308595877657,
        -0.007052497387076064,
        0.006079736508920551,
        -0.009241203036408832,
        0.0038910308595877818,
        0.006257159042492549,
        -0.00125143180849851,
        0.00750859085099106,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    ],
    &[
        0.16283175896178015,
        -0.05353456267635205,
        -0.09279010957880138,
        0.23349291329337327,
        -0.0700416493829788,
        0.0700416493829788,
        0.0,
        0.0,
        0.0,
        0.0,
        -0.21667043509171166,
        -0.16825209978625943,
        0.24388275695023906,
        -0.13617254393079525,
        0.22278767814147266,
        -0.4455753562829453,
        0.0,
        0.0,
        0.0,
        0.0,
    ],
];

/// causal Tq>Tk, scale 0.5: `y`, then the gradients of `Σ y·w` for `q`, `k`, `v`.
const CAUSAL_TQ_GT_TK_SCALE: [&[f64]; 4] = [
    &[
        0.25,
        -0.75,
        0.0,
        0.5039059321396022,
        -0.49609406786039784,
        0.2539059321396022,
        0.17438297496781563,
        -0.2604149716043125,
        -0.0756170250321844,
        0.1892172811570501,
        -0.28120431063235346,
        -0.06078271884294986,
    ],
    &[
        0.0,
        0.0,
        -0.007810592961765075,
        -0.007810592961765117,
        0.0,
        0.0,
        -0.03200436711789973,
        -0.032004367117899765,
    ],
    &[
        0.046097602323629756,
        -0.06056985507671862,
        0.0030559014356004964,
        -0.06231390432135693,
        -0.04915350375923021,
        0.12288375939807551,
    ],
    &[
        0.2329365816447171,
        -0.5317908202982227,
        0.11243587924995091,
        0.004203777650474375,
        -0.04386323801757684,
        0.12738593640225612,
        -0.23714035929519145,
        0.07565405831579947,
        0.010178184347793051,
    ],
];

/// mask with a fully masked row, and causal: `y`, then the gradients of `Σ y·w` for `q`, `k`, `v`.
const MASK_FULL_ROW_CAUSAL: [&[f64]; 4] = [
    &[
        0.25,
        -0.75,
        0.0,
        0.0,
        0.12109502106924606,
        0.023429873584523475,
    ],
    &[
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        -0.027317064494213138,
        -0.027317064494213145,
        0.12292679022395915,
        -0.027317064494213145,
    ],
    &[
        0.013658532247106572,
        -0.08195119348263943,
        0.0,
        0.08195119348263943,
        -0.01365853224710657,
        0.08195119348263943,
        0.0,
        -0.08195119348263943,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    ],
    &[
        0.12890497893075392,
        -0.3789049789307539,
        -0.1289049789307539,
        0.1289049789307539,
        0.0,
        0.0,
        0.0,
        0.0,
    ],
];

#[test]
fn matches_pytorch_with_a_key_padding_mask() {
    let pad = Tensor::from_vec(vec![0., 0., 0., 1., 0.], &[1, 1, 1, 5]).unwrap();
    let shapes: [&[usize]; 3] = [&[1, 2, 3, 4], &[1, 2, 5, 4], &[1, 2, 5, 3]];
    against_torch(shapes, Some(&pad), false, None, KEY_PADDING);
}

#[test]
fn matches_pytorch_causal_with_fewer_queries_than_keys() {
    let shapes: [&[usize]; 3] = [&[2, 3, 4], &[2, 5, 4], &[2, 5, 2]];
    against_torch(shapes, None, true, None, CAUSAL_TQ_LT_TK);
}

#[test]
fn matches_pytorch_causal_with_more_queries_than_keys_and_a_scale() {
    let shapes: [&[usize]; 3] = [&[4, 2], &[3, 2], &[3, 3]];
    against_torch(shapes, None, true, Some(0.5), CAUSAL_TQ_GT_TK_SCALE);
}

#[test]
fn matches_pytorch_with_a_fully_masked_row_and_causal() {
    // query 1 sees no key: PyTorch's CPU kernel gives zeros, and so do we
    let m = Tensor::from_vec(
        vec![0., 1., 0., 0., 1., 1., 1., 1., 0., 0., 1., 0.],
        &[3, 4],
    )
    .unwrap();
    let shapes: [&[usize]; 3] = [&[1, 3, 4], &[1, 4, 4], &[1, 4, 2]];
    against_torch(shapes, Some(&m), true, None, MASK_FULL_ROW_CAUSAL);
}

/// Softmax attention of one query over `scores` and values `v`, in f64 with
/// the maximum subtracted first (the reference for the long rows).
fn reference_row(scores: &[f64], v: &[f64]) -> (f64, Vec<f64>) {
    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
    let z: f64 = e.iter().sum();
    let w: Vec<f64> = e.iter().map(|e| e / z).collect();
    (w.iter().zip(v).map(|(w, v)| w * v).sum(), w)
}

#[test]
fn long_rows_with_large_scores_stay_finite_and_exact() {
    // 4096 keys, scores around ±1e4 (exp would overflow without the shift)
    let tk = 4096;
    let kd: Vec<f64> = (0..tk).map(|j| 1e4 + (j % 7) as f64 * 0.5).collect();
    let vd: Vec<f64> = (0..tk).map(|j| ((j * 3) % 7) as f64 - 3.0).collect();
    let qd = [1.0, -1.0];
    let q = Tensor::<f64>::from_vec(qd.to_vec(), &[2, 1])
        .unwrap()
        .requires_grad();
    let k = Tensor::<f64>::from_vec(kd.clone(), &[tk, 1])
        .unwrap()
        .requires_grad();
    let v = Tensor::<f64>::from_vec(vd.clone(), &[tk, 1])
        .unwrap()
        .requires_grad();
    let y = sdpa(&q, &k, &v, None, false, 0.0, Some(1.0));
    let g = y.sum().backward().unwrap();
    let gv = g.get(&v).unwrap().to_vec();
    let mut want_gv = vec![0.0; tk];
    for (i, &qi) in qd.iter().enumerate() {
        let scores: Vec<f64> = kd.iter().map(|k| qi * k).collect();
        let (out, w) = reference_row(&scores, &vd);
        let got = y.to_vec()[i];
        assert!((got - out).abs() < 1e-12, "query {i}: {got} vs {out}");
        want_gv.iter_mut().zip(&w).for_each(|(a, w)| *a += w);
    }
    close(&gv, &want_gv, 1e-12, "dv");
    for t in [&q, &k] {
        assert!(g.get(t).unwrap().to_vec().iter().all(|x| x.is_finite()));
    }
    // f32: finite and close to the f64 figures
    let (q32, k32, v32) = (
        q.detach().cast::<f32>(),
        k.detach().cast::<f32>(),
        v.detach().cast::<f32>(),
    );
    let y32 = sdpa(&q32, &k32, &v32, None, true, 0.0, Some(1.0));
    let y32 = y32.to_vec();
    assert!(y32.iter().all(|x| x.is_finite()));
    // causal: query 0 sees key 0 only, query 1 keys 0 and 1
    assert!((f64::from(y32[0]) - vd[0]).abs() < 1e-6);
    let (out, _) = reference_row(&[-kd[0], -kd[1]], &vd[..2]);
    assert!(
        (f64::from(y32[1]) - out).abs() < 1e-4,
        "{} vs {out}",
        y32[1]
    );
    let y32 = sdpa(&q32, &k32, &v32, None, false, 0.0, Some(1.0)).to_vec();
    for (i, &qi) in qd.iter().enumerate() {
        let scores: Vec<f64> = kd.iter().map(|k| qi * k).collect();
        let (out, _) = reference_row(&scores, &vd);
        assert!(
            (f64::from(y32[i]) - out).abs() < 1e-3 * (1.0 + out.abs()),
            "f32 query {i}"
        );
    }
}

#[test]
fn empty_shapes_give_empty_or_zero_results() {
    for (sq, sk, sv) in [
        (&[0, 3, 2][..], &[0, 4, 2][..], &[0, 4, 5][..]),
        (&[2, 0, 2][..], &[2, 4, 2][..], &[2, 4, 5][..]),
        (&[2, 3, 2][..], &[2, 4, 2][..], &[2, 4, 0][..]),
    ] {
        let q = Tensor::<f64>::ones(sq).requires_grad();
        let k = Tensor::<f64>::ones(sk).requires_grad();
        let v = Tensor::<f64>::ones(sv).requires_grad();
        let y = sdpa(&q, &k, &v, None, true, 0.0, None);
        let mut want = sq[..2].to_vec();
        want.push(sv[2]);
        assert_eq!(y.shape(), &want[..]);
        let g = y.sum().backward().unwrap();
        assert_eq!(g.get(&q).unwrap().shape(), sq);
    }
}

#[test]
fn errors_name_the_shapes() {
    let t = |s: &[usize]| Tensor::<f64>::zeros(s);
    let (q, k, v) = (t(&[2, 3, 4]), t(&[2, 5, 4]), t(&[2, 5, 6]));
    let shape_err = |r: ferrograd::Result<Tensor<f64>>, lhs: &[usize], rhs: &[usize]| match r {
        Err(Error::ShapeMismatch { op, lhs: l, rhs: r }) => {
            assert_eq!(op, "scaled_dot_product_attention");
            assert_eq!((&l[..], &r[..]), (lhs, rhs));
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    };
    // D of q and k
    shape_err(
        try_sdpa(&q, &t(&[2, 5, 3]), &v, None, false, 0.0, None),
        &[2, 3, 4],
        &[2, 5, 3],
    );
    // leading dimensions of q and k
    shape_err(
        try_sdpa(&q, &t(&[3, 5, 4]), &v, None, false, 0.0, None),
        &[2, 3, 4],
        &[3, 5, 4],
    );
    // Tk of k and v
    shape_err(
        try_sdpa(&q, &k, &t(&[2, 4, 6]), None, false, 0.0, None),
        &[2, 5, 4],
        &[2, 4, 6],
    );
    // a mask that does not broadcast to the scores [2, 3, 5]
    let m = t(&[3, 3]);
    shape_err(
        try_sdpa(&q, &k, &v, Some(&m), false, 0.0, None),
        &[3, 3],
        &[2, 3, 5],
    );
    let m = t(&[1, 2, 3, 5]);
    shape_err(
        try_sdpa(&q, &k, &v, Some(&m), false, 0.0, None),
        &[1, 2, 3, 5],
        &[2, 3, 5],
    );
    // the message names both shapes
    let e = try_sdpa(&q, &k, &t(&[2, 4, 6]), None, false, 0.0, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "scaled_dot_product_attention: incompatible shapes [2, 5, 4] and [2, 4, 6]"
    );
    // fewer than 2 dimensions, or a dropout probability out of range
    for r in [
        try_sdpa(&t(&[4]), &k, &v, None, false, 0.0, None),
        try_sdpa(&q, &k, &v, None, false, 1.5, None),
        try_sdpa(&q, &k, &v, None, false, -0.1, None),
    ] {
        assert!(matches!(
            r,
            Err(Error::InvalidArgument {
                op: "scaled_dot_product_attention",
                ..
            })
        ));
    }
}

#[test]
#[should_panic(
    expected = "scaled_dot_product_attention: incompatible shapes [2, 3, 4] and [2, 5, 3]"
)]
fn the_panicking_form_names_the_shapes() {
    let t = |s: &[usize]| Tensor::<f32>::zeros(s);
    sdpa(
        &t(&[2, 3, 4]),
        &t(&[2, 5, 3]),
        &t(&[2, 5, 6]),
        None,
        false,
        0.0,
        None,
    );
}
