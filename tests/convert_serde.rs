//! Feature `serde`: tensors and optimizer configs through JSON.
#![cfg(feature = "serde")]

use ferrograd::optim::{AdamConfig, SgdConfig};
use ferrograd::Tensor;

#[test]
fn tensors_round_trip_as_shape_and_row_major_data() {
    let t = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let json = serde_json::to_string(&t.t()).unwrap();
    assert_eq!(json, r#"{"shape":[3,2],"data":[1.0,4.0,2.0,5.0,3.0,6.0]}"#);
    let back: Tensor<f64> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t.t());
    assert!(!back.needs_grad());
    let s: Tensor<f32> = serde_json::from_str(r#"{"shape":[],"data":[2.5]}"#).unwrap();
    assert_eq!(s.item(), 2.5);
}

#[test]
fn data_that_does_not_fit_the_shape_is_an_error() {
    for bad in [
        r#"{"shape":[2,2],"data":[1.0,2.0,3.0]}"#,
        r#"{"shape":[4294967296,4294967296,16],"data":[]}"#,
        r#"{"shape":[2],"data":[1.0,2.0],"grad":true}"#,
        r#"{"shape":[2]}"#,
    ] {
        let e = serde_json::from_str::<Tensor<f32>>(bad);
        assert!(e.is_err(), "{bad} was accepted");
    }
    let e = serde_json::from_str::<Tensor<f32>>(r#"{"shape":[2,2],"data":[1.0]}"#).unwrap_err();
    assert!(e.to_string().contains("[2, 2]"), "{e}");
}

#[test]
fn optimizer_configs_round_trip() {
    let c = AdamConfig::<f32> {
        lr: 3e-4,
        weight_decay: 0.1,
        ..Default::default()
    };
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<AdamConfig<f32>>(&json).unwrap(), c);
    let s: SgdConfig<f64> = serde_json::from_str(
        r#"{"lr":0.1,"momentum":0.9,"dampening":0.0,"nesterov":true,"weight_decay":0.0}"#,
    )
    .unwrap();
    assert!(s.nesterov && s.momentum == 0.9);
}
