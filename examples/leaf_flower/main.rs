//! Leaf or flower? ferrograd's teaching example: a small network learns to tell
//! leaves from flowers by their colour and size, and the program tells every step
//! of how it learns.
//!
//! 1. It generates a labelled data set of (R, G, B, Vol) measurements from a fixed
//!    seed and splits it into a training and a test part.
//! 2. It builds a network 4 → hidden → 2 with random weights and softmax outputs.
//! 3. It shows one sample's forward pass, its L1 loss, one weight's gradient and one
//!    gradient-descent update, with the numbers.
//! 4. It trains for epochs of mini-batches, printing the average loss per epoch
//!    and the size of the first and the last layer's gradients, and measures the
//!    accuracy on the test split.
//! 5. It saves the trained weights (safetensors), the loss curve (SVG) and the
//!    graph of the first sample's computation with its gradient norms (Graphviz
//!    DOT, and SVG when Graphviz's `dot` is installed).
//!
//! Run it with `cargo run --release --example leaf_flower`, and add options after
//! `--`: `--epochs N`, `--lr X`, `--loss l1|mse|ce`, `--optimizer sgd|adam`,
//! `--seed N`, `--hidden N`, `--batch-size N`, `--samples N`, `--out DIR`
//! (`--help` lists them).

mod data;
mod net;
mod options;
mod svg;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferrograd::data::{gather_rows, Batches};
use ferrograd::io::save_safetensors_with_metadata;
use ferrograd::loss::per_sample;
use ferrograd::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{no_grad, Error, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

pub use data::*;
pub use net::*;
pub use options::*;
pub use svg::*;

/// The inputs, in column order.
pub const FEATURES: [&str; 4] = ["R", "G", "B", "Vol"];
/// The classes, in output order: target (1, 0) is a leaf, (0, 1) a flower.
pub const CLASSES: [&str; 2] = ["leaf", "flower"];

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

/// The numbers of the first forward pass, backward pass and update.
#[derive(Clone, Debug)]
pub struct FirstStep {
    /// The sample's softmax outputs (leaf, flower) with the random weights.
    pub outputs: [f32; 2],
    /// Its L1 loss against (1, 0), summed over the outputs.
    pub loss: f32,
    /// The hidden unit whose weight to the "leaf" output is shown, `w2[k, 0]`.
    pub unit: usize,
    /// That weight before the update.
    pub old: f32,
    /// Its gradient, ∂loss/∂w.
    pub grad: f32,
    /// The learning rate of the update.
    pub lr: f32,
    /// The weight after `new = old − lr × grad`.
    pub new: f32,
    /// The sample's loss after the update.
    pub loss_after: f32,
}

/// What a run measured and wrote.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The trained network.
    pub net: Net,
    /// The first step, in numbers.
    pub first: FirstStep,
    /// The average training loss of each epoch; `epoch_losses[0]` is the loss of
    /// the random weights, before training.
    pub epoch_losses: Vec<f32>,
    /// The test loss after each epoch (`[0]`: before training).
    pub test_losses: Vec<f32>,
    /// Per epoch (`[0]` is epoch 1), the L2 norm of the gradient of the first
    /// layer's weights `w1` and of the last layer's `w2`, averaged over the
    /// epoch's batches.
    pub grad_norms: Vec<[f32; 2]>,
    /// Accuracy on the training split at the end, in [0, 1].
    pub train_accuracy: f32,
    /// Accuracy on the test split at the end, in [0, 1].
    pub test_accuracy: f32,
    /// How many test samples there were.
    pub test_samples: usize,
    /// The safetensors file with the trained weights.
    pub weights: PathBuf,
    /// The SVG loss curve.
    pub curve: PathBuf,
    /// The graph of the first sample's loss, with gradient norms (Graphviz DOT).
    pub graph: PathBuf,
    /// The same graph drawn as SVG, when Graphviz's `dot` is installed.
    pub graph_svg: Option<PathBuf>,
}

