//! `examples/distributed_moons.rs` run as a test, on the in-process group: 2 and
//! 3 ranks print the loss curve of the single-process run with the same global
//! batch, and the ranks end with the same weights.

#[allow(dead_code)]
#[path = "../examples/distributed_moons.rs"]
mod distributed_moons;

use distributed_moons::{run_local, Options};
use ferrograd::io::Checkpoint;

fn options(ranks: usize, out: &std::path::Path) -> Options {
    let mut o = Options {
        ranks,
        ..Default::default()
    };
    o.moons.epochs = 20;
    o.moons.out = out.to_path_buf();
    o
}

#[test]
fn more_ranks_give_the_single_process_loss_curve() {
    let dir = std::env::temp_dir().join(format!("ferrograd-dist-moons-{}", std::process::id()));
    let single = run_local(&options(1, &dir)).unwrap();
    assert_eq!(single.len(), 1);
    let curve = &single[0].epoch_losses;
    assert_eq!(curve.len(), 21);
    assert!(curve[20] < 0.1 * curve[0], "{curve:?}");
    for ranks in [2, 3] {
        let runs = run_local(&options(ranks, &dir)).unwrap();
        assert_eq!(runs.len(), ranks);
        for (r, s) in runs.iter().enumerate() {
            assert_eq!((s.rank, s.world), (r, ranks));
            // the replicas agree bit for bit, and so do the reported losses
            assert_eq!(s.parameters, runs[0].parameters);
            assert_eq!(s.epoch_losses, runs[0].epoch_losses);
        }
        for (e, (a, b)) in runs[0].epoch_losses.iter().zip(curve).enumerate() {
            let rel = (a - b).abs() / b;
            assert!(
                rel < 1e-4,
                "{ranks} ranks, epoch {e}: loss {a} vs {b} in one process"
            );
        }
        // printed to 4 decimals, the curves are the same
        let printed = |c: &[f32]| c.iter().map(|l| format!("{l:.4}")).collect::<Vec<_>>();
        assert_eq!(
            printed(&runs[0].epoch_losses),
            printed(curve),
            "{ranks} ranks"
        );
        assert!(runs[0].test_accuracy >= 0.95, "{}", runs[0].test_accuracy);
    }
    // rank 0's checkpoint holds the trained weights
    let ck = Checkpoint::<f32>::load(dir.join("distributed_moons.safetensors")).unwrap();
    assert_eq!(ck.step(), 20);
    assert_eq!(ck.model_tensors().unwrap().len(), 6);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn options_take_ranks_and_the_moons_options() {
    let args = |a: &[&str]| Options::from_args(a.iter().map(|s| s.to_string()));
    let o = args(&["--ranks", "3", "--epochs=7", "--batch-size", "10"])
        .unwrap()
        .unwrap();
    assert_eq!((o.ranks, o.moons.epochs, o.moons.batch_size), (3, 7, 10));
    assert!(o.moons.out.ends_with("target/distributed_moons"));
    assert_eq!(args(&[]).unwrap().unwrap().ranks, 2);
    assert!(args(&["--help"]).unwrap().is_none());
    assert_eq!(
        args(&["--ranks", "0"]).unwrap_err(),
        "--ranks: expected a number ≥ 1, got '0'"
    );
}
