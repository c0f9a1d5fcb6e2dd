//! Property tests: broadcasting against a naive reference, and random small
//! graphs against finite differences.

use ferrograd::gradcheck::gradcheck;
use ferrograd::Tensor;
use proptest::prelude::*;

/// A shape of rank 0..=3 with dims 1..=3, and a second shape that broadcasts with it.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    prop::collection::vec(1usize..=3, 0..=3).prop_flat_map(|a| {
        let n = a.len();
        let a2 = a.clone();
        let b = (0..=n, prop::collection::vec(any::<bool>(), n)).prop_map(move |(drop, ones)| {
            // drop some leading dims, and set some remaining dims to 1
            a2.iter()
                .zip(&ones)
                .skip(drop)
                .map(|(&d, &one)| if one { 1 } else { d })
                .collect::<Vec<_>>()
        });
        (Just(a), b)
    })
}

fn values(shape: &[usize], seed: u64) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|i| ((i as u64 * 7919 + seed * 104_729) % 1000) as f64 / 500.0 - 1.0)
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// The element of `t` (shape `s`) that broadcasting maps output index `idx` to.
fn at(t: &[f64], s: &[usize], idx: &[usize]) -> f64 {
    let off = idx.len() - s.len();
    let mut flat = 0;
    for (i, &d) in s.iter().enumerate() {
        flat = flat * d + if d == 1 { 0 } else { idx[off + i] };
    }
    t[flat]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn broadcast_add_mul_match_a_naive_loop((sa, sb) in broadcast_pair(), swap in any::<bool>()) {
        let (sa, sb) = if swap { (sb, sa) } else { (sa, sb) };
        let (a, b) = (values(&sa, 1), values(&sb, 2));
        let sum = a.add(&b);
        let prod = a.mul(&b);
        let out_shape = sum.shape().to_vec();
        let (av, bv) = (a.to_vec(), b.to_vec());
        let n: usize = out_shape.iter().product();
        let (sv, pv) = (sum.to_vec(), prod.to_vec());
        for flat in 0..n {
            let mut idx = vec![0; out_shape.len()];
            let mut r = flat;
            for i in (0..out_shape.len()).rev() {
                idx[i] = r % out_shape[i];
                r /= out_shape[i];
            }
            let (x, y) = (at(&av, &sa, &idx), at(&bv, &sb, &idx));
            prop_assert_eq!(sv[flat], x + y);
            prop_assert_eq!(pv[flat], x * y);
        }
    }

    #[test]
    fn broadcast_gradients_sum_back_to_the_input_shapes((sa, sb) in broadcast_pair()) {
        let a = values(&sa, 3).requires_grad();
        let b = values(&sb, 4).add_scalar(3.0).requires_grad();
        let r = gradcheck(|x| x[0].mul(&x[1]).div(&x[1].add(&x[0].square())), &[a, b]);
        prop_assert!(r.is_ok(), "{:?}", r.err());
    }

    #[test]
    fn random_graphs_pass_gradcheck(ops in prop::collection::vec(0u8..10, 1..6), seed in 0u64..1000) {
        let x = values(&[2, 3], seed).requires_grad();
        let w = values(&[3, 3], seed + 1).requires_grad();
        let f = |t: &[Tensor<f64>]| {
            let mut h = t[0].clone();
            for &op in &ops {
                h = match op {
                    0 => h.tanh(),
                    1 => h.matmul(&t[1]),
                    2 => h.mul(&h).add_scalar(0.5),
                    3 => h.softmax(-1),
                    4 => h.sigmoid().mul(&t[0]),
                    5 => h.add(&h.mean_axis(0, true)),
                    6 => h.t().matmul(&h).narrow(0, 0, 2).narrow(1, 0, 3),
                    7 => h.exp().log_softmax(0),
                    8 => h.gelu().sub(&t[1].narrow(0, 1, 1)),
                    _ => h.logsumexp(1, true).broadcast_to(&[2, 3]).mul(&h),
                };
            }
            h
        };
        // Finite differences lose about |y|·1e-10 to rounding (a step of 1e-6):
        // a graph whose outputs reach 1e3 (`exp` twice can make -6e7) cannot
        // be checked to gradcheck's tolerance, so it is rejected, not passed.
        let inputs = [x, w];
        prop_assume!(f(&inputs).to_vec().iter().all(|v| v.abs() < 1e3));
        let r = gradcheck(f, &inputs);
        prop_assert!(r.is_ok(), "ops {:?}: {:?}", ops, r.err());
    }
}