/// Runs the whole story: data, first step, training, evaluation, files.
pub fn run(o: &Options) -> Result<Summary, Error> {
    let lr = o.learning_rate();
    let mut rng = StdRng::seed_from_u64(o.seed);

    println!("Leaf or flower? A network learns to tell them apart by colour and size.");
    println!();

    // 1. the data -----------------------------------------------------------
    let mut samples = generate(o.samples, &mut rng);
    let test_samples = samples.split_off(o.samples - o.samples / 4);
    let scaling = Scaling::of(&samples);
    let train = scaling.split(samples)?;
    let test = scaling.split(test_samples)?;
    let leaves = |s: &Split| s.labels.iter().filter(|&&c| c == 0).count();
    println!("1. The data");
    println!(
        "   {} samples of (R, G, B, Vol), generated from seed {}:",
        o.samples, o.seed
    );
    println!("   colour channels in [0, 1] and volume in cm³, each labelled leaf or flower.");
    println!(
        "   Leaves are greener and smaller, flowers more colourful and larger; autumn leaves,"
    );
    println!("   green flowers and noisy measurements make the classes overlap a little.");
    println!(
        "   train: {} ({} leaves, {} flowers)   test: {} ({} leaves, {} flowers)",
        train.labels.len(),
        leaves(&train),
        train.labels.len() - leaves(&train),
        test.labels.len(),
        leaves(&test),
        test.labels.len() - leaves(&test),
    );
    println!(
        "   Training sees only the train split; the test split checks the network on new samples."
    );
    println!("   Each feature is scaled to mean 0 and standard deviation 1 (train statistics),");
    println!("   so that volume, in cm³, does not drown out colour.");
    println!();

    // 2. the network --------------------------------------------------------
    let net = Net::new(o.hidden, &mut rng);
    println!("2. The network");
    println!(
        "   4 inputs → {} hidden (tanh) → 2 outputs (softmax: leaf, flower); {} weights, random for now.",
        o.hidden,
        net.count()
    );
    println!("   Softmax makes the two outputs positive and sum to 1, like probabilities.");
    println!();

    // 3–5. one forward pass, its gradient, one update -----------------------
    let (first, graph_dot) = first_step(&net, &train, lr)?;

    // 6. training -----------------------------------------------------------
    // the optimizer holds handles to the weights and updates them in place
    let mut opt: Box<dyn Optimizer> = match o.optimizer {
        OptimizerKind::Sgd => Box::new(Sgd::new(
            net.parameters(),
            SgdConfig {
                lr,
                ..Default::default()
            },
        )),
        OptimizerKind::Adam => Box::new(Adam::new(
            net.parameters(),
            AdamConfig {
                lr,
                ..Default::default()
            },
        )),
    };
    let n_train = train.labels.len();
    let batches_per_epoch = n_train.div_ceil(o.batch_size);
    println!(
        "6. Training: {} epochs of mini-batches of {}",
        o.epochs, o.batch_size
    );
    println!(
        "   loss:          {:<4}  {}",
        o.loss.name(),
        o.loss.describe()
    );
    println!(
        "   optimizer:     {:<4}  {}",
        o.optimizer.name(),
        match o.optimizer {
            OptimizerKind::Sgd => "plain gradient descent, new = old − lr × grad",
            OptimizerKind::Adam => "Adam, each weight's step scaled by its recent gradients",
        },
    );
    println!("   learning rate: {lr}");
    println!("   An epoch visits every training sample once, in a new random order, in {batches_per_epoch} batches;");
    println!(
        "   after each batch, every weight steps against its gradient of the batch's mean loss."
    );
    println!("   The average loss of an epoch is the mean of its {n_train} samples' losses: it should fall.");
    println!(
        "   ‖∇w1‖ and ‖∇w2‖ are the sizes (L2 norms) of the first and the last layer's gradients,"
    );
    println!("   averaged over the epoch's batches: a first layer's far below the last's would be");
    println!("   vanishing gradients, and norms that grow by orders of magnitude exploding ones.");
    println!("   Epoch 0 is the random network, before any update.");
    // a line per epoch, or per few epochs in a long run (the loss curve has them all)
    let every = o.epochs.div_ceil(30).max(1);
    if every > 1 {
        println!("   (a line every {every} epochs; the loss curve shows them all)");
    }

    let bar = o.progress.then(|| {
        let bar = ProgressBar::new((o.epochs * batches_per_epoch) as u64);
        bar.set_style(
            ProgressStyle::with_template("   [{bar:40}] epoch {msg}  {elapsed}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar
    });
    let say = |line: String| match &bar {
        Some(bar) => bar.println(line),
        None => println!("{line}"),
    };

    // a table: epoch, losses, accuracy, gradient norms
    let epoch_width = (2 * o.epochs.to_string().len() + 1).max(5);
    let epoch_line = |epoch: usize,
                      train_loss: f32,
                      (test_loss, test_acc): (f32, f32),
                      norms: Option<[f32; 2]>| {
        let norms = match norms {
            Some([first, last]) => format!("{first:>6.4}   {last:>6.4}"),
            None => format!("{:>6}   {:>6}", "–", "–"),
        };
        format!(
            "   {:>epoch_width$}   {train_loss:>12.4}   {test_loss:>9.4}   {:>12.1}%   {norms}",
            format!("{epoch}/{}", o.epochs),
            100.0 * test_acc,
        )
    };
    say(format!(
        "   {:>epoch_width$}   average loss   test loss   test accuracy    ‖∇w1‖    ‖∇w2‖",
        "epoch"
    ));
    // epoch 0: where the random weights start
    let (initial_loss, _) = evaluate(&net, &train, o.loss)?;
    let initial_test = evaluate(&net, &test, o.loss)?;
    say(epoch_line(0, initial_loss, initial_test, None));
    let mut epoch_losses = vec![initial_loss];
    let mut test_losses = vec![initial_test.0];
    let mut grad_norms = Vec::with_capacity(o.epochs);
    // the first and the last layer's weights, whose gradient norms are watched
    let watched = [("w1", &net.w1), ("w2", &net.w2)];
    let mut shuffle_rng = StdRng::seed_from_u64(o.seed ^ 0x5eed);
    for epoch in 1..=o.epochs {
        if let Some(bar) = &bar {
            bar.set_message(format!("{epoch}/{}", o.epochs));
        }
        let mut total = 0.0f64;
        let mut norm_sums = [0.0f32; 2];
        for batch in &Batches::new(n_train, o.batch_size).shuffle(&mut shuffle_rng) {
            // forward: the batch's outputs and its mean loss
            let logits = net.forward(&gather_rows(&train.x, batch));
            let onehot = gather_rows(&train.onehot, batch);
            let labels: Vec<usize> = batch.iter().map(|&i| train.labels[i]).collect();
            let loss = sample_losses(o.loss, &logits, &onehot, &labels)?.mean();
            // backward: the gradient of that loss for every weight
            let grads = loss.backward()?;
            // the size of the first and the last layer's gradients
            for (sum, (_, norm)) in norm_sums.iter_mut().zip(grads.norms(&watched)) {
                *sum += norm;
            }
            // update: every weight steps against its gradient
            opt.step(&grads)?;
            total += f64::from(loss.item()) * batch.len() as f64;
            if let Some(bar) = &bar {
                bar.inc(1);
            }
        }
        let average = (total / n_train as f64) as f32;
        let tested = evaluate(&net, &test, o.loss)?;
        let norms = norm_sums.map(|sum| sum / batches_per_epoch as f32);
        epoch_losses.push(average);
        test_losses.push(tested.0);
        grad_norms.push(norms);
        if epoch % every == 0 || epoch == o.epochs {
            say(epoch_line(epoch, average, tested, Some(norms)));
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    println!();

    // 7. the result ---------------------------------------------------------
    let (_, train_accuracy) = evaluate(&net, &train, o.loss)?;
    let (_, test_accuracy) = evaluate(&net, &test, o.loss)?;
    let n_test = test.labels.len();
    println!("7. The result");
    println!(
        "   test accuracy: {:.1}% ({} of {n_test} right; train accuracy {:.1}%)",
        100.0 * test_accuracy,
        (test_accuracy * n_test as f32).round() as usize,
        100.0 * train_accuracy,
    );

    std::fs::create_dir_all(&o.out)?;
    let weights = o.out.join("leaf_flower.safetensors");
    let mean = Tensor::from_slice(&scaling.mean, &[4])?;
    let std = Tensor::from_slice(&scaling.std, &[4])?;
    let mut tensors: Vec<(&str, &Tensor)> = net.named().to_vec();
    tensors.push(("input_mean", &mean));
    tensors.push(("input_std", &std));
    let metadata = BTreeMap::from([
        ("inputs".to_string(), FEATURES.join(",")),
        ("outputs".to_string(), CLASSES.join(",")),
        (
            "model".to_string(),
            "softmax(tanh(((x - input_mean) / input_std) @ w1 + b1) @ w2 + b2)".to_string(),
        ),
        ("loss".to_string(), o.loss.name().to_string()),
        ("optimizer".to_string(), o.optimizer.name().to_string()),
        ("test_accuracy".to_string(), format!("{test_accuracy:.4}")),
    ]);
    save_safetensors_with_metadata(&weights, &tensors, &metadata)?;
    let curve = o.out.join("loss_curve.svg");
    let title = format!(
        "leaf_flower: {} loss, {}, lr {lr}",
        o.loss.name(),
        o.optimizer.name()
    );
    std::fs::write(
        &curve,
        loss_curve_svg(
            &title,
            &[
                ("train (epoch average)", &epoch_losses),
                ("test", &test_losses),
            ],
        ),
    )?;
    println!(
        "   weights:    {}  (w1, b1, w2, b2 and the input scaling)",
        weights.display()
    );
    println!("   loss curve: {}  (open it in a browser)", curve.display());
    let graph = o.out.join("graph.dot");
    std::fs::write(&graph, graph_dot)?;
    let graph_svg = draw_graph(&graph);
    println!(
        "   graph:      {}  (chapter 3's computation, each weight's gradient norm on its edges)",
        graph_svg.as_ref().unwrap_or(&graph).display()
    );
    if graph_svg.is_none() {
        println!("               to draw it, install Graphviz (apt-get install graphviz, or brew install graphviz)");
        println!("               and run this again");
    }

    Ok(Summary {
        net,
        first,
        epoch_losses,
        test_losses,
        grad_norms,
        train_accuracy,
        test_accuracy,
        test_samples: n_test,
        weights,
        curve,
        graph,
        graph_svg,
    })
}

/// Draws the DOT file `dot` as SVG beside it with Graphviz's `dot`, when it is
/// installed; `None` (after saying why, unless it is simply not installed) when not.
fn draw_graph(dot: &Path) -> Option<PathBuf> {
    let svg = dot.with_extension("svg");
    match std::process::Command::new("dot")
        .arg("-Tsvg")
        .arg(dot)
        .arg("-o")
        .arg(&svg)
        .output()
    {
        Ok(out) if out.status.success() => Some(svg),
        Ok(out) => {
            println!(
                "   (Graphviz could not draw the graph: {})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        Err(_) => None,
    }
}

/// `+0.1234` or `−0.1234` (with a real minus sign, as in the formulas).
fn signed(v: f32) -> String {
    format!("{v:+.4}").replace('-', "−")
}

/// Chapters 3 to 5: the first training sample that is a leaf, through the random
/// network, its L1 loss, one weight's gradient and one update of that weight.
/// Also returns the graph of that loss with its gradients (DOT text).
fn first_step(net: &Net, train: &Split, lr: f32) -> Result<(FirstStep, String), Error> {
    // the train split holds three quarters of the samples, more than the flowers
    // (half of them): it has a leaf
    let i = train
        .labels
        .iter()
        .position(|&c| c == 0)
        .expect("a leaf among the training samples");
    let sample = train.samples[i];
    let x = gather_rows(&train.x, &[i]);
    let target = Tensor::<f32>::from_vec(vec![1.0, 0.0], &[1, 2])?;
    let f = sample.features;

    // forward: inputs → logits → softmax outputs → loss
    let outputs = net.forward(&x).softmax(-1);
    let loss = per_sample::l1(&outputs, &target)?.sum();
    let [p_leaf, p_flower] = <[f32; 2]>::try_from(outputs.to_vec()).expect("two outputs");
    println!("3. One forward pass, with the random weights");
    println!(
        "   a sample: R {:.2}  G {:.2}  B {:.2}  Vol {:.2} cm³, a leaf: the target is (1, 0)",
        f[0], f[1], f[2], f[3]
    );
    println!(
        "   outputs: leaf {p_leaf:.4}  flower {p_flower:.4}   (a guess: the weights are random)"
    );
    println!(
        "   L1 loss, summed over the outputs: |1 − {p_leaf:.4}| + |0 − {p_flower:.4}| = {:.4}",
        loss.item()
    );
    println!("   The loss is 0 only for a perfect answer (1, 0); training lowers it.");
    println!();

    // backward: the gradient of the loss for every weight; show the largest in w2
    let grads = loss.backward()?;
    let names: Vec<(String, Tensor)> = net
        .named()
        .iter()
        .map(|(name, t)| (name.to_string(), (*t).clone()))
        .collect();
    let graph = loss.to_dot_with_gradients(&names, &grads);
    let g2 = grads.get(&net.w2).expect("w2 is used").to_vec();
    let unit = (0..g2.len() / 2)
        .max_by(|&a, &b| g2[2 * a].abs().total_cmp(&g2[2 * b].abs()))
        .expect("at least one hidden unit");
    let w2 = net.w2.to_vec();
    let (old, grad) = (w2[2 * unit], g2[2 * unit]);
    println!("4. Backward: one weight's gradient");
    println!(
        "   loss.backward() gives ∂loss/∂w for all {} weights at once. One of them:",
        net.count()
    );
    println!(
        "   w2[{unit}, 0] (hidden unit {unit} → output \"leaf\") = {old:.4}, its gradient ∂loss/∂w = {}",
        signed(grad)
    );
    println!(
        "   The sign says which way to move: {}.",
        if grad < 0.0 {
            "negative, so increasing this weight lowers the loss"
        } else {
            "positive, so decreasing this weight lowers the loss"
        }
    );
    println!(
        "   The size says how fast: the loss changes by about {:.4} per unit of weight.",
        grad.abs()
    );
    println!();

    // update: new = old − lr × grad, for this one weight
    let new = old - lr * grad;
    let mut updated = w2;
    updated[2 * unit] = new;
    net.w2.assign(&Tensor::from_vec(updated, net.w2.shape())?)?;
    let loss_after = {
        let _guard = no_grad();
        per_sample::l1(&net.forward(&x).softmax(-1), &target)?
            .sum()
            .item()
    };
    println!("5. One gradient-descent update: new = old − lr × grad");
    println!("   new = {old:.4} − {lr} × ({}) = {new:.4}", signed(grad));
    println!(
        "   this sample's loss: {:.4} → {loss_after:.4}",
        loss.item()
    );
    println!(
        "   as the gradient predicted: loss + grad × change = {:.4} + ({}) × ({}) = {:.4}",
        loss.item(),
        signed(grad),
        signed(new - old),
        loss.item() + grad * (new - old),
    );
    println!("   Training does this for every weight at once, batch after batch.");
    println!();

    let first = FirstStep {
        outputs: [p_leaf, p_flower],
        loss: loss.item(),
        unit,
        old,
        grad,
        lr,
        new,
        loss_after,
    };
    Ok((first, graph))
}

fn main() -> ExitCode {
    let options = match Options::from_args(std::env::args().skip(1)) {
        Ok(Some(o)) => Options {
            progress: std::io::stdout().is_terminal(),
            ..o
        },
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
