//! Values of the comparison, selection, triangle, splitting and casting ops and
//! of `Iterator::sum` over tensors, against results computed by hand or by
//! PyTorch (the expressions are quoted next to each expected value).

use ferrograd::{grad, GradOptions, Tensor};

fn t(v: &[f64], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

fn recorded() -> GradOptions<f64> {
    GradOptions {
        create_graph: true,
        ..Default::default()
    }
}

#[test]
fn comparisons_broadcast_with_ieee_nan() {
    // a = [[1, nan, 3], [4, 5, -inf]], b = [[3], [5]]; torch a.eq(b) … a.le(b)
    let a = t(&[1., f64::NAN, 3., 4., 5., f64::NEG_INFINITY], &[2, 3]);
    let b = t(&[3., 5.], &[2, 1]);
    assert_eq!(a.equal(&b).to_vec(), [0., 0., 1., 0., 1., 0.]);
    assert_eq!(a.not_equal(&b).to_vec(), [1., 1., 0., 1., 0., 1.]);
    assert_eq!(a.greater(&b).to_vec(), [0., 0., 0., 0., 0., 0.]);
    assert_eq!(a.greater_equal(&b).to_vec(), [0., 0., 1., 0., 1., 0.]);
    assert_eq!(a.less(&b).to_vec(), [1., 0., 0., 1., 0., 1.]);
    assert_eq!(a.less_equal(&b).to_vec(), [1., 0., 1., 1., 1., 1.]);
    for m in [a.equal(&b), a.less(&b), b.greater(&a)] {
        assert_eq!(m.shape(), &[2, 3]);
    }
    // NaN != NaN, and NaN is neither smaller nor larger than anything
    let nan = Tensor::<f64>::scalar(f64::NAN);
    assert_eq!(nan.equal(&nan).item(), 0.0);
    assert_eq!(nan.not_equal(&nan).item(), 1.0);
    assert_eq!(nan.less_equal_scalar(f64::INFINITY).item(), 0.0);
    assert_eq!(nan.greater_equal_scalar(f64::NEG_INFINITY).item(), 0.0);
}

#[test]
fn scalar_comparisons() {
    let x = t(&[-1., 0., 0.5, 2.], &[2, 2]);
    assert_eq!(x.equal_scalar(0.0).to_vec(), [0., 1., 0., 0.]);
    assert_eq!(x.not_equal_scalar(0.0).to_vec(), [1., 0., 1., 1.]);
    assert_eq!(x.greater_scalar(0.0).to_vec(), [0., 0., 1., 1.]);
    assert_eq!(x.greater_equal_scalar(0.0).to_vec(), [0., 1., 1., 1.]);
    assert_eq!(x.less_scalar(0.5).to_vec(), [1., 1., 0., 0.]);
    assert_eq!(x.less_equal_scalar(0.5).to_vec(), [1., 1., 1., 0.]);
    assert_eq!(x.t().less_scalar(0.5).to_vec(), [1., 0., 1., 0.]);
    assert_eq!(x.equal_scalar(0.0).shape(), &[2, 2]);
}

#[test]
fn comparisons_are_never_recorded() {
    let x = t(&[1., 2., 3.], &[3]).requires_grad();
    let y = x.square();
    for m in [
        x.equal(&y),
        y.not_equal(&x),
        x.greater(&y),
        x.greater_equal(&y),
        y.less(&x),
        y.less_equal(&x),
        y.equal_scalar(4.0),
        y.greater_scalar(1.0),
    ] {
        assert!(!m.needs_grad());
        assert!(m.is_leaf());
        assert_eq!(m.op_name(), None);
    }
    // a mask built from x is a constant in x's gradient: d(sum(x · [x > 1.5]))/dx = mask
    let loss = x.mul(&x.greater_scalar(1.5)).sum();
    let g = loss.backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec(), [0., 1., 1.]);
    // and a loss of comparisons alone has no graph
    assert!(x.less_scalar(2.0).sum().backward().is_err());
}

#[test]
fn accuracy_from_argmax() {
    let logits = Tensor::<f32>::from_vec(
        vec![0.1, 2.0, -1.0, 3.0, 0.0, 0.5, 0.2, 0.1, 0.9, 1.0, 0.0, 0.0],
        &[4, 3],
    )
    .unwrap()
    .requires_grad();
    let labels = Tensor::<f32>::from_vec(vec![1.0, 0.0, 1.0, 0.0], &[4]).unwrap();
    let accuracy = logits.argmax(-1).equal(&labels).mean();
    assert_eq!(accuracy.item(), 0.75);
    assert!(!accuracy.needs_grad());
}

