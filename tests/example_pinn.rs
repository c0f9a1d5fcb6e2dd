//! `examples/pinn.rs` run as a test: the physics-informed network, trained only
//! on the equation u'' = −π² sin(πx) and u(0) = u(1) = 0 (its loss built from
//! two nested `grad(.., create_graph)` calls), must match the exact solution
//! sin(πx) to within 1e-2 everywhere on [0, 1].
//!
//! A debug build takes about 16 ms per step, so the test that runs under a plain
//! `cargo test` trains for 500 steps (a complete, shorter cosine schedule; about
//! 8 s on two cores); the full default run of 2000 steps (about 33 s in debug,
//! under a second in release) is the `#[ignore]`d test
//! (`cargo test --release --test example_pinn -- --ignored`).

#[allow(dead_code)]
#[path = "../examples/pinn.rs"]
mod pinn;

use std::path::PathBuf;

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("ferrograd-pinn-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The points of the polyline of class `class` in `svg`, as (x, y) pixels.
fn polyline(svg: &str, class: &str) -> Vec<(f64, f64)> {
    let start = format!(r#"<polyline class="{class}" points=""#);
    let mut found = svg.match_indices(&start);
    let (at, _) = found
        .next()
        .unwrap_or_else(|| panic!("no {class} curve in the picture"));
    assert!(found.next().is_none(), "two {class} curves");
    let rest = &svg[at + start.len()..];
    rest[..rest.find('"').unwrap()]
        .split(' ')
        .map(|p| {
            let (x, y) = p.split_once(',').expect("x,y");
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

/// What every trained run must show: an error below 1e-2 against sin(πx), a
/// falling loss, and a picture holding both curves (which then lie on each other).
fn check_trained_run(o: &pinn::Options, s: &pinn::Summary) {
    // the accuracy the issue asks for, measured on 1001 points
    assert_eq!(s.curve.len(), 1001);
    assert_eq!(s.curve[0].0, 0.0);
    assert_eq!(s.curve[1000].0, 1.0);
    assert!((s.curve[500].2 - 1.0).abs() < 1e-12); // sin(π/2)
    let recomputed = s
        .curve
        .iter()
        .map(|&(x, u, _)| (u - (std::f64::consts::PI * x).sin()).abs())
        .fold(0.0, f64::max);
    assert_eq!(recomputed, s.max_error);
    assert!(s.max_error < 1e-2, "max error {}", s.max_error);

    // the loss fell by orders of magnitude from the random weights'
    assert_eq!(s.losses.len(), o.epochs + 1);
    let (first, last) = (s.losses[0], *s.losses.last().unwrap());
    assert!(first > 1.0, "{first}"); // residual π² sin(πx) at u ≈ 0: mean square ≈ 48
    assert!(last < 1e-4 * first, "loss {first} → {last}");

    // the picture: the network's u beside the exact sin(πx), and the error
    assert_eq!(s.picture, o.out.join("pinn.svg"));
    let svg = std::fs::read_to_string(&s.picture).expect("the picture was written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(">network u(x)</text>") && svg.contains(">exact sin(πx)</text>"));
    let u = polyline(&svg, "u");
    let exact = polyline(&svg, "exact");
    assert_eq!(u.len(), 1001);
    assert_eq!(exact.len(), 1001);
    assert_eq!(polyline(&svg, "error").len(), 1001);
    // same x pixels; y pixels within a pixel of each other (the panel is 300 px
    // for about 1.2 units of u, so an error below 1e-2 is under 3 px)
    for (a, b) in u.iter().zip(&exact) {
        assert_eq!(a.0, b.0);
        assert!((a.1 - b.1).abs() < 3.0, "{a:?} vs {b:?}");
    }
    // the arch: sin(πx) peaks at x = ½, above (smaller y than) both ends
    assert!(exact[500].1 < exact[0].1 - 200.0 && exact[500].1 < exact[1000].1 - 200.0);
}

#[test]
fn pinn_short_run_solves_the_equation_and_draws_both_curves() {
    let dir = TempDir::new("short");
    let o = pinn::Options {
        epochs: 500,
        out: dir.0.clone(),
        reports: 5,
        ..Default::default()
    };
    let s = pinn::run(&o).expect("the run succeeds");
    check_trained_run(&o, &s);
}

/// The example's own default run (`cargo run --release --example pinn`): about
/// 33 s in a debug build, under a second in release.
#[test]
#[ignore = "the full default run: about 33 s in a debug build; run with --release -- --ignored"]
fn pinn_default_run_solves_the_equation() {
    let dir = TempDir::new("default");
    let o = pinn::Options {
        out: dir.0.clone(),
        ..Default::default()
    };
    let s = pinn::run(&o).expect("the run succeeds");
    check_trained_run(&o, &s);
    assert!(s.max_error < 1e-3, "max error {}", s.max_error);
}

#[test]
fn pinn_untrained_network_is_far_off_and_still_drawn() {
    // zero steps: the measurement and the picture work on the random network,
    // whose error is large (so the 1e-2 above is a result of training)
    let dir = TempDir::new("untrained");
    let o = pinn::Options {
        epochs: 0,
        out: dir.0.clone(),
        ..Default::default()
    };
    let s = pinn::run(&o).expect("the run succeeds");
    assert_eq!(s.losses.len(), 1);
    assert!(s.max_error > 0.3, "max error {}", s.max_error);
    let svg = std::fs::read_to_string(&s.picture).expect("the picture was written");
    assert_eq!(polyline(&svg, "u").len(), 1001);
    assert_eq!(polyline(&svg, "exact").len(), 1001);
}

#[test]
fn pinn_options_from_the_command_line() {
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let o = pinn::Options::from_args(args(&[
        "--epochs",
        "300",
        "--seed=7",
        "--out",
        "some/dir",
        "--lr",
        "0.005",
        "--points",
        "33",
        "--hidden=16",
    ]))
    .expect("valid options")
    .expect("not --help");
    assert_eq!((o.epochs, o.seed, o.points, o.hidden), (300, 7, 33, 16));
    assert_eq!(o.lr, 0.005);
    assert_eq!(o.out, PathBuf::from("some/dir"));

    let d = pinn::Options::from_args(args(&[])).unwrap().unwrap();
    assert_eq!((d.epochs, d.seed, d.points, d.hidden), (2000, 0, 64, 32));
    assert_eq!(d.lr, 0.01);
    assert!(d.out.ends_with("target/pinn"));

    assert!(pinn::Options::from_args(args(&["--help"]))
        .unwrap()
        .is_none());
    for (bad, message) in [
        (&["--epochs"][..], "--epochs needs a value"),
        (
            &["--epochs", "many"],
            "--epochs: expected a number ≥ 0, got 'many'",
        ),
        (&["--lr", "0"], "--lr: expected a number > 0, got '0'"),
        (
            &["--points", "1"],
            "--points: expected a number ≥ 2, got '1'",
        ),
        (
            &["--seed", "-1"],
            "--seed: expected a whole number, got '-1'",
        ),
        (&["--colour", "red"], "unknown option '--colour'"),
        (&["fast"], "unexpected argument 'fast'"),
    ] {
        assert_eq!(pinn::Options::from_args(args(bad)).unwrap_err(), message);
    }
}
