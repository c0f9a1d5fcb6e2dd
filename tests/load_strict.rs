//! `io::load_into` is strict (every key fits, or nothing loads);
//! `io::load_into_lenient` reports what it skipped.

mod common;

use common::TempPath;
use std::collections::BTreeMap;

use ferrograd::io::{load_into, load_into_lenient, load_state_dict, save_safetensors};
use ferrograd::nn::{Activation, Linear, Mlp, Module};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{Error, Tensor};

#[derive(Module)]
struct Net {
    fc: Linear,
    out: Linear,
    #[module(buffer)]
    mean: Tensor,
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.out.forward(&self.fc.forward(&(x - &self.mean)))
    }
}

fn net(fill: f32) -> Net {
    let lin = |i: usize, o: usize| {
        Linear::from_tensors(Tensor::full(&[o, i], fill), Some(Tensor::full(&[o], fill))).unwrap()
    };
    Net {
        fc: lin(2, 3),
        out: lin(3, 1),
        mean: Tensor::full(&[2], fill),
    }
}

fn values(m: &Net) -> Vec<Vec<f32>> {
    m.named_parameters()
        .iter()
        .chain(&m.named_buffers())
        .map(|(_, t)| t.to_vec())
        .collect()
}

fn format_message(r: ferrograd::Result<ferrograd::io::LoadReport>) -> String {
    match r {
        Err(Error::Format(m)) => m,
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

#[test]
fn strict_load_names_every_missing_unexpected_and_mismatched_key() -> ferrograd::Result<()> {
    let path = TempPath::new("all");
    let w = Tensor::<f32>::ones(&[3, 2]);
    let wrong = Tensor::<f32>::ones(&[2, 3]);
    let b = Tensor::<f32>::ones(&[3]);
    let mean = Tensor::<f32>::ones(&[5]);
    save_safetensors(
        &path,
        &[
            ("fc.weight", &w),
            ("fc.bias", &b),
            ("out.weight", &wrong), // [1, 3] in the module
            ("mean", &mean),        // [2] in the module
            ("extra", &b),
            ("head.weight", &b),
        ],
    )?;
    let target = net(0.0);
    let before = values(&target);
    let m = format_message(load_into(&target, &path));
    assert!(m.starts_with("checkpoint does not fit the module: "), "{m}");
    assert!(m.contains(r#"missing keys ["out.bias"]"#), "{m}");
    assert!(
        m.contains(r#"unexpected keys ["extra", "head.weight"]"#),
        "{m}"
    );
    assert!(
        m.contains(
            r#"parameter "out.weight" has shape [1, 3] in the module but [2, 3] in the checkpoint"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"buffer "mean" has shape [2] in the module but [5] in the checkpoint"#),
        "{m}"
    );
    assert_eq!(values(&target), before, "nothing is assigned");

    // the same through load_state_dict(strict) and the deprecated name
    let state = ferrograd::io::load_safetensors::<f32, _>(&path)?;
    let m2 = match load_state_dict(&target, &state, true) {
        Err(Error::Format(m)) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(m2, m);
    #[allow(deprecated)]
    let m3 = format_message(ferrograd::io::load_into_strict(&target, &path));
    assert_eq!(m3, m);
    Ok(())
}

#[test]
fn strict_load_fails_on_each_problem_alone() -> ferrograd::Result<()> {
    let source = net(2.0);
    let full: BTreeMap<String, Tensor> = source
        .named_parameters()
        .into_iter()
        .chain(source.named_buffers())
        .collect();

    // exact fit: loaded in named_parameters then named_buffers order
    let target = net(0.0);
    let report = load_state_dict(&target, &full, true)?;
    assert_eq!(
        report.loaded,
        ["fc.weight", "fc.bias", "out.weight", "out.bias", "mean"]
    );
    assert!(report.is_complete());
    assert_eq!(values(&target), values(&source));

    // a missing buffer
    let mut state = full.clone();
    state.remove("mean");
    let target = net(0.0);
    let m = match load_state_dict(&target, &state, true) {
        Err(Error::Format(m)) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        m,
        r#"checkpoint does not fit the module: missing keys ["mean"]"#
    );
    assert_eq!(target.fc.weight().to_vec(), vec![0.0; 6]);

    // one unexpected key
    let mut state = full.clone();
    state.insert("fc.scale".into(), Tensor::ones(&[1]));
    let m = match load_state_dict(&target, &state, true) {
        Err(Error::Format(m)) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        m,
        r#"checkpoint does not fit the module: unexpected keys ["fc.scale"]"#
    );

    // two shape mismatches, both named
    let mut state = full;
    state.insert("fc.bias".into(), Tensor::ones(&[4]));
    state.insert("out.bias".into(), Tensor::ones(&[]));
    let m = match load_state_dict(&target, &state, false) {
        Err(Error::Format(m)) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        m,
        "checkpoint does not fit the module: \
         parameter \"fc.bias\" has shape [3] in the module but [4] in the checkpoint; \
         parameter \"out.bias\" has shape [1] in the module but [] in the checkpoint"
    );
    assert_eq!(target.out.bias().unwrap().to_vec(), vec![0.0]);
    Ok(())
}

#[test]
fn lenient_load_reports_and_keeps_what_is_missing() -> ferrograd::Result<()> {
    let path = TempPath::new("lenient");
    let w = Tensor::<f32>::full(&[3, 2], 4.0);
    let extra = Tensor::<f32>::ones(&[7]);
    save_safetensors(&path, &[("fc.weight", &w), ("old_head.weight", &extra)])?;
    let target = net(1.0);
    let report = load_into_lenient(&target, &path)?;
    assert_eq!(report.loaded, ["fc.weight"]);
    assert_eq!(
        report.missing,
        ["fc.bias", "out.weight", "out.bias", "mean"]
    );
    assert_eq!(report.unexpected, ["old_head.weight"]);
    assert!(!report.is_complete());
    assert_eq!(
        report.to_string(),
        r#"loaded 1 tensors; missing ["fc.bias", "out.weight", "out.bias", "mean"]; unexpected ["old_head.weight"]"#
    );
    assert_eq!(target.fc.weight().to_vec(), vec![4.0; 6]);
    assert_eq!(target.fc.bias().unwrap().to_vec(), vec![1.0; 3]);
    assert_eq!(target.mean.to_vec(), vec![1.0; 2]);

    // shapes must still fit
    save_safetensors(&path, &[("fc.weight", &extra)])?;
    let m = format_message(load_into_lenient(&target, &path));
    assert!(
        m.contains(
            r#"parameter "fc.weight" has shape [3, 2] in the module but [7] in the checkpoint"#
        ),
        "{m}"
    );
    assert!(!m.contains("missing"), "{m}");
    assert_eq!(target.fc.weight().to_vec(), vec![4.0; 6]);
    Ok(())
}

#[test]
fn checkpoints_of_the_hand_written_layers_still_load() -> ferrograd::Result<()> {
    // an Mlp checkpoint as the layers named their tensors before the derive
    let path = TempPath::new("mlp");
    let t = |n: usize, shape: &[usize]| Tensor::<f32>::arange(n).reshape(shape);
    let (w0, b0, w1, b1) = (t(6, &[3, 2]), t(3, &[3]), t(3, &[1, 3]), t(1, &[1]));
    save_safetensors(
        &path,
        &[
            ("0.weight", &w0),
            ("0.bias", &b0),
            ("1.weight", &w1),
            ("1.bias", &b1),
        ],
    )?;
    let mlp: Mlp = Mlp::new(&[2, 3, 1], Activation::Relu, &mut StdRng::seed_from_u64(0));
    let report = load_into(&mlp, &path)?;
    assert!(report.is_complete());
    assert_eq!(mlp.layers()[0].weight().to_vec(), w0.to_vec());
    assert_eq!(mlp.layers()[1].bias().unwrap().to_vec(), vec![0.0]);
    // h = relu(w0·[1, 1] + b0) = [1, 6, 11]; y = w1·h + b1 = 0·1 + 1·6 + 2·11 + 0
    let y = mlp.forward(&Tensor::ones(&[1, 2]));
    assert_eq!(y.to_vec(), vec![28.0]);
    Ok(())
}
