//! The data set: (R, G, B, Vol) measurements of leaves and flowers, generated
//! from a seed, split into train and test, and scaled.

use ferrograd::rand::{rngs::StdRng, seq::SliceRandom, RngExt};
use ferrograd::{Error, Tensor};

/// One labelled measurement: colour in [0, 1] per channel, volume in cm³.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// R, G, B and Vol, in the order of [`FEATURES`].
    pub features: [f32; 4],
    /// 0 for a leaf, 1 for a flower (an index into [`CLASSES`]).
    pub class: usize,
}

/// A standard normal number (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>(); // in (0, 1], so the log is finite
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// `n` samples, half leaves and half flowers, in random order.
///
/// Leaves are mostly green and small (a median of 1.2 cm³); one in ten is an
/// autumn leaf, yellow to red. Flowers come in red, yellow, purple, pink, white and
/// blue, and one in twenty is green; they are larger (a median of 4.5 cm³). Every
/// colour channel gets noise, and the volumes spread widely (log-normal), so that
/// the classes overlap a little: no rule is right every time.
pub fn generate(n: usize, rng: &mut StdRng) -> Vec<Sample> {
    const FLOWER_COLOURS: [[f64; 3]; 6] = [
        [0.85, 0.15, 0.20], // red
        [0.95, 0.85, 0.15], // yellow
        [0.55, 0.20, 0.75], // purple
        [0.95, 0.55, 0.70], // pink
        [0.92, 0.92, 0.88], // white
        [0.30, 0.40, 0.90], // blue
    ];
    let mut samples: Vec<Sample> = (0..n)
        .map(|i| {
            let class = i % 2;
            let (base, median_volume, spread): ([f64; 3], f64, f64) = if class == 0 {
                // one leaf in ten is an autumn leaf, yellow to red
                let base = if rng.random_bool(0.1) {
                    [rng.random_range(0.6..0.9), rng.random_range(0.35..0.6), 0.1]
                } else {
                    [
                        rng.random_range(0.15..0.45),
                        rng.random_range(0.45..0.85),
                        rng.random_range(0.05..0.35),
                    ]
                };
                (base, 1.2, 0.4)
            } else {
                let base = if rng.random_bool(0.05) {
                    [0.45, 0.70, 0.35] // a green flower
                } else {
                    FLOWER_COLOURS[rng.random_range(0..FLOWER_COLOURS.len())]
                };
                (base, 4.5, 0.45)
            };
            let mut f = [0f32; 4];
            for (c, b) in f.iter_mut().zip(base) {
                *c = (b + 0.07 * normal(rng)).clamp(0.0, 1.0) as f32;
            }
            f[3] = (median_volume * (spread * normal(rng)).exp()) as f32;
            Sample { features: f, class }
        })
        .collect();
    // shuffle, so that the split into train and test takes both classes at random
    samples.shuffle(rng);
    samples
}

/// A split of the data as tensors, its inputs scaled with the training statistics.
pub struct Split {
    /// The samples as generated.
    pub samples: Vec<Sample>,
    /// `[n, 4]`: each feature minus the training mean, over the training standard deviation.
    pub x: Tensor,
    /// `[n, 2]`: the one-hot targets, (1, 0) for a leaf and (0, 1) for a flower.
    pub onehot: Tensor,
    /// The class of each sample.
    pub labels: Vec<usize>,
}

/// Per-feature mean and standard deviation of the training split.
pub struct Scaling {
    /// The means, in the order of [`FEATURES`].
    pub mean: [f32; 4],
    /// The standard deviations.
    pub std: [f32; 4],
}

impl Scaling {
    pub fn of(samples: &[Sample]) -> Scaling {
        let n = samples.len() as f64;
        let mut mean = [0f32; 4];
        let mut std = [0f32; 4];
        for j in 0..4 {
            let m = samples.iter().map(|s| s.features[j] as f64).sum::<f64>() / n;
            let v = samples
                .iter()
                .map(|s| (s.features[j] as f64 - m).powi(2))
                .sum::<f64>()
                / n;
            mean[j] = m as f32;
            std[j] = v.sqrt().max(1e-6) as f32;
        }
        Scaling { mean, std }
    }

    pub fn split(&self, samples: Vec<Sample>) -> Result<Split, Error> {
        let n = samples.len();
        let x = samples
            .iter()
            .flat_map(|s| (0..4).map(move |j| (s.features[j] - self.mean[j]) / self.std[j]))
            .collect();
        let labels: Vec<usize> = samples.iter().map(|s| s.class).collect();
        let onehot = labels
            .iter()
            .flat_map(|&c| [(c == 0) as u8 as f32, (c == 1) as u8 as f32])
            .collect();
        Ok(Split {
            x: Tensor::from_vec(x, &[n, 4])?,
            onehot: Tensor::from_vec(onehot, &[n, 2])?,
            labels,
            samples,
        })
    }
}
