//! The timing and recording rules of `shared/bench/common.py`, in Rust: warm-up,
//! calibrate the repetitions so that one sample lasts at least
//! `PEERS_MIN_SAMPLE_S` (0.1 s), `PEERS_SAMPLES` (7) samples, median. Results are
//! JSON lines with the fields of common.py's `record` and `record_value`,
//! appended to the file named by `PEERS_RESULTS`.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Instant;

/// Seconds per call: median, min and max over the samples, and the reps per sample.
pub struct Timing {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub reps: usize,
    pub n: usize,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

pub fn samples() -> usize {
    env_or("PEERS_SAMPLES", 7)
}

pub fn min_sample_s() -> f64 {
    env_or("PEERS_MIN_SAMPLE_S", 0.1)
}

/// common.py's `bench(fn, samples, min_time, warmup=3)`.
pub fn bench_with<R>(samples: usize, min_time: f64, mut f: impl FnMut() -> R) -> Timing {
    for _ in 0..3 {
        std::hint::black_box(f());
    }
    let mut reps = 1usize;
    loop {
        let t0 = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(f());
        }
        let dt = t0.elapsed().as_secs_f64();
        if dt >= min_time {
            break;
        }
        reps = (reps * 2).max((reps as f64 * min_time / dt.max(1e-9) * 1.1) as usize);
    }
    let mut ts = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t0 = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(f());
        }
        ts.push(t0.elapsed().as_secs_f64() / reps as f64);
    }
    let mut sorted = ts.clone();
    sorted.sort_by(f64::total_cmp);
    let k = sorted.len();
    let median = if k % 2 == 1 {
        sorted[k / 2]
    } else {
        (sorted[k / 2 - 1] + sorted[k / 2]) / 2.0
    };
    Timing {
        median,
        min: sorted[0],
        max: sorted[k - 1],
        reps,
        n: samples,
    }
}

/// `bench` with the default samples and minimum sample time.
pub fn bench<R>(f: impl FnMut() -> R) -> Timing {
    bench_with(samples(), min_sample_s(), f)
}

fn results_path() -> String {
    std::env::var("PEERS_RESULTS").unwrap_or_else(|_| "raw.jsonl".to_string())
}

fn append(line: &str) {
    let path = results_path();
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open PEERS_RESULTS={path}: {e}"));
    writeln!(f, "{line}").expect("write a result line");
}

/// A JSON string (the names here are plain ASCII, but escape anyway).
fn js(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (finite; NaN and infinities become null).
fn jn(x: f64) -> String {
    if x.is_finite() {
        format!("{x:?}")
    } else {
        "null".to_string()
    }
}

/// common.py's `record`: value = scale(median time); best = the better end;
/// spread = (max - min) / median of the times, in percent.
pub fn record(
    w: &str,
    peer: &str,
    variant: &str,
    case: &str,
    unit: &str,
    t: &Timing,
    scale: impl Fn(f64) -> f64,
) {
    let value = scale(t.median);
    let best = if unit == "GFLOP/s" {
        scale(t.min).max(scale(t.max))
    } else {
        scale(t.min)
    };
    let spread = 100.0 * (t.max - t.min) / t.median;
    append(&format!(
        "{{\"w\": {}, \"peer\": {}, \"variant\": {}, \"case\": {}, \"unit\": {}, \"value\": {}, \"best\": {}, \"spread_pct\": {}, \"reps\": {}, \"n\": {}}}",
        js(w), js(peer), js(variant), js(case), js(unit), jn(value), jn(best), jn(spread), t.reps, t.n
    ));
    println!(
        "  {w:3} {peer:10} {variant:14} {case:10} {:>12} {unit:8} (spread {spread:.1}%)",
        g4(value)
    );
}

/// common.py's `record_value`: one measured value, no spread.
pub fn record_value(w: &str, peer: &str, variant: &str, case: &str, unit: &str, value: f64) {
    append(&format!(
        "{{\"w\": {}, \"peer\": {}, \"variant\": {}, \"case\": {}, \"unit\": {}, \"value\": {}, \"spread_pct\": null}}",
        js(w), js(peer), js(variant), js(case), js(unit), jn(value)
    ));
    println!(
        "  {w:3} {peer:10} {variant:14} {case:10} {:>12} {unit}",
        g4(value)
    );
}

/// About four significant digits, for the progress lines.
fn g4(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let decimals = (3 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

pub fn ms(s: f64) -> f64 {
    s * 1e3
}

/// Records W1 at size `n`: the GEMM's time `t` as GFLOP/s.
pub fn record_gemm(peer: &str, variant: &str, n: usize, t: &Timing) {
    let gflops = |s: f64| 2.0 * (n as f64).powi(3) / s / 1e9;
    record("W1", peer, variant, &format!("n={n}"), "GFLOP/s", t, gflops);
}

/// The workload constants of common.py.
pub const GEMM_SIZES: [usize; 5] = [64, 128, 256, 512, 1024];
pub const MLP_BATCHES: [usize; 3] = [1, 32, 256];
pub const CHAIN_OPS: usize = 10_000;
pub const W4_ALPHA: f32 = 1e-4;
pub const W4_LR: f32 = 0.05;
/// W6: this many W2 steps at this batch.
pub const W6_STEPS: usize = 100;
pub const W6_BATCH: usize = 256;

/// W3's expected gradient, d/dx0 of 5,000 × (x·1.0001 + 0.0001).
pub fn chain_grad() -> f32 {
    1.0001f64.powi((CHAIN_OPS / 2) as i32) as f32
}

/// W3's tail, the same for every peer: `run` (one chain forward and backward,
/// returning the leaf's gradient) must give [`chain_grad`], then it is timed
/// and recorded in µs per op.
pub fn bench_chain(peer: &str, variant: &str, mut run: impl FnMut() -> f32) {
    let g = run();
    assert!(
        (g - chain_grad()).abs() < 1e-3,
        "{peer} {variant} W3 gradient {g}"
    );
    let t = bench_with(samples(), 0.3, run);
    record(
        "W3",
        peer,
        variant,
        &format!("{CHAIN_OPS} ops"),
        "us/op",
        &t,
        |s| s / CHAIN_OPS as f64 * 1e6,
    );
}

/// The 100 two-moons points of common.py (`benches/data/moons.csv` of the
/// repository): x as [n·2] row-major, labels in {−1, +1}.
pub fn moons() -> (Vec<f32>, Vec<f32>) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for line in include_str!("../../benches/data/moons.csv").lines() {
        let v: Vec<f32> = line
            .split(',')
            .map(|s| s.trim().parse().expect("a number"))
            .collect();
        xs.extend_from_slice(&v[..2]);
        ys.push(v[2]);
    }
    (xs, ys)
}

/// A small deterministic generator for the random labels (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }
    pub fn labels(&mut self, n: usize, classes: usize) -> Vec<usize> {
        (0..n).map(|_| self.below(classes)).collect()
    }
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
