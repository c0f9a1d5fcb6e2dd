//! The transformer layers (`MultiHeadAttention`, `TransformerBlock`,
//! positional embeddings) and `Gpt`, through the public API.

use ferrograd::nn::{
    Gpt, GptConfig, Module, ModuleParams, MultiHeadAttention, MultiHeadAttentionConfig, Positions,
    Sampling, TransformerBlock, TransformerBlockConfig,
};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::Tensor;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn names<T: ferrograd::Element>(m: &impl ModuleParams<T>) -> Vec<String> {
    m.named_parameters().into_iter().map(|(n, _)| n).collect()
}

fn small_gpt_cfg() -> GptConfig {
    GptConfig {
        vocab: 11,
        context: 6,
        d_model: 8,
        n_head: 2,
        n_layer: 2,
        ..Default::default()
    }
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

#[test]
fn gpt_parameter_names_follow_the_spec() {
    let untied = Gpt::<f32>::new(
        GptConfig {
            n_layer: 1,
            tie_weights: false,
            ..small_gpt_cfg()
        },
        &mut rng(0),
    );
    assert_eq!(
        names(&untied),
        [
            "wte.weight",
            "wpe.weight",
            "blocks.0.ln1.weight",
            "blocks.0.ln1.bias",
            "blocks.0.attn.qkv.weight",
            "blocks.0.attn.qkv.bias",
            "blocks.0.attn.proj.weight",
            "blocks.0.attn.proj.bias",
            "blocks.0.ln2.weight",
            "blocks.0.ln2.bias",
            "blocks.0.mlp.fc.weight",
            "blocks.0.mlp.fc.bias",
            "blocks.0.mlp.proj.weight",
            "blocks.0.mlp.proj.bias",
            "ln_f.weight",
            "ln_f.bias",
            "head.weight",
        ]
    );
    let shapes: Vec<Vec<usize>> = untied
        .named_parameters()
        .iter()
        .map(|(_, p)| p.shape().to_vec())
        .collect();
    let (v, t, d) = (11, 6, 8);
    assert_eq!(
        shapes,
        [
            vec![v, d],
            vec![t, d],
            vec![d],
            vec![d],
            vec![3 * d, d],
            vec![3 * d],
            vec![d, d],
            vec![d],
            vec![d],
            vec![d],
            vec![4 * d, d],
            vec![4 * d],
            vec![d, 4 * d],
            vec![d],
            vec![d],
            vec![d],
            vec![v, d],
        ]
    );
    // tied, no bias, sinusoidal: no bias anywhere, no wpe, no head
    let lean = Gpt::<f32>::new(
        GptConfig {
            n_layer: 2,
            bias: false,
            positions: Positions::Sinusoidal,
            ..small_gpt_cfg()
        },
        &mut rng(0),
    );
    assert_eq!(
        names(&lean),
        [
            "wte.weight",
            "blocks.0.ln1.weight",
            "blocks.0.attn.qkv.weight",
            "blocks.0.attn.proj.weight",
            "blocks.0.ln2.weight",
            "blocks.0.mlp.fc.weight",
            "blocks.0.mlp.proj.weight",
            "blocks.1.ln1.weight",
            "blocks.1.attn.qkv.weight",
            "blocks.1.attn.proj.weight",
            "blocks.1.ln2.weight",
            "blocks.1.mlp.fc.weight",
            "blocks.1.mlp.proj.weight",
            "ln_f.weight",
        ]
    );
    assert!(lean.named_buffers().is_empty());
    assert!(names(&lean).iter().all(|n| !n.contains("bias")));
    assert_eq!(
        lean.named_rng_states()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        [
            "drop",
            "blocks.0.attn.attn_drop",
            "blocks.0.attn.resid_drop",
            "blocks.0.mlp.drop",
            "blocks.1.attn.attn_drop",
            "blocks.1.attn.resid_drop",
            "blocks.1.mlp.drop",
        ]
    );
}

#[test]
fn gpt_forward_loss_and_training() {
    let gpt = Gpt::<f32>::new(small_gpt_cfg(), &mut rng(1));
    let ids: Vec<usize> = (0..12).map(|i| (i * 7) % 11).collect();
    let logits = gpt.forward_ids(&ids, 2);
    assert_eq!(logits.shape(), &[2, 6, 11]);
    // the loss is the mean cross-entropy of the logits
    let targets: Vec<usize> = ids.iter().map(|i| (i + 1) % 11).collect();
    let loss = gpt.loss(&ids, &targets, 2);
    assert_eq!(loss.shape(), &[] as &[usize]);
    let l = logits.to_vec();
    let mut want = 0.0f64;
    for (row, &tg) in targets.iter().enumerate() {
        let r: Vec<f64> = l[row * 11..(row + 1) * 11]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + r.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        want += lse - r[tg];
    }
    want /= 12.0;
    assert!((loss.item() as f64 - want).abs() < 1e-5);
    // at init the logits are small: the loss is near ln(vocab)
    assert!((want - 11f64.ln()).abs() < 0.1, "{want}");
    // every parameter gets a gradient
    let grads = loss.backward().unwrap();
    for (name, p) in gpt.named_parameters() {
        assert_eq!(grads.get(&p).unwrap().shape(), p.shape(), "{name}");
    }
    // the Module form takes float ids
    let fids = Tensor::<f32>::from_vec(ids.iter().map(|&i| i as f32).collect(), &[2, 6]).unwrap();
    assert_eq!(gpt.forward(&fids).to_vec(), logits.to_vec());
}

#[test]
fn generate_greedy_is_argmax_step_by_step_and_crops_to_the_context() {
    let gpt = Gpt::<f64>::new(small_gpt_cfg(), &mut rng(2));
    let prompt = [3, 1, 4];
    let new = gpt.generate(&prompt, 9, Sampling::greedy(), &mut rng(0));
    assert_eq!(new.len(), 9);
    // the same with another rng: greedy draws nothing
    assert_eq!(
        gpt.generate(&prompt, 9, Sampling::greedy(), &mut rng(99)),
        new
    );
    // top_k = 1 is greedy
    let top1 = Sampling {
        temperature: 0.7,
        top_k: Some(1),
    };
    assert_eq!(gpt.generate(&prompt, 9, top1, &mut rng(5)), new);
    // step by step: the argmax of the last position, given the last `context` tokens
    let mut tokens = prompt.to_vec();
    for &next in &new {
        let start = tokens.len().saturating_sub(6);
        let window = &tokens[start..];
        let logits = gpt.forward_ids(window, 1).to_vec();
        let last = &logits[(window.len() - 1) * 11..];
        assert_eq!(argmax(last), next);
        tokens.push(next);
    }
    // nothing was recorded
    assert!(ferrograd::is_grad_enabled());
}

#[test]
fn gpt_learns_to_count() {
    let mut r = rng(0);
    let cfg = GptConfig {
        vocab: 10,
        context: 8,
        d_model: 16,
        n_head: 2,
        n_layer: 2,
        ..Default::default()
    };
    let gpt: Gpt = Gpt::new(cfg, &mut r);
    let ids: Vec<usize> = (0..10).flat_map(|s| (s..s + 8).map(|i| i % 10)).collect();
    let targets: Vec<usize> = ids.iter().map(|i| (i + 1) % 10).collect();
    use ferrograd::optim::{AdamW, AdamWConfig, Optimizer};
    let mut opt = AdamW::new(
        gpt.parameters(),
        AdamWConfig {
            lr: 1e-2,
            ..Default::default()
        },
    );
    let first = gpt.loss(&ids, &targets, 10).item();
    for _ in 0..40 {
        let loss = gpt.loss(&ids, &targets, 10);
        opt.step(&loss.backward().unwrap()).unwrap();
    }
    let last = gpt.loss(&ids, &targets, 10).item();
    eprintln!("loss {first} -> {last}");
    assert!(last < first / 4.0, "{first} -> {last}");
    let new = gpt.generate(&[3, 4], 8, Sampling::greedy(), &mut r);
    assert_eq!(new, [5, 6, 7, 8, 9, 0, 1, 2]);
}