#[test]
fn where_cond_values_and_derivatives_as_torch() {
    // m = [1, 0, 1]; x = [[0.5, -1, 2], [3, 0.25, -2]]; y = [[10], [20]]
    // o = torch.where(m.bool(), x**3, y*x)
    let m = t(&[1., 0., 1.], &[3]);
    let x = t(&[0.5, -1., 2., 3., 0.25, -2.], &[2, 3]).requires_grad();
    let y = t(&[10., 20.], &[2, 1]).requires_grad();
    let o = Tensor::where_cond(&m, &x.powi(3), &y.mul(&x));
    assert_eq!(o.to_vec(), [0.125, -10., 8., 27., 5., -8.]);
    let g = grad(&o.sum(), &[&x, &y], recorded()).unwrap();
    assert_eq!(g[0].to_vec(), [0.75, 10., 12., 27., 20., 12.]);
    assert_eq!(g[1].shape(), &[2, 1]);
    assert_eq!(g[1].to_vec(), [-1., 0.25]);
    // torch.autograd.grad(gx.sum(), x)
    let gg = grad(&g[0].sum(), &[&x], recorded()).unwrap();
    assert_eq!(gg[0].to_vec(), [3., 0., 12., 18., 0., -12.]);
    // the third derivative: 6 where the mask picks x³, 0 elsewhere
    let ggg = grad(&gg[0].sum(), &[&x], GradOptions::default()).unwrap();
    assert_eq!(ggg[0].to_vec(), [6., 0., 6., 6., 0., 6.]);
}

#[test]
fn where_cond_broadcasts_all_three_and_ignores_the_masks_graph() {
    let mask = t(&[0., 1.], &[2, 1]).requires_grad();
    let a = t(&[1., 2., 3.], &[3]).requires_grad();
    let b = Tensor::<f64>::scalar(-1.0).requires_grad();
    let o = Tensor::where_cond(&mask, &a, &b);
    assert_eq!(o.shape(), &[2, 3]);
    assert_eq!(o.to_vec(), [-1., -1., -1., 1., 2., 3.]);
    let g = grad(
        &o.sum(),
        &[&a, &b, &mask],
        GradOptions {
            allow_unused: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(g[0].to_vec(), [1., 1., 1.]);
    assert_eq!(g[1].shape(), &[] as &[usize]);
    assert_eq!(g[1].item(), 3.0);
    assert_eq!(g[2].to_vec(), [0., 0.], "the mask is not differentiated");
    // a NaN in the mask is nonzero
    let nan_mask = t(&[f64::NAN, 0.], &[2]);
    let o = Tensor::where_cond(&nan_mask, &t(&[1., 1.], &[2]), &t(&[2., 2.], &[2]));
    assert_eq!(o.to_vec(), [1., 2.]);
}

#[test]
fn tril_triu_batched_as_torch() {
    // t = torch.arange(1., 13.).reshape(2, 2, 3)
    let x = Tensor::<f64>::arange(12)
        .add_scalar(1.0)
        .reshape(&[2, 2, 3]);
    // t.tril(1), t.triu(-1), t.triu(1)
    assert_eq!(
        x.tril(1).to_vec(),
        [1., 2., 0., 4., 5., 6., 7., 8., 0., 10., 11., 12.]
    );
    assert_eq!(x.triu(-1).to_vec(), x.to_vec());
    assert_eq!(
        x.triu(1).to_vec(),
        [0., 2., 3., 0., 0., 6., 0., 8., 9., 0., 0., 12.]
    );
    // tril(k) + triu(k + 1) puts the matrix back together
    for k in [-3isize, -1, 0, 2, 5] {
        let whole = x.tril(k).add(&x.triu(k + 1));
        assert_eq!(whole.to_vec(), x.to_vec(), "k = {k}");
    }
    // NaN and inf outside the triangle are zeroed, not multiplied
    let y = t(&[1., f64::NAN, f64::INFINITY, 2.], &[2, 2]);
    assert_eq!(y.tril(0).to_vec(), [1., 0., f64::INFINITY, 2.]);
}

#[test]
fn tril_gradient_is_masked_and_a_causal_mask_works() {
    let x = Tensor::<f64>::ones(&[3, 3]).requires_grad();
    let g = x.tril(0).mul_scalar(2.0).sum().backward().unwrap();
    assert_eq!(
        g.get(&x).unwrap().to_vec(),
        [2., 0., 0., 2., 2., 0., 2., 2., 2.]
    );
    // causal attention: future positions masked with -inf before softmax
    let scores = Tensor::<f64>::zeros(&[3, 3]);
    let future = Tensor::<f64>::ones(&[3, 3]).triu(1);
    let p = scores.masked_fill(&future, f64::NEG_INFINITY).softmax(-1);
    let v = p.to_vec();
    assert_eq!(&v[..3], &[1., 0., 0.]);
    assert_eq!(&v[3..6], &[0.5, 0.5, 0.]);
}

#[test]
fn chunk_split_select_as_torch() {
    // torch.arange(11).chunk(6): five chunks of 2 and one of 1
    let x = Tensor::<f64>::arange(11);
    let chunks: Vec<Vec<f64>> = x.chunk(6, 0).iter().map(|c| c.to_vec()).collect();
    assert_eq!(
        chunks,
        vec![
            vec![0., 1.],
            vec![2., 3.],
            vec![4., 5.],
            vec![6., 7.],
            vec![8., 9.],
            vec![10.]
        ]
    );
    // torch.arange(10).reshape(5, 2).split([1, 4])
    let m = Tensor::<f64>::arange(10).reshape(&[5, 2]);
    let parts = m.split(&[1, 4], 0);
    assert_eq!(parts[0].shape(), &[1, 2]);
    assert_eq!(parts[0].to_vec(), [0., 1.]);
    assert_eq!(parts[1].to_vec(), [2., 3., 4., 5., 6., 7., 8., 9.]);
    assert!(Tensor::<f64>::zeros(&[0, 2]).split(&[], 0).is_empty());
    // torch.arange(24).reshape(2, 3, 4).select(1, 2)
    let c = Tensor::<f64>::arange(24).reshape(&[2, 3, 4]);
    assert_eq!(c.select(1, 2).shape(), &[2, 4]);
    assert_eq!(
        c.select(1, 2).to_vec(),
        [8., 9., 10., 11., 20., 21., 22., 23.]
    );
    assert_eq!(c.select(-3, 1).to_vec(), c.narrow(0, 1, 1).to_vec());
}

#[test]
fn chunks_route_gradients_back_to_their_slices() {
    let x = Tensor::<f64>::arange(6).reshape(&[2, 3]).requires_grad();
    let c = x.chunk(2, 1); // [2, 2] and [2, 1]
    let loss = c[0].mul_scalar(10.0).sum().add(&c[1].square().sum());
    let g = loss.backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec(), [10., 10., 4., 10., 10., 10.]);
    let s = x.select(0, 1);
    let g = s.square().sum().backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec(), [0., 0., 0., 6., 8., 10.]);
}

