//! `examples/distributed_gpt.rs` run as a test on the in-process group: a
//! small GPT trained by 2 ranks follows the single-process run with the same
//! global batch, and the replicas agree bit for bit.

#[allow(dead_code)]
#[path = "../examples/distributed_gpt.rs"]
mod distributed_gpt;

use distributed_gpt::{parse, run_local};

fn small(ranks: usize) -> (distributed_gpt::tiny_gpt_options::Options, usize) {
    let args =
        "--steps 30 --warmup 5 --lr 3e-3 --layers 1 --width 32 --heads 2 --batch 16 --ranks R"
            .replace('R', &ranks.to_string());
    parse(args.split(' ').map(String::from).collect())
        .unwrap()
        .unwrap()
}

#[test]
fn two_ranks_follow_the_single_process_run() {
    let (o, _) = small(1);
    let single = run_local(&o, 1).unwrap().remove(0);
    assert_eq!(single.losses.len(), 30);
    assert!(
        single.losses[29] < 0.8 * single.losses[0],
        "it learns: {:?}",
        single.losses
    );
    let (o2, ranks) = small(2);
    assert_eq!(ranks, 2);
    let runs = run_local(&o2, 2).unwrap();
    assert_eq!(runs[0].parameters, runs[1].parameters, "replicas agree");
    assert_eq!(runs[0].losses, runs[1].losses);
    for (step, (a, b)) in runs[0].losses.iter().zip(&single.losses).enumerate() {
        let rel = (a - b).abs() / b;
        assert!(rel < 1e-4, "step {step}: 2 ranks {a} vs 1 rank {b}");
    }
    let max_param = runs[0]
        .parameters
        .iter()
        .zip(&single.parameters)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_param < 1e-4, "parameters differ by {max_param}");
}

#[test]
fn an_uneven_batch_or_dropout_is_refused() {
    let (mut o, _) = small(2);
    o.batch = 15;
    let e = run_local(&o, 2).unwrap_err();
    assert!(e.to_string().contains("must split evenly"), "{e}");
    let (mut o, _) = small(2);
    o.dropout = 0.1;
    assert!(run_local(&o, 2)
        .unwrap_err()
        .to_string()
        .contains("dropout"));
}
