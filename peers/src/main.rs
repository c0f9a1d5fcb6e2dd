//! The Rust peers' side of the six benchmark workloads (`shared/bench/WORKLOADS.md`):
//! candle, dfdx and burn, timed like `shared/bench/common.py` and recorded as its
//! JSON lines. See README.md.
//!
//! usage: ferrograd-peers [PEER...] [WORKLOAD...]
//!   PEER      candle, dfdx, burn-ndarray, burn-flex (default: every one built in)
//!   WORKLOAD  w1 w2 w3 w4 w5 w6 (default: all)
//! env:
//!   PEERS_RESULTS       the JSON-lines file results are appended to (default raw.jsonl)
//!   PEERS_THREADS       threads for the peers' thread pools (default 2): sets
//!                       RAYON_NUM_THREADS, MATMUL_NUM_THREADS and CANDLE_NUM_THREADS
//!                       where they are not set already
//!   PEERS_SAMPLES, PEERS_MIN_SAMPLE_S   as in common.py (7 samples of >= 0.1 s)
//!
//! W6 runs each peer's 100 W2 steps at B=256 in a child process of this binary
//! (`ferrograd-peers --w6-child PEER`) and records its peak RSS (VmHWM).

mod timing;

#[cfg(feature = "burn")]
mod burn_peer;
#[cfg(feature = "candle")]
mod candle_peer;
#[cfg(feature = "dfdx")]
mod dfdx_peer;

use std::process::Command;
use std::time::Instant;

use timing::*;

const ALL_PEERS: &[&str] = &[
    #[cfg(feature = "candle")]
    "candle",
    #[cfg(feature = "dfdx")]
    "dfdx",
    #[cfg(feature = "burn")]
    "burn-ndarray",
    #[cfg(feature = "burn")]
    "burn-flex",
];
const ALL_WORKLOADS: &[&str] = &["w1", "w2", "w3", "w4", "w5", "w6"];

fn threads() -> usize {
    std::env::var("PEERS_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

/// The peers read their thread counts from these variables on first use.
fn set_thread_env(n: usize) {
    for var in [
        "RAYON_NUM_THREADS",
        "MATMUL_NUM_THREADS",
        "CANDLE_NUM_THREADS",
    ] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, n.to_string());
        }
    }
}

/// The variant label: backend and threads, like bench_torch.py's "eager 2t".
fn variant(peer: &str) -> String {
    let backend = match peer {
        "burn-ndarray" => "ndarray",
        "burn-flex" => "flex",
        _ => "cpu",
    };
    format!("{backend} {}t", threads())
}

/// The `peer` field of the records.
fn peer_name(peer: &str) -> &str {
    peer.split('-').next().unwrap()
}

#[cfg(feature = "burn")]
fn burn_backend(peer: &str) -> burn_peer::Backend {
    match peer {
        "burn-ndarray" => burn_peer::Backend::NdArray,
        _ => burn_peer::Backend::Flex,
    }
}

/// One workload for one peer. False: the peer does not do that workload.
fn run(peer: &str, w: &str) -> bool {
    let v = variant(peer);
    match (peer, w) {
        #[cfg(feature = "candle")]
        ("candle", "w1") => candle_peer::w1(&v).unwrap(),
        #[cfg(feature = "candle")]
        ("candle", "w2") => candle_peer::w2(&v).unwrap(),
        #[cfg(feature = "candle")]
        ("candle", "w3") => candle_peer::w3(&v).unwrap(),
        #[cfg(feature = "candle")]
        ("candle", "w4") => candle_peer::w4(&v).unwrap(),
        #[cfg(feature = "candle")]
        ("candle", "w5") => candle_peer::w5(&v).unwrap(),
        #[cfg(feature = "dfdx")]
        ("dfdx", "w1") => dfdx_peer::w1(&v),
        #[cfg(feature = "dfdx")]
        ("dfdx", "w2") => dfdx_peer::w2(&v),
        #[cfg(feature = "dfdx")]
        ("dfdx", "w3") => dfdx_peer::w3(&v),
        #[cfg(feature = "dfdx")]
        ("dfdx", "w4") => dfdx_peer::w4(&v),
        #[cfg(feature = "burn")]
        ("burn-ndarray" | "burn-flex", "w1") => burn_peer::w1(burn_backend(peer), &v),
        #[cfg(feature = "burn")]
        ("burn-ndarray" | "burn-flex", "w2") => burn_peer::w2(burn_backend(peer), &v),
        #[cfg(feature = "burn")]
        ("burn-ndarray" | "burn-flex", "w3") => burn_peer::w3(burn_backend(peer), &v),
        #[cfg(feature = "burn")]
        ("burn-ndarray" | "burn-flex", "w4") => burn_peer::w4(burn_backend(peer), &v),
        (_, "w6") => w6(peer, &v),
        _ => return false,
    }
    true
}