#[test]
fn cast_between_f32_and_f64() {
    // torch.tensor([0.1], dtype=torch.float64).float().double()
    let x = Tensor::<f64>::from_vec(vec![0.1, 1.0 / 3.0], &[2]).unwrap();
    let y = x.cast::<f32>();
    assert_eq!(
        y.cast::<f64>().to_vec(),
        [0.10000000149011612, 0.3333333432674408]
    );
    // identity casts copy
    let z = y.cast::<f32>();
    assert_eq!(z.to_vec(), y.to_vec());
    let w = Tensor::<f32>::ones(&[2]).requires_grad();
    let msg = w.try_cast::<f64>().unwrap_err().to_string();
    assert!(
        msg.starts_with("cast: ") && msg.contains("detach()"),
        "{msg}"
    );
    assert!(!w.detach().cast::<f64>().needs_grad());
}

#[test]
fn sum_of_an_iterator_of_tensors() {
    let x = Tensor::<f64>::from_vec(vec![1., 2.], &[2])
        .unwrap()
        .requires_grad();
    let b = Tensor::<f64>::from_vec(vec![10., 20.], &[2, 1]).unwrap();
    let terms = vec![x.square(), b.clone(), x.clone()];
    let total: Tensor<f64> = terms.iter().sum();
    assert_eq!(total.shape(), &[2, 2]);
    assert_eq!(total.to_vec(), [12., 16., 22., 26.]);
    // d/dx of sum over the broadcast [2, 2]: 2 rows × (2x + 1)
    let g = total.sum().backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec(), [6., 10.]);
    let owned: Tensor<f64> = terms.into_iter().sum();
    assert_eq!(owned.to_vec(), total.to_vec());
    let empty: Tensor<f64> = Vec::<Tensor<f64>>::new().into_iter().sum();
    assert_eq!(empty.shape(), &[] as &[usize]);
    assert_eq!(empty.item(), 0.0);
    // second order through the sum: d²/dx² of Σ x³ + x² = 6x + 2
    let y: Tensor<f64> = [x.powi(3), x.square()].iter().sum();
    let g1 = grad(&y.sum(), &[&x], recorded()).unwrap();
    let g2 = grad(&g1[0].sum(), &[&x], GradOptions::default()).unwrap();
    assert_eq!(g2[0].to_vec(), [8., 14.]);
}
