//! The loss curve: an SVG line plot of the losses against the step, and the
//! same numbers as CSV.

use std::fmt::Write;

/// The losses of a run, step by step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The loss of each training step's batch (`batch_losses[k]`: step `k + 1`).
    pub batch_losses: Vec<f32>,
    /// The learning rate of each step.
    pub lrs: Vec<f32>,
    /// Each evaluation: the step it followed, train loss, val loss.
    pub evals: Vec<(usize, f64, f64)>,
}

impl History {
    /// The history as text (one line per record), for a checkpoint's metadata.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (l, lr) in self.batch_losses.iter().zip(&self.lrs) {
            // exact: the bits of the f32s
            let _ = write!(s, "{:08x}:{:08x};", l.to_bits(), lr.to_bits());
        }
        s.push('|');
        for (step, t, v) in &self.evals {
            let _ = write!(s, "{step}:{:016x}:{:016x};", t.to_bits(), v.to_bits());
        }
        s
    }

    /// Reads what [`to_text`](History::to_text) wrote.
    pub fn from_text(text: &str) -> Option<History> {
        let (steps, evals) = text.split_once('|')?;
        let mut h = History::default();
        for rec in steps.split(';').filter(|r| !r.is_empty()) {
            let (l, lr) = rec.split_once(':')?;
            h.batch_losses
                .push(f32::from_bits(u32::from_str_radix(l, 16).ok()?));
            h.lrs
                .push(f32::from_bits(u32::from_str_radix(lr, 16).ok()?));
        }
        for rec in evals.split(';').filter(|r| !r.is_empty()) {
            let mut f = rec.split(':');
            let step = f.next()?.parse().ok()?;
            let t = f64::from_bits(u64::from_str_radix(f.next()?, 16).ok()?);
            let v = f64::from_bits(u64::from_str_radix(f.next()?, 16).ok()?);
            h.evals.push((step, t, v));
        }
        Some(h)
    }

    /// The CSV: `step,lr,batch_loss,train_loss,val_loss`, one row per step (the
    /// last two filled at evaluations; step 0 is the evaluation before
    /// training, when there is one).
    pub fn csv(&self) -> String {
        let mut s = String::from("step,lr,batch_loss,train_loss,val_loss\n");
        let eval_at = |step: usize| self.evals.iter().find(|e| e.0 == step);
        if let Some((_, t, v)) = eval_at(0) {
            let _ = writeln!(s, "0,,,{t},{v}");
        }
        for (k, (l, lr)) in self.batch_losses.iter().zip(&self.lrs).enumerate() {
            let step = k + 1;
            let _ = write!(s, "{step},{lr},{l},");
            match eval_at(step) {
                Some((_, t, v)) => {
                    let _ = writeln!(s, "{t},{v}");
                }
                None => s.push_str(",\n"),
            }
        }
        s
    }

    /// The batch losses averaged over windows of `w` steps (`w` centred on the
    /// last step of each window), for a readable curve.
    pub fn smoothed(&self, w: usize) -> Vec<(f64, f64)> {
        self.batch_losses
            .chunks(w.max(1))
            .enumerate()
            .map(|(i, c)| {
                let mean = c.iter().map(|&v| f64::from(v)).sum::<f64>() / c.len() as f64;
                ((i * w + c.len()) as f64, mean)
            })
            .collect()
    }
}

/// Plot size and margins.
const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 44.0;

/// A tick spacing of 1, 2 or 5 times a power of ten giving about `n` ticks
/// over `span`.
fn nice_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(f64::MIN_POSITIVE);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * p)
}

/// A tick label without float noise.
fn label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A series of the plot: its name, its colour and its points `(step, loss)`.
pub type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// An SVG line chart of `series` (name, colour, points `(step, loss)`), the
/// x axis from 0 to the last step, the y axis from 0 (or the smallest loss,
/// rounded down) to the largest loss.
pub fn loss_curve_svg(title: &str, series: &[Series<'_>]) -> String {
    let points = series.iter().flat_map(|s| s.2.iter());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        if y.is_finite() {
            x_max = x_max.max(x);
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let y_step = nice_step((y_max - y_min).max(1e-3), 6.0);
    let y_lo = (y_min / y_step).floor() * y_step;
    let y_hi = ((y_max / y_step).ceil() * y_step).max(y_lo + y_step);
    let x_step = nice_step(x_max, 8.0);
    let px = |x: f64| LEFT + x / x_max * (W - LEFT - RIGHT);
    let py = |y: f64| TOP + (y_hi - y) / (y_hi - y_lo) * (H - TOP - BOTTOM);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    // grid and ticks
    let mut y = y_lo;
    while y <= y_hi + y_step / 2.0 {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{text}</text>"##,
            x2 = W - RIGHT,
            yy = py(y),
            tx = LEFT - 6.0,
            ty = py(y) + 4.0,
            text = label(y, y_step)
        );
        y += y_step;
    }
    let mut x = 0.0;
    while x <= x_max + x_step / 2.0 {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            px(x),
            H - BOTTOM + 16.0,
            label(x, x_step)
        );
        x += x_step;
    }
    let _ = writeln!(
        s,
        r#"<polyline fill="none" stroke="black" points="{LEFT},{TOP} {LEFT},{0} {1},{0}"/>"#,
        H - BOTTOM,
        W - RIGHT
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">step</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 8.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {0})">loss (nats per token)</text>"#,
        (TOP + H - BOTTOM) / 2.0
    );
    // the series and their legend
    for (i, (name, colour, pts)) in series.iter().enumerate() {
        let path: Vec<String> = pts
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
        let ly = TOP + 8.0 + 18.0 * i as f64;
        let lx = W - RIGHT - 170.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}
