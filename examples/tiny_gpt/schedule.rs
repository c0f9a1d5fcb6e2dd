//! The learning rate of each step: nanoGPT's linear warm-up and cosine decay,
//! as an [`LrSchedule`] so that a [`Scheduler`](ferrograd::optim::lr::Scheduler)
//! applies it and a checkpoint carries it.

use std::collections::BTreeMap;
use std::f64::consts::PI;

use ferrograd::optim::lr::LrSchedule;
use ferrograd::Error;

use super::options::ScheduleKind;

/// The rate of step `it` (counting from 0) of a run of `steps` steps, for the
/// peak rate `lr`:
///
/// - `it < warmup`: `lr · (it + 1) / warmup`;
/// - otherwise, with `r = (it − warmup) / max(1, steps − 1 − warmup)`:
///   `lr/10 + ½ (1 + cos(π r)) (lr − lr/10)`, from `lr` right after the warm-up
///   down to `lr/10` at the last step, `steps − 1`, exactly;
/// - past the last step (a run extended on resume is a new schedule), `lr/10`.
///
/// With [`ScheduleKind::Constant`], `lr` at every step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    pub kind: ScheduleKind,
    pub warmup: usize,
    pub steps: usize,
}

impl WarmupCosine {
    /// The rate of step `it` for the peak `lr`, in `f64`.
    pub fn at(&self, it: usize, lr: f64) -> f64 {
        if self.kind == ScheduleKind::Constant {
            return lr;
        }
        if it < self.warmup {
            return lr * (it + 1) as f64 / self.warmup as f64;
        }
        let min = lr / 10.0;
        let span = self.steps.saturating_sub(1 + self.warmup).max(1);
        let r = ((it - self.warmup) as f64 / span as f64).min(1.0);
        min + 0.5 * (1.0 + (PI * r).cos()) * (lr - min)
    }
}

impl LrSchedule<f32> for WarmupCosine {
    fn lr(&self, step: usize, base_lr: f32) -> f32 {
        self.at(step, f64::from(base_lr)) as f32
    }

    fn state_dict(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("kind".to_string(), format!("WarmupCosine-{}", self.kind)),
            ("warmup".to_string(), self.warmup.to_string()),
            ("steps".to_string(), self.steps.to_string()),
        ])
    }

    /// Checks that the saved schedule is this one (the run's settings come from
    /// the checkpoint; `--steps` may change the length).
    fn load_state_dict(&mut self, state: &BTreeMap<String, String>) -> Result<(), Error> {
        let kind = format!("WarmupCosine-{}", self.kind);
        if state.get("kind") != Some(&kind) || state.get("warmup") != Some(&self.warmup.to_string())
        {
            return Err(Error::Format(format!(
                "the checkpoint's schedule {state:?} is not {kind} with warmup {}",
                self.warmup
            )));
        }
        Ok(())
    }
}
