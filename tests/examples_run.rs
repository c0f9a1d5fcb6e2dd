//! The examples' core, run as tests: `examples/leaf_flower/` and
//! `examples/moons.rs` are included as modules and their `run` functions called,
//! briefly and at their full default settings (both take about a second in a
//! debug build), writing into temporary directories.

#[allow(dead_code)]
#[path = "../examples/leaf_flower/main.rs"]
mod leaf_flower;

#[allow(dead_code)]
#[path = "../examples/moons.rs"]
mod moons;

use std::collections::BTreeMap;
use std::path::PathBuf;

use ferrograd::io::{load_into, load_safetensors, load_safetensors_metadata};
use ferrograd::nn::{Activation, Mlp};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::Tensor;

use leaf_flower::{LossKind, OptimizerKind};

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("ferrograd-examples-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn leaf_options(out: &TempDir) -> leaf_flower::Options {
    leaf_flower::Options {
        out: out.0.clone(),
        ..Default::default()
    }
}

// ----- leaf_flower -----

#[test]
fn leaf_flower_short_run_learns_and_writes_its_files() {
    let dir = TempDir::new("leaf-short");
    let o = leaf_flower::Options {
        epochs: 3,
        samples: 200,
        ..leaf_options(&dir)
    };
    let s = leaf_flower::run(&o).expect("the run succeeds");

    // it learns: from a coin flip to well above chance, the loss falling
    assert_eq!(s.test_samples, 50);
    assert!(s.test_accuracy >= 0.85, "test accuracy {}", s.test_accuracy);
    assert_eq!(s.epoch_losses.len(), 4); // epoch 0 (random weights) and 3 epochs
    assert_eq!(s.test_losses.len(), 4);
    assert!(
        s.epoch_losses[3] < 0.5 * s.epoch_losses[0],
        "{:?}",
        s.epoch_losses
    );
    // untrained, the summed L1 loss of a near-uniform softmax is close to 1
    assert!(
        (0.6..1.4).contains(&s.epoch_losses[0]),
        "{:?}",
        s.epoch_losses
    );

    // the weights load back, equal to the trained network's
    assert_eq!(s.weights, dir.0.join("leaf_flower.safetensors"));
    let saved: BTreeMap<String, Tensor> = load_safetensors(&s.weights).expect("a valid file");
    let names: Vec<&str> = saved.keys().map(String::as_str).collect();
    assert_eq!(names, ["b1", "b2", "input_mean", "input_std", "w1", "w2"]);
    for (name, t) in s.net.named() {
        assert_eq!(saved[name].shape(), t.shape(), "{name}");
        assert_eq!(saved[name].to_vec(), t.to_vec(), "{name}");
    }
    assert_eq!(saved["w1"].shape(), &[4, 16]);
    assert!(saved["input_std"].to_vec().iter().all(|&s| s > 0.0));
    let meta = load_safetensors_metadata(&s.weights).expect("metadata");
    assert_eq!(meta["inputs"], "R,G,B,Vol");
    assert_eq!(meta["outputs"], "leaf,flower");
    assert_eq!(meta["loss"], "l1");

    // the loss curve is an SVG with both series
    assert_eq!(s.curve, dir.0.join("loss_curve.svg"));
    let svg = std::fs::read_to_string(&s.curve).expect("the curve was written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(">epoch</text>") && svg.contains(">average loss</text>"));
    assert!(svg.contains("train (epoch average)") && svg.contains(">test</text>"));
    assert_eq!(svg.matches("<polyline").count(), 3); // the axes and two series

    // the first and the last layer's gradient norms, per epoch, from Gradients::norms
    assert_eq!(s.grad_norms.len(), 3);
    assert!(
        s.grad_norms
            .iter()
            .flatten()
            .all(|&n| n.is_finite() && n > 0.0),
        "{:?}",
        s.grad_norms
    );

    // the graph of the first sample's loss, with its gradient norms
    assert_eq!(s.graph, dir.0.join("graph.dot"));
    let dot = std::fs::read_to_string(&s.graph).expect("the graph was written");
    for label in [
        r#"label="w1\n[4, 16]\nrequires_grad=true""#,
        r#"label="w2\n[16, 2]\nrequires_grad=true""#,
        r#"label="tanh\n[1, 16]\nrequires_grad=true""#,
        r#"label="softmax\n[1, 2]\nrequires_grad=true""#,
    ] {
        assert!(dot.contains(label), "{label} in {dot}");
    }
    assert_eq!(
        dot.matches("[label=\"‖g‖=").count(),
        4,
        "one edge per weight: {dot}"
    );
    assert!(!dot.contains("not in the graph"));
    if let Some(svg) = &s.graph_svg {
        assert_eq!(svg, &dir.0.join("graph.svg"));
        let svg = std::fs::read_to_string(svg).expect("Graphviz wrote the SVG");
        assert!(svg.contains("<svg") && svg.contains("w1"));
    }
}

#[test]
fn leaf_flower_first_step_tells_the_seed_story() {
    let dir = TempDir::new("leaf-first");
    let o = leaf_flower::Options {
        epochs: 0,
        samples: 40,
        ..leaf_options(&dir)
    };
    let s = leaf_flower::run(&o).expect("the run succeeds");
    let f = &s.first;
    // softmax outputs sum to 1; the L1 loss against (1, 0) is |1 − p| + |0 − q|
    assert!((f.outputs[0] + f.outputs[1] - 1.0).abs() < 1e-6);
    let l1 = (1.0 - f.outputs[0]).abs() + f.outputs[1].abs();
    assert!((f.loss - l1).abs() < 1e-6, "{} vs {l1}", f.loss);
    // the update rule, and the loss moving as the gradient predicted
    assert_eq!(f.lr, 0.1);
    assert!((f.new - (f.old - f.lr * f.grad)).abs() < 1e-7);
    assert_ne!(f.grad, 0.0);
    assert!(f.loss_after < f.loss, "{f:?}");
    let predicted = f.loss + f.grad * (f.new - f.old);
    assert!(
        (f.loss_after - predicted).abs() < 0.1 * (f.loss - f.loss_after),
        "{f:?}"
    );
    // the weight shown is w2[unit, 0], and the network keeps the update
    assert_eq!(s.net.w2.to_vec()[2 * f.unit], f.new);
    // no epoch: only the loss of the (barely changed) random weights
    assert_eq!(s.epoch_losses.len(), 1);
}

/// The full default run, which the README's main command makes, reaches 95% on
/// its test split with every loss and both optimizers at their default learning
/// rates.
fn assert_default_run_reaches_95(loss: LossKind) {
    for optimizer in [OptimizerKind::Sgd, OptimizerKind::Adam] {
        let dir = TempDir::new(&format!("leaf-{}-{}", loss.name(), optimizer.name()));
        let o = leaf_flower::Options {
            loss,
            optimizer,
            ..leaf_options(&dir)
        };
        let s = leaf_flower::run(&o).expect("the run succeeds");
        assert_eq!(s.test_samples, 250);
        assert_eq!(s.epoch_losses.len(), 31);
        assert!(
            s.test_accuracy >= 0.95,
            "--loss {} --optimizer {}: test accuracy {}",
            loss.name(),
            optimizer.name(),
            s.test_accuracy
        );
        let last = *s.epoch_losses.last().unwrap();
        assert!(last < 0.2 * s.epoch_losses[0], "{:?}", s.epoch_losses);
    }
}

#[test]
fn leaf_flower_default_l1_reaches_95_percent() {
    assert_default_run_reaches_95(LossKind::L1);
}

#[test]
fn leaf_flower_default_mse_reaches_95_percent() {
    assert_default_run_reaches_95(LossKind::Mse);
}

#[test]
fn leaf_flower_default_ce_reaches_95_percent() {
    assert_default_run_reaches_95(LossKind::Ce);
}

#[test]
fn leaf_flower_data_is_balanced_seeded_and_tells_the_classes_apart() {
    let data = leaf_flower::generate(1000, &mut StdRng::seed_from_u64(7));
    assert_eq!(
        data,
        leaf_flower::generate(1000, &mut StdRng::seed_from_u64(7))
    );
    assert_ne!(
        data,
        leaf_flower::generate(1000, &mut StdRng::seed_from_u64(8))
    );
    let (leaves, flowers): (Vec<_>, Vec<_>) = data.iter().partition(|s| s.class == 0);
    assert_eq!((leaves.len(), flowers.len()), (500, 500));
    // shuffled: the first hundred hold both classes
    let first: usize = data[..100].iter().map(|s| s.class).sum();
    assert!((30..70).contains(&first), "{first}");
    for s in &data {
        assert!(s.features[..3].iter().all(|c| (0.0..=1.0).contains(c)));
        assert!(s.features[3] > 0.0);
    }
    let mean = |v: &[&leaf_flower::Sample], f: &dyn Fn(&[f32; 4]) -> f32| {
        v.iter().map(|s| f(&s.features)).sum::<f32>() / v.len() as f32
    };
    let greenness = |f: &[f32; 4]| f[1] - f[0].max(f[2]);
    let volume = |f: &[f32; 4]| f[3];
    // leaves greener and smaller, flowers more colourful and larger
    assert!(
        mean(&leaves, &greenness) > 0.2,
        "{}",
        mean(&leaves, &greenness)
    );
    assert!(
        mean(&flowers, &greenness) < -0.2,
        "{}",
        mean(&flowers, &greenness)
    );
    assert!(mean(&leaves, &volume) < 1.6 && mean(&flowers, &volume) > 4.0);
    // but they overlap: some leaves are less green than some flowers
    let least_green_leaf = leaves
        .iter()
        .map(|s| greenness(&s.features))
        .fold(1.0, f32::min);
    let greenest_flower = flowers
        .iter()
        .map(|s| greenness(&s.features))
        .fold(-1.0, f32::max);
    assert!(least_green_leaf < greenest_flower);
}

#[test]
fn leaf_flower_options_from_the_command_line() {
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let o = leaf_flower::Options::from_args(args(&[
        "--epochs",
        "5",
        "--lr=0.3",
        "--loss",
        "ce",
        "--optimizer",
        "adam",
        "--seed",
        "3",
        "--out",
        "some/dir",
        "--batch-size",
        "8",
    ]))
    .expect("valid options")
    .expect("not --help");
    assert_eq!(o.epochs, 5);
    assert_eq!(o.lr, Some(0.3));
    assert_eq!(o.learning_rate(), 0.3);
    assert_eq!((o.loss, o.optimizer), (LossKind::Ce, OptimizerKind::Adam));
    assert_eq!(o.seed, 3);
    assert_eq!(o.batch_size, 8);
    assert_eq!(o.out, PathBuf::from("some/dir"));

    let d = leaf_flower::Options::from_args(args(&[])).unwrap().unwrap();
    assert_eq!((d.epochs, d.seed, d.lr), (30, 2, None));
    assert_eq!((d.loss, d.optimizer), (LossKind::L1, OptimizerKind::Sgd));
    assert_eq!(d.learning_rate(), 0.1);
    let adam = leaf_flower::Options::from_args(args(&["--optimizer", "adam"]))
        .unwrap()
        .unwrap();
    assert_eq!(adam.learning_rate(), 0.01);
    assert!(d.out.ends_with("target/leaf_flower"));

    assert!(leaf_flower::Options::from_args(args(&["--help"]))
        .unwrap()
        .is_none());
    for (bad, message) in [
        (
            &["--loss", "huber"][..],
            "--loss: expected l1, mse or ce, got 'huber'",
        ),
        (
            &["--optimizer", "rmsprop"],
            "--optimizer: expected sgd or adam, got 'rmsprop'",
        ),
        (&["--epochs"], "--epochs needs a value"),
        (
            &["--epochs", "many"],
            "--epochs: expected a number, got 'many'",
        ),
        (
            &["--lr", "-1"],
            "--lr: expected a positive number, got '-1'",
        ),
        (
            &["--hidden", "0"],
            "--hidden: expected a number ≥ 1, got '0'",
        ),
        (&["--colour", "red"], "unknown option '--colour'"),
        (&["fast"], "unexpected argument 'fast'"),
    ] {
        assert_eq!(
            leaf_flower::Options::from_args(args(bad)).unwrap_err(),
            message
        );
    }
}

#[test]
fn loss_curve_svg_places_the_points() {
    // epochs 0, 1, 2 across the plot (x 72 to 696); losses 1, 0.5, 0 down the
    // y axis, which runs from 1 (y 48) to 0 (y 376)
    let svg = leaf_flower::loss_curve_svg("a & b", &[("train", &[1.0, 0.5, 0.0])]);
    assert!(
        svg.contains(r#"points="72.0,48.0 384.0,212.0 696.0,376.0""#),
        "{svg}"
    );
    assert!(svg.contains(">a &amp; b</text>"));
    // y ticks every 0.2, labelled without float noise
    for label in [
        ">0</text>",
        ">0.2</text>",
        ">0.4</text>",
        ">0.6</text>",
        ">1</text>",
    ] {
        assert!(svg.contains(label), "{label} in {svg}");
    }
    // x ticks at 0, 1, 2
    for label in [">0</text>", ">1</text>", ">2</text>"] {
        assert!(svg.contains(label), "{label}");
    }
    // a longer run: ticks at nice epochs only
    let losses: Vec<f32> = (0..=30).map(|e| 1.0 / (1.0 + e as f32)).collect();
    let svg = leaf_flower::loss_curve_svg("t", &[("a", &losses), ("b", &losses)]);
    assert!(svg.contains(">5</text>") && svg.contains(">30</text>"));
    assert!(!svg.contains(">7</text>"));
    assert_eq!(svg.matches("stroke-dasharray").count(), 2); // the second series and its legend
}

// ----- moons -----

fn moons_options(out: &TempDir) -> moons::Options {
    moons::Options {
        out: out.0.clone(),
        ..Default::default()
    }
}

#[test]
fn moons_default_run_reaches_97_percent_and_saves_a_loadable_mlp() {
    let dir = TempDir::new("moons-default");
    let o = moons_options(&dir);
    let s = moons::run(&o).expect("the run succeeds");
    assert!(s.test_accuracy >= 0.97, "test accuracy {}", s.test_accuracy);
    assert_eq!(s.epoch_losses.len(), 101);
    assert!(
        s.epoch_losses[100] < 0.1 * s.epoch_losses[0],
        "{:?}",
        s.epoch_losses
    );

    // the saved weights make an Mlp that classifies the test points as well
    let fresh: Mlp = Mlp::new(
        &[2, 16, 16, 2],
        Activation::Tanh,
        &mut StdRng::seed_from_u64(99),
    );
    let report = load_into(&fresh, &s.weights).expect("every weight loads");
    assert!(report.is_complete());
    let mut rng = StdRng::seed_from_u64(o.seed);
    let (points, labels) = moons::two_moons(o.samples, o.noise, &mut rng);
    let split = o.samples - o.samples / 4;
    let test_x = Tensor::from_vec(
        points[split..].iter().flatten().copied().collect(),
        &[o.samples / 4, 2],
    )
    .unwrap();
    assert_eq!(
        moons::accuracy(&fresh, &test_x, &labels[split..]),
        s.test_accuracy
    );

    let svg = std::fs::read_to_string(&s.picture).expect("the picture was written");
    assert!(svg.starts_with("<svg"));
    assert_eq!(svg.matches("<circle").count(), o.samples / 4);
    assert_eq!(svg.matches("<rect").count(), 60 * 60);
}

#[test]
fn moons_short_run_learns() {
    let dir = TempDir::new("moons-short");
    let o = moons::Options {
        epochs: 15,
        samples: 200,
        ..moons_options(&dir)
    };
    let s = moons::run(&o).expect("the run succeeds");
    assert!(s.test_accuracy >= 0.8, "test accuracy {}", s.test_accuracy);
    assert!(s.epoch_losses[15] < s.epoch_losses[0]);
}

#[test]
fn two_moons_are_two_half_circles() {
    let (points, labels) = moons::two_moons(400, 0.0, &mut StdRng::seed_from_u64(1));
    assert_eq!(labels.iter().filter(|&&c| c == 1).count(), 200);
    for (p, &c) in points.iter().zip(&labels) {
        // without noise, each point lies on its unit half circle
        let (cx, cy) = if c == 0 { (0.0, 0.0) } else { (1.0, 0.5) };
        let r = ((p[0] - cx).powi(2) + (p[1] - cy).powi(2)).sqrt();
        assert!((r - 1.0).abs() < 1e-5, "{p:?} of class {c}");
        assert!(if c == 0 { p[1] >= 0.0 } else { p[1] <= 0.5 });
    }
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let o = moons::Options::from_args(args(&["--noise=0.2", "--epochs", "7"]))
        .unwrap()
        .unwrap();
    assert_eq!((o.noise, o.epochs, o.lr), (0.2, 7, 0.3));
    assert_eq!(
        moons::Options::from_args(args(&["--noise", "loud"])).unwrap_err(),
        "--noise: expected a number ≥ 0, got 'loud'"
    );
}
