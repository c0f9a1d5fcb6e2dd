//! `gradcheck_module`: gradients with respect to a module's own parameters, and
//! closures that return `Result`.

use ferrograd::gradcheck::{gradcheck, gradcheck_module, gradgradcheck, GradCheck};
use ferrograd::loss::cross_entropy;
use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{Error, Tensor};

fn model() -> (Mlp<f64>, Tensor<f64>) {
    let mut rng = StdRng::seed_from_u64(5);
    let m = Mlp::<f64>::new(&[3, 4, 3], Activation::Tanh, &mut rng);
    (m, Tensor::<f64>::randn(&[6, 3], &mut rng))
}

#[test]
fn a_model_with_a_loss_that_returns_result() {
    let (m, x) = model();
    let labels = [0, 2, 1, 1, 0, 2];
    let before: Vec<Vec<f64>> = m.parameters().iter().map(|p| p.to_vec()).collect();
    let report = gradcheck_module(&m, |m| cross_entropy(&m.forward(&x), &labels)).unwrap();
    assert_eq!(report.inputs_checked, 4);
    assert_eq!(report.elements_checked, 3 * 4 + 4 + 4 * 3 + 3);
    assert_eq!(report.outputs, 1);
    let after: Vec<Vec<f64>> = m.parameters().iter().map(|p| p.to_vec()).collect();
    assert_eq!(before, after, "parameters are restored exactly");
    // a vector output: every Jacobian row
    let report = gradcheck_module(&m, |m| m.forward(&x)).unwrap();
    assert_eq!(report.outputs, 18);
}

#[test]
fn a_wrong_gradient_names_the_parameter_and_parameters_are_restored() {
    let (m, x) = model();
    let before: Vec<Vec<f64>> = m.parameters().iter().map(|p| p.to_vec()).collect();
    // the second weight enters as w·stopgrad(w): analytic w, numeric 2w
    let err = gradcheck_module(&m, |m| {
        let w = &m.parameters()[2];
        m.forward(&x).sum() + (w * &w.detach()).sum() * 0.5
    })
    .unwrap_err();
    match &err {
        Error::GradCheckParameter { name, element, .. } => {
            assert_eq!(name, &m.named_parameters()[2].0);
            assert_eq!(*element, 0);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(
        err.to_string().starts_with(&format!(
            "gradcheck: parameter `{}`, element 0 (index [0, 0]), output element 0",
            m.named_parameters()[2].0
        )),
        "{err}"
    );
    let after: Vec<Vec<f64>> = m.parameters().iter().map(|p| p.to_vec()).collect();
    assert_eq!(before, after);
}

#[test]
fn frozen_parameters_are_left_out_and_errors_from_f_end_the_check() {
    let (m, x) = model();
    let params = m.parameters();
    params[0].set_requires_grad(false);
    params[1].set_requires_grad(false);
    let report = gradcheck_module(&m, |m| m.forward(&x).square().sum()).unwrap();
    assert_eq!(report.inputs_checked, 2);
    assert_eq!(report.elements_checked, 4 * 3 + 3);
    params[2].set_requires_grad(false);
    params[3].set_requires_grad(false);
    assert!(matches!(
        gradcheck_module(&m, |m| m.forward(&x).sum()),
        Err(Error::InvalidArgument { .. })
    ));
    params.iter().for_each(|p| p.set_requires_grad(true));
    let err = GradCheck::default()
        .check_module(&m, |m| cross_entropy(&m.forward(&x), &[0, 1, 2, 3, 0, 1]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::IndexOutOfRange {
                index: 3,
                size: 3,
                ..
            }
        ),
        "the loss's own error ends the check: {err}"
    );
}

#[test]
fn plain_checks_take_result_closures_too() {
    let p = Tensor::<f64>::from_vec(vec![0.2, -0.4, 0.9], &[3])
        .unwrap()
        .requires_grad();
    let y = Tensor::<f64>::from_vec(vec![0.0, 1.0, 0.5], &[3]).unwrap();
    gradcheck(
        |t| ferrograd::loss::mse(&t[0].sigmoid(), &y),
        std::slice::from_ref(&p),
    )
    .unwrap();
    gradgradcheck(
        |t| ferrograd::loss::mse(&t[0].sigmoid(), &y),
        std::slice::from_ref(&p),
    )
    .unwrap();
    let err = gradcheck(|t| t[0].try_reshape(&[2, 2]), &[p]).unwrap_err();
    assert!(
        matches!(err, Error::ShapeMismatch { op: "reshape", .. }),
        "{err}"
    );
}