/// W6 in a fresh process, so that the peak is this peer's alone.
fn w6(peer: &str, variant: &str) {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .args(["--w6-child", peer])
        .output()
        .expect("run the W6 child");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "W6 {peer} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The child prints "peak_rss_mib=X ms_per_step=Y".
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("W6 {peer}: no {name} in {text:?}"))
    };
    let (peak, ms_step) = (field("peak_rss_mib="), field("ms_per_step="));
    record_value(
        "W6",
        peer_name(peer),
        variant,
        &format!("{W6_STEPS} steps B={W6_BATCH}"),
        "MiB",
        peak,
    );
    println!("      ({ms_step:.3} ms/step over the {W6_STEPS} steps)");
}

/// The W6 child: 100 W2 steps at B=256, then VmHWM.
fn w6_child(peer: &str) {
    let mut step: Box<dyn FnMut() -> f32> = match peer {
        #[cfg(feature = "candle")]
        "candle" => {
            let mut w = candle_peer::W2::new(W6_BATCH).unwrap();
            Box::new(move || w.step().unwrap())
        }
        #[cfg(feature = "dfdx")]
        "dfdx" => {
            let mut w = dfdx_peer::W2::new(W6_BATCH);
            Box::new(move || w.step())
        }
        #[cfg(feature = "burn")]
        "burn-ndarray" | "burn-flex" => {
            let mut w = burn_peer::W2::new(burn_backend(peer), W6_BATCH);
            Box::new(move || w.step())
        }
        _ => panic!("unknown peer {peer}"),
    };
    let t0 = Instant::now();
    let mut loss = 0.0;
    for _ in 0..W6_STEPS {
        loss = step();
    }
    let dt = t0.elapsed().as_secs_f64();
    assert!(loss.is_finite());
    let peak = peak_rss_mib().expect("VmHWM in /proc/self/status");
    println!(
        "peak_rss_mib={peak:.1} ms_per_step={:.4}",
        dt / W6_STEPS as f64 * 1e3
    );
}

fn main() {
    set_thread_env(threads());
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Deep graphs (W3's 10,000 ops) are walked and dropped recursively by some
    // peers: run everything on a thread with a large stack.
    let worker = std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(move || {
            if args.first().map(String::as_str) == Some("--w6-child") {
                w6_child(args.get(1).expect("--w6-child PEER"));
                return;
            }
            let mut peers: Vec<&str> = Vec::new();
            let mut workloads: Vec<&str> = Vec::new();
            for a in &args {
                if let Some(p) = ALL_PEERS.iter().find(|p| **p == a.as_str()) {
                    peers.push(p);
                } else if let Some(w) = ALL_WORKLOADS.iter().find(|w| **w == a.as_str()) {
                    workloads.push(w);
                } else {
                    eprintln!("unknown argument {a:?}; peers built in: {ALL_PEERS:?}, workloads: {ALL_WORKLOADS:?}");
                    std::process::exit(2);
                }
            }
            if peers.is_empty() {
                peers = ALL_PEERS.to_vec();
            }
            if workloads.is_empty() {
                workloads = ALL_WORKLOADS.to_vec();
            }
            for peer in &peers {
                println!("== {peer} ({})", variant(peer));
                for w in &workloads {
                    if !run(peer, w) {
                        println!("  {} {peer}: not done (see peers/README.md)", w.to_uppercase());
                    }
                }
            }
        })
        .expect("spawn the worker");
    if worker.join().is_err() {
        std::process::exit(1);
    }
}
