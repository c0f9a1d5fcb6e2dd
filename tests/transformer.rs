//! The transformer layers (`MultiHeadAttention`, `TransformerBlock`,
//! positional embeddings) and `Gpt`, through the public API.

use ferrograd::gradcheck::{gradcheck, gradcheck_module};
use ferrograd::nn::{
    FeedForward, Gpt, GptConfig, Module, ModuleParams, MultiHeadAttention,
    MultiHeadAttentionConfig, PositionalEmbedding, Positions, Sampling, TransformerBlock,
    TransformerBlockConfig,
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

// ---------------------------------------------------------------------------
// helpers

fn mha_cfg(d: usize, h: usize, causal: bool, bias: bool) -> MultiHeadAttentionConfig {
    MultiHeadAttentionConfig {
        d_model: d,
        n_head: h,
        causal,
        bias,
        ..Default::default()
    }
}

fn block_cfg(d: usize, h: usize, causal: bool, bias: bool) -> TransformerBlockConfig {
    TransformerBlockConfig {
        d_model: d,
        n_head: h,
        causal,
        bias,
        ..Default::default()
    }
}

fn randn(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::randn(shape, &mut rng(seed))
}

fn assert_all_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}: element {i}: {x} vs {y}"
        );
    }
}

/// Multi-head attention written with primitive ops: matmul, transpose,
/// reshape, masked_fill, softmax.
#[allow(clippy::too_many_arguments)]
fn mha_reference(
    x: &Tensor<f64>,
    wqkv: &Tensor<f64>,
    bqkv: Option<&Tensor<f64>>,
    wproj: &Tensor<f64>,
    bproj: Option<&Tensor<f64>>,
    n_head: usize,
    causal: bool,
    pad: Option<&Tensor<f64>>,
) -> Tensor<f64> {
    let &[b, t, d] = x.shape() else { panic!() };
    let hd = d / n_head;
    let mut qkv = x.matmul(&wqkv.transpose(0, 1));
    if let Some(bias) = bqkv {
        qkv = qkv + bias;
    }
    let heads = |i: usize| {
        qkv.narrow(2, i * d, d)
            .reshape(&[b, t, n_head, hd])
            .permute(&[0, 2, 1, 3])
    };
    let (q, k, v) = (heads(0), heads(1), heads(2));
    let scores = q.matmul(&k.transpose(2, 3)) * (1.0 / (hd as f64).sqrt());
    let mut mask = Tensor::<f64>::zeros(&[b, 1, t, t]);
    if causal {
        mask = mask + Tensor::<f64>::ones(&[t, t]).triu(1);
    }
    if let Some(p) = pad {
        mask = mask + p.reshape(&[b, 1, 1, t]);
    }
    let weights = scores.masked_fill(&mask, f64::NEG_INFINITY).softmax(-1);
    let y = weights
        .matmul(&v)
        .permute(&[0, 2, 1, 3])
        .reshape(&[b, t, d]);
    let mut out = y.matmul(&wproj.transpose(0, 1));
    if let Some(bias) = bproj {
        out = out + bias;
    }
    out
}

// ---------------------------------------------------------------------------
// MHA against primitive ops

#[test]
fn mha_equals_the_computation_written_with_primitive_ops() {
    for (causal, bias, padded) in [
        (true, true, false),
        (false, true, false),
        (true, false, false),
        (false, false, true),
        (true, true, true),
    ] {
        let what = format!("causal {causal} bias {bias} padded {padded}");
        let mha = MultiHeadAttention::<f64>::new(mha_cfg(12, 3, causal, bias), &mut rng(7));
        let x = randn(&[2, 5, 12], 8).requires_grad();
        let w = randn(&[2, 5, 12], 9);
        // the second sequence's last two tokens are padding
        let pad =
            Tensor::<f64>::from_vec(vec![0., 0., 0., 0., 0., 0., 0., 0., 1., 1.], &[2, 5]).unwrap();
        let pad = padded.then_some(&pad);
        let y = mha.forward_masked(&x, pad);
        let r = mha_reference(
            &x,
            mha.qkv().weight(),
            mha.qkv().bias(),
            mha.proj().weight(),
            mha.proj().bias(),
            3,
            causal,
            pad,
        );
        assert_eq!(y.shape(), r.shape());
        assert_all_close(&y.to_vec(), &r.to_vec(), 1e-12, &what);
        // gradients of the parameters and of the input
        let gy = (&y * &w).sum().backward().unwrap();
        let gr = (&r * &w).sum().backward().unwrap();
        let mut inputs = mha.parameters();
        inputs.push(x.clone());
        for p in &inputs {
            assert_all_close(
                &gy.get(p).unwrap().to_vec(),
                &gr.get(p).unwrap().to_vec(),
                1e-11,
                &what,
            );
        }
    }
}

// ---------------------------------------------------------------------------
// causality

/// The gradient of output position `t` with respect to every input position:
/// `[B, T, d]`.
fn grad_of_position<M: Module<f64>>(m: &M, x: &Tensor<f64>, t: usize) -> Vec<f64> {
    let x = x.detach().requires_grad();
    let y = m.forward(&x);
    let g = y.narrow(1, t, 1).sum().backward().unwrap();
    g.get(&x).unwrap().to_vec()
}

fn assert_causal<M: Module<f64>>(m: &M, what: &str) {
    let (b, tt, d) = (2, 5, 8);
    let x = randn(&[b, tt, d], 21);
    for t in 0..tt {
        let g = grad_of_position(m, &x, t);
        for bi in 0..b {
            for s in 0..tt {
                let row = &g[(bi * tt + s) * d..(bi * tt + s + 1) * d];
                if s > t {
                    assert!(
                        row.iter().all(|&v| v == 0.0),
                        "{what}: output {t} depends on input {s}: {row:?}"
                    );
                } else {
                    assert!(
                        row.iter().any(|&v| v != 0.0),
                        "{what}: output {t} does not depend on input {s}"
                    );
                }
            }
        }
    }
}

#[test]
fn causal_attention_and_blocks_do_not_look_ahead() {
    assert_causal(
        &MultiHeadAttention::<f64>::new(mha_cfg(8, 2, true, true), &mut rng(1)),
        "MHA",
    );
    assert_causal(
        &TransformerBlock::<f64>::new(block_cfg(8, 2, true, true), &mut rng(2)),
        "block",
    );
    assert_causal(
        &TransformerBlock::<f64>::new(block_cfg(8, 4, true, false), &mut rng(3)),
        "block without bias",
    );
    // and a non-causal one does look ahead
    let mha = MultiHeadAttention::<f64>::new(mha_cfg(8, 2, false, true), &mut rng(1));
    let g = grad_of_position(&mha, &randn(&[1, 4, 8], 5), 0);
    assert!(g[3 * 8..].iter().any(|&v| v != 0.0));
}

#[test]
fn gpt_does_not_look_ahead() {
    let gpt = Gpt::<f64>::new(
        GptConfig {
            tie_weights: false,
            ..small_gpt_cfg()
        },
        &mut rng(4),
    );
    let ids = [0, 1, 2, 3, 4, 5]; // distinct tokens: wte row i is used at position i only
    let d = 8;
    for t in 0..6 {
        let loss = gpt.forward_ids(&ids, 1).narrow(1, t, 1).sum();
        let g = loss.backward().unwrap();
        let wte = g.get(gpt.wte().weight()).unwrap().to_vec();
        let wpe = g.get(gpt.wpe().table()).unwrap().to_vec();
        for s in 0..6 {
            let te = &wte[s * d..(s + 1) * d];
            let pe = &wpe[s * d..(s + 1) * d];
            if s > t {
                assert!(te.iter().chain(pe).all(|&v| v == 0.0), "t {t} s {s}");
            } else {
                assert!(te.iter().any(|&v| v != 0.0) && pe.iter().any(|&v| v != 0.0));
            }
        }
    }
    // tied: changing the future leaves the past logits exactly as they were
    let tied = Gpt::<f64>::new(small_gpt_cfg(), &mut rng(4));
    let a = tied.forward_ids(&[0, 1, 2, 3, 4, 5], 1).to_vec();
    let b = tied.forward_ids(&[0, 1, 2, 9, 9, 10], 1).to_vec();
    assert_eq!(a[..3 * 11], b[..3 * 11]);
    assert_ne!(a[3 * 11..4 * 11], b[3 * 11..4 * 11]);
}

// ---------------------------------------------------------------------------
// permutations

fn permuted_output_differs<M: Module<f64>>(m: &M, seed: u64) -> f64 {
    let x = randn(&[2, 6, 8], seed);
    let perm = [3, 0, 5, 1, 4, 2];
    let y = m.forward(&x).index_select(1, &perm).to_vec();
    let yp = m.forward(&x.index_select(1, &perm)).to_vec();
    y.iter()
        .zip(&yp)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn without_positions_non_causal_layers_are_permutation_equivariant() {
    let mha = MultiHeadAttention::<f64>::new(mha_cfg(8, 2, false, true), &mut rng(1));
    assert!(permuted_output_differs(&mha, 30) < 1e-12);
    let block = TransformerBlock::<f64>::new(block_cfg(8, 2, false, true), &mut rng(2));
    assert!(permuted_output_differs(&block, 31) < 1e-12);
    // causal ones are not
    let mha = MultiHeadAttention::<f64>::new(mha_cfg(8, 2, true, true), &mut rng(1));
    assert!(permuted_output_differs(&mha, 30) > 1e-3);
    let block = TransformerBlock::<f64>::new(block_cfg(8, 2, true, true), &mut rng(2));
    assert!(permuted_output_differs(&block, 31) > 1e-3);
}

// ---------------------------------------------------------------------------
// key padding

#[test]
fn padded_keys_take_no_part() {
    for causal in [false, true] {
        let mha = MultiHeadAttention::<f64>::new(mha_cfg(8, 2, causal, true), &mut rng(11));
        let x = randn(&[2, 5, 8], 12).requires_grad();
        // sequence 1 has 3 real tokens, then 2 padding tokens
        let pad =
            Tensor::<f64>::from_vec(vec![0., 0., 0., 0., 0., 0., 0., 0., 1., 1.], &[2, 5]).unwrap();
        let y = mha.forward_masked(&x, Some(&pad));
        // the real tokens' outputs are those of the unpadded sequence
        let short = mha.forward(&x.narrow(0, 1, 1).narrow(1, 0, 3)).to_vec();
        let got = y.narrow(0, 1, 1).narrow(1, 0, 3).to_vec();
        assert_all_close(&got, &short, 1e-12, "padded vs short");
        // sequence 0 is unaffected by the other's padding
        let full = mha.forward(&x.narrow(0, 0, 1)).to_vec();
        assert_all_close(&y.narrow(0, 0, 1).to_vec(), &full, 1e-12, "unpadded row");
        // and the real tokens' outputs do not depend on the padding tokens at all
        let g = y.narrow(0, 1, 1).narrow(1, 0, 3).sum().backward().unwrap();
        let gx = g.get(&x).unwrap().to_vec();
        assert!(gx[(5 + 3) * 8..].iter().all(|&v| v == 0.0));
        // a block passes the mask on
        let block = TransformerBlock::<f64>::new(block_cfg(8, 2, causal, true), &mut rng(13));
        let yb = block.forward_masked(&x, Some(&pad));
        let short = block.forward(&x.narrow(0, 1, 1).narrow(1, 0, 3)).to_vec();
        assert_all_close(
            &yb.narrow(0, 1, 1).narrow(1, 0, 3).to_vec(),
            &short,
            1e-12,
            "block",
        );
    }
}

// ---------------------------------------------------------------------------
// weight tying

#[test]
fn tied_weights_are_one_parameter_whose_gradient_sums_both_uses() {
    let cfg = small_gpt_cfg();
    let tied = Gpt::<f64>::new(cfg, &mut rng(5));
    // the same seed: the head is drawn last, so every other parameter is equal
    let untied = Gpt::<f64>::new(
        GptConfig {
            tie_weights: false,
            ..cfg
        },
        &mut rng(5),
    );
    assert_eq!(untied.parameters().len(), tied.parameters().len() + 1);
    assert!(tied.head().is_none());
    assert!(!names(&tied).iter().any(|n| n.starts_with("head")));
    for ((n1, p1), (n2, p2)) in tied
        .named_parameters()
        .iter()
        .zip(untied.named_parameters())
    {
        assert_eq!(n1, &n2);
        assert_eq!(p1.to_vec(), p2.to_vec(), "{n1}");
    }
    let head = untied.head().unwrap().weight();
    head.assign(tied.wte().weight()).unwrap();
    let ids: Vec<usize> = (0..12).map(|i| (i * 5 + 2) % 11).collect();
    let targets: Vec<usize> = ids.iter().map(|i| (i * 3) % 11).collect();
    let lt = tied.loss(&ids, &targets, 2);
    let lu = untied.loss(&ids, &targets, 2);
    assert!((lt.item() - lu.item()).abs() < 1e-12);
    let gt = lt.backward().unwrap();
    let gu = lu.backward().unwrap();
    let sum: Vec<f64> = gu
        .get(untied.wte().weight())
        .unwrap()
        .to_vec()
        .iter()
        .zip(gu.get(head).unwrap().to_vec())
        .map(|(a, b)| a + b)
        .collect();
    assert_all_close(
        &gt.get(tied.wte().weight()).unwrap().to_vec(),
        &sum,
        1e-12,
        "tied grad",
    );
    // tying saves vocab·d numbers
    assert_eq!(untied.num_parameters() - tied.num_parameters(), 11 * 8);
}

// ---------------------------------------------------------------------------
// no bias, names

#[test]
fn without_bias_there_is_no_bias_parameter() {
    let mha = MultiHeadAttention::<f32>::new(mha_cfg(8, 2, true, false), &mut rng(0));
    assert_eq!(names(&mha), ["qkv.weight", "proj.weight"]);
    let block = TransformerBlock::<f32>::new(block_cfg(8, 2, true, false), &mut rng(0));
    assert_eq!(
        names(&block),
        [
            "ln1.weight",
            "attn.qkv.weight",
            "attn.proj.weight",
            "ln2.weight",
            "mlp.fc.weight",
            "mlp.proj.weight",
        ]
    );
    assert!(block.ln1().bias().is_none() && block.ln2().bias().is_none());
    let block = TransformerBlock::<f32>::new(block_cfg(8, 2, true, true), &mut rng(0));
    assert_eq!(
        names(&block),
        [
            "ln1.weight",
            "ln1.bias",
            "attn.qkv.weight",
            "attn.qkv.bias",
            "attn.proj.weight",
            "attn.proj.bias",
            "ln2.weight",
            "ln2.bias",
            "mlp.fc.weight",
            "mlp.fc.bias",
            "mlp.proj.weight",
            "mlp.proj.bias",
        ]
    );
    let gpt = Gpt::<f32>::new(
        GptConfig {
            bias: false,
            tie_weights: false,
            ..small_gpt_cfg()
        },
        &mut rng(0),
    );
    let n = names(&gpt);
    assert!(n.iter().all(|n| n.ends_with(".weight")), "{n:?}");
    assert!(n.contains(&"head.weight".to_string()) && n.contains(&"wpe.weight".to_string()));
    assert!(gpt.ln_f().bias().is_none());
}

// ---------------------------------------------------------------------------
// initialisation

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn nanogpt_initialisation_statistics() {
    let n_layer = 4;
    let gpt = Gpt::<f64>::new(
        GptConfig {
            vocab: 300,
            context: 64,
            d_model: 64,
            n_head: 4,
            n_layer,
            tie_weights: false,
            ..Default::default()
        },
        &mut rng(6),
    );
    let resid = 0.02 / (2.0 * n_layer as f64).sqrt();
    let mut pooled_resid = Vec::new();
    let mut pooled = Vec::new();
    for (name, p) in gpt.named_parameters() {
        let v = p.to_vec();
        if name.ends_with(".bias") {
            assert!(v.iter().all(|&x| x == 0.0), "{name}");
        } else if name.contains("ln") {
            assert!(v.iter().all(|&x| x == 1.0), "{name}");
        } else {
            let (mean, std) = mean_std(&v);
            let want = if name.ends_with("attn.proj.weight") || name.ends_with("mlp.proj.weight") {
                pooled_resid.extend(v.iter().copied());
                resid
            } else {
                pooled.extend(v.iter().copied());
                0.02
            };
            // a few standard errors of the std (want/√(2n)) and of the mean
            let n = v.len() as f64;
            assert!(
                (std - want).abs() < 5.0 * want / (2.0 * n).sqrt(),
                "{name}: std {std}, want {want}"
            );
            assert!(mean.abs() < 5.0 * want / n.sqrt(), "{name}: mean {mean}");
        }
    }
    let (_, s) = mean_std(&pooled);
    assert!((s - 0.02).abs() < 2e-4, "{s}");
    let (_, s) = mean_std(&pooled_resid);
    assert!((s - resid).abs() < 1e-4, "{s} vs {resid}");
    // distinct seeds, distinct models; the same seed, the same model
    let again = Gpt::<f64>::new(*gpt.config(), &mut rng(6));
    assert_eq!(again.parameters()[5].to_vec(), gpt.parameters()[5].to_vec());
}

// ---------------------------------------------------------------------------
// dropout and modes

#[test]
fn dropout_follows_the_mode_and_its_states_round_trip() {
    let cfg = GptConfig {
        dropout: 0.3,
        ..small_gpt_cfg()
    };
    let mut gpt = Gpt::<f64>::new(cfg, &mut rng(8));
    let ids: Vec<usize> = (0..12).map(|i| (i * 4 + 1) % 11).collect();
    // training: each forward draws new masks
    let a = gpt.forward_ids(&ids, 2).to_vec();
    let b = gpt.forward_ids(&ids, 2).to_vec();
    assert_ne!(a, b);
    assert_eq!(gpt.training_mode(), Some(true));
    // states: restoring them repeats the masks
    let states = gpt.named_rng_states();
    assert!(states.iter().all(|(_, s)| s.draws == 2), "{states:?}");
    let c = gpt.forward_ids(&ids, 2).to_vec();
    gpt.load_rng_states(&states).unwrap();
    assert_eq!(gpt.forward_ids(&ids, 2).to_vec(), c);
    // generation draws no mask and applies no dropout, in either mode
    let before = gpt.named_rng_states();
    let g1 = gpt.generate(&[1, 2], 4, Sampling::greedy(), &mut rng(0));
    assert_eq!(gpt.named_rng_states(), before);
    // evaluation: deterministic, and equal to a dropout-free model
    gpt.set_training(false);
    assert_eq!(gpt.training_mode(), Some(false));
    let e1 = gpt.forward_ids(&ids, 2).to_vec();
    assert_eq!(gpt.forward_ids(&ids, 2).to_vec(), e1);
    assert_eq!(gpt.named_rng_states(), before);
    let plain = Gpt::<f64>::new(cfg, &mut rng(8)); // same parameters
    let mut plain_eval = plain;
    plain_eval.set_training(false);
    assert_eq!(plain_eval.forward_ids(&ids, 2).to_vec(), e1);
    assert_eq!(
        gpt.generate(&[1, 2], 4, Sampling::greedy(), &mut rng(0)),
        g1
    );
    gpt.set_training(true);
    assert_ne!(gpt.forward_ids(&ids, 2).to_vec(), e1);
}

#[test]
fn attention_dropout_is_a_seeded_dropout() {
    let cfg = MultiHeadAttentionConfig {
        attn_dropout: 0.5,
        ..mha_cfg(8, 2, true, true)
    };
    let mut mha = MultiHeadAttention::<f64>::new(cfg, &mut rng(3));
    let x = randn(&[2, 4, 8], 4);
    let a = mha.forward(&x).to_vec();
    assert_ne!(mha.forward(&x).to_vec(), a);
    assert_eq!(mha.attn_dropout().rng_state().draws, 2);
    assert_eq!(mha.resid_dropout().rng_state().draws, 0); // p = 0 draws nothing
                                                          // the same seed, the same masks
    let again = MultiHeadAttention::<f64>::new(cfg, &mut rng(3));
    assert_eq!(again.forward(&x).to_vec(), a);
    mha.set_training(false);
    let e = mha.forward(&x).to_vec();
    assert_eq!(mha.forward(&x).to_vec(), e);
    let plain = MultiHeadAttention::<f64>::new(mha_cfg(8, 2, true, true), &mut rng(3));
    assert_eq!(plain.forward(&x).to_vec(), e);
}

// ---------------------------------------------------------------------------
// sampling and generation

#[test]
fn sampling_respects_top_k_and_temperature() {
    let logits = [1.0f64, 2.0, 0.5, 1.9, -3.0];
    let mut r = rng(0);
    let top2 = Sampling {
        temperature: 1.0,
        top_k: Some(2),
    };
    let mut counts = [0usize; 5];
    for _ in 0..2000 {
        counts[top2.sample(&logits, &mut r)] += 1;
    }
    assert_eq!(counts[0] + counts[2] + counts[4], 0);
    // p(1) = e^2 / (e^2 + e^1.9)
    let p1 = 1.0 / (1.0 + (-0.1f64).exp());
    let f1 = counts[1] as f64 / 2000.0;
    assert!((f1 - p1).abs() < 0.04, "{f1} vs {p1}");
    // a low temperature is nearly greedy; a high one spreads out
    let cold = Sampling {
        temperature: 0.01,
        top_k: None,
    };
    assert!((0..100).all(|_| cold.sample(&logits, &mut r) == 1));
    let hot = Sampling {
        temperature: 100.0,
        top_k: None,
    };
    let mut seen = [false; 5];
    for _ in 0..500 {
        seen[hot.sample(&logits, &mut r)] = true;
    }
    assert!(seen.iter().all(|&s| s));
    // top_k larger than the vocabulary keeps all
    let big = Sampling {
        temperature: 100.0,
        top_k: Some(50),
    };
    let mut seen = [false; 5];
    for _ in 0..500 {
        seen[big.sample(&logits, &mut r)] = true;
    }
    assert!(seen.iter().all(|&s| s));
    assert_eq!(Sampling::default().temperature, 1.0);
}

#[test]
fn generation_is_reproducible_and_crops_long_prompts() {
    let gpt = Gpt::<f32>::new(small_gpt_cfg(), &mut rng(9));
    let s = Sampling {
        temperature: 1.0,
        top_k: Some(4),
    };
    let a = gpt.generate(&[1, 2, 3], 12, s, &mut rng(1));
    assert_eq!(gpt.generate(&[1, 2, 3], 12, s, &mut rng(1)), a);
    assert!(a.iter().all(|&t| t < 11));
    // a prompt longer than the context is cropped to its last `context` tokens
    let long = [5, 4, 3, 2, 1, 0, 1, 2, 3, 4];
    let g = gpt.generate(&long, 3, Sampling::greedy(), &mut rng(0));
    assert_eq!(
        g,
        gpt.generate(&long[4..], 3, Sampling::greedy(), &mut rng(0))
    );
    assert!(gpt.generate(&[1], 0, s, &mut rng(0)).is_empty());
}

// ---------------------------------------------------------------------------
// positions

#[test]
fn sinusoidal_positions_known_values_and_in_the_model() {
    let pe = ferrograd::nn::sinusoidal_positions::<f64>(50, 16);
    let v = pe.to_vec();
    // position 0: sin 0 = 0 in even columns, cos 0 = 1 in odd ones
    for (j, x) in v[..16].iter().enumerate() {
        assert_eq!(*x, if j % 2 == 0 { 0.0 } else { 1.0 });
    }
    // known values: PE[1, 0] = sin 1, PE[1, 1] = cos 1, PE[10, 2] = sin(10 / 10000^(2/16))
    assert!((v[16] - 0.8414709848078965).abs() < 1e-15);
    assert!((v[17] - 0.5403023058681398).abs() < 1e-15);
    assert!((v[10 * 16 + 2] - (10.0f64 / 10000f64.powf(0.125)).sin()).abs() < 1e-15);
    // PE[49, 15]: the slowest frequency 1/10000^(14/16)
    assert!((v[49 * 16 + 15] - (49.0f64 / 10000f64.powf(14.0 / 16.0)).cos()).abs() < 1e-15);
    // every row has norm sqrt(dim / 2)
    for p in 0..50 {
        let n: f64 = v[p * 16..(p + 1) * 16].iter().map(|x| x * x).sum();
        assert!((n - 8.0).abs() < 1e-12);
    }
    // in the model: a fixed table, not a parameter nor a buffer
    let gpt = Gpt::<f64>::new(
        GptConfig {
            positions: Positions::Sinusoidal,
            ..small_gpt_cfg()
        },
        &mut rng(0),
    );
    assert_eq!(
        gpt.wpe().table().to_vec(),
        ferrograd::nn::sinusoidal_positions::<f64>(6, 8).to_vec()
    );
    assert!(!gpt.wpe().table().needs_grad());
    assert!(!names(&gpt).iter().any(|n| n.starts_with("wpe")));
    assert!(gpt.named_buffers().is_empty());
    // the positions matter: the same token at two positions has two logits rows
    let l = gpt.forward_ids(&[3, 3], 1).to_vec();
    assert_ne!(l[..11], l[11..]);
}

// ---------------------------------------------------------------------------
// errors

#[test]
#[should_panic(expected = "MultiHeadAttention: d_model 10 is not divisible by n_head 4")]
fn mha_rejects_indivisible_heads() {
    MultiHeadAttention::<f32>::new(mha_cfg(10, 4, true, true), &mut rng(0));
}

#[test]
#[should_panic(expected = "TransformerBlock: d_model 9 is not divisible by n_head 2")]
fn block_rejects_indivisible_heads() {
    TransformerBlock::<f32>::new(block_cfg(9, 2, true, true), &mut rng(0));
}

#[test]
#[should_panic(expected = "Gpt: d_model 30 is not divisible by n_head 4")]
fn gpt_rejects_indivisible_heads() {
    Gpt::<f32>::new(
        GptConfig {
            d_model: 30,
            n_head: 4,
            ..Default::default()
        },
        &mut rng(0),
    );
}

#[test]
#[should_panic(expected = "Gpt: a sequence of 7 tokens is longer than the context of 6 tokens")]
fn gpt_rejects_sequences_longer_than_the_context() {
    let gpt = Gpt::<f32>::new(small_gpt_cfg(), &mut rng(0));
    gpt.forward_ids(&[0; 7], 1);
}

#[test]
#[should_panic(expected = "Gpt: token id 11 (at index 2) is not below the vocabulary size 11")]
fn gpt_rejects_token_ids_outside_the_vocabulary() {
    let gpt = Gpt::<f32>::new(small_gpt_cfg(), &mut rng(0));
    gpt.forward_ids(&[0, 1, 11, 2], 2);
}

#[test]
fn try_forms_report_errors() {
    let gpt = Gpt::<f32>::new(small_gpt_cfg(), &mut rng(0));
    let msg = |r: ferrograd::Result<Tensor<f32>>| r.unwrap_err().to_string();
    assert!(msg(gpt.try_forward_ids(&[0, 1, 2], 2)).contains("3 ids for batch 2"));
    assert!(msg(gpt.try_forward_ids(&[], 1)).contains("0 ids for batch 1"));
    assert!(msg(gpt.try_loss(&[0, 1], &[1], 1)).contains("1 targets for 2 ids"));
    assert!(msg(gpt.try_loss(&[0, 1], &[1, 12], 1))
        .contains("target id 12 (at index 1) is not below the vocabulary size 11"));
    assert!(gpt
        .try_generate(&[], 3, Sampling::greedy(), &mut rng(0))
        .unwrap_err()
        .to_string()
        .contains("prompt"));
    assert!(gpt
        .try_generate(&[99], 3, Sampling::greedy(), &mut rng(0))
        .is_err());
    let bad = Sampling {
        temperature: -1.0,
        top_k: None,
    };
    assert!(gpt
        .try_generate(&[1], 3, bad, &mut rng(0))
        .unwrap_err()
        .to_string()
        .contains("temperature must be finite and at least 0, got -1"));
    let bad = Sampling {
        temperature: 1.0,
        top_k: Some(0),
    };
    assert!(gpt.try_generate(&[1], 3, bad, &mut rng(0)).is_err());
    for (cfg, want) in [
        (
            GptConfig {
                vocab: 0,
                ..small_gpt_cfg()
            },
            "vocab and context must be at least 1",
        ),
        (
            GptConfig {
                n_head: 0,
                ..small_gpt_cfg()
            },
            "n_head must be at least 1",
        ),
        (
            GptConfig {
                dropout: 1.5,
                ..small_gpt_cfg()
            },
            "dropout has to be between 0 and 1, got 1.5",
        ),
    ] {
        let err = Gpt::<f32>::try_new(cfg, &mut rng(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
    }
    let mha = MultiHeadAttention::<f32>::new(mha_cfg(8, 2, true, true), &mut rng(0));
    let err = mha
        .try_forward_masked(&Tensor::zeros(&[2, 3, 6]), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("d_model 8") && err.contains("[2, 3, 6]"),
        "{err}"
    );
    let pos = ferrograd::nn::PositionalEmbedding::<f32>::sinusoidal(4, 8);
    assert!(pos.try_forward_len(5).is_err());
}

// ---------------------------------------------------------------------------
// gradient checks (f64)

#[test]
fn gradcheck_multi_head_attention() {
    for (causal, bias, padded) in [(true, true, false), (false, false, true)] {
        let mha = MultiHeadAttention::<f64>::new(mha_cfg(4, 2, causal, bias), &mut rng(1));
        let x = randn(&[2, 3, 4], 2);
        let w = randn(&[2, 3, 4], 3);
        let pad = Tensor::<f64>::from_vec(vec![0., 0., 0., 0., 0., 1.], &[2, 3]).unwrap();
        let pad = padded.then_some(&pad);
        let report = gradcheck_module(&mha, |m| (m.forward_masked(&x, pad) * &w).sum()).unwrap();
        assert_eq!(report.inputs_checked, if bias { 4 } else { 2 });
        gradcheck(|t| mha.forward_masked(&t[0], pad), &[x.requires_grad()]).unwrap();
    }
}

#[test]
fn gradcheck_feed_forward_and_blocks() {
    let x = randn(&[2, 3, 4], 4);
    let w = randn(&[2, 3, 4], 5);
    for act in [
        ferrograd::nn::Activation::GeluErf,
        ferrograd::nn::Activation::Gelu,
    ] {
        let mlp = FeedForward::<f64>::new(4, true, act, 0.0, &mut rng(6));
        gradcheck_module(&mlp, |m| (m.forward(&x) * &w).sum()).unwrap();
    }
    for bias in [true, false] {
        let block = TransformerBlock::<f64>::new(block_cfg(4, 2, true, bias), &mut rng(7));
        let report = gradcheck_module(&block, |m| (m.forward(&x) * &w).sum()).unwrap();
        assert_eq!(report.inputs_checked, if bias { 12 } else { 6 });
        gradcheck(|t| block.forward(&t[0]), &[x.requires_grad()]).unwrap();
    }
}

#[test]
fn gradcheck_positions_and_gpt() {
    let pos = PositionalEmbedding::<f64>::learned(5, 4, &mut rng(8));
    let x = randn(&[2, 3, 4], 9);
    let w = randn(&[2, 3, 4], 10);
    gradcheck_module(&pos, |m| (m.forward(&x) * &w).sum()).unwrap();
    let fixed = PositionalEmbedding::<f64>::sinusoidal(5, 4);
    gradcheck(|t| fixed.forward(&t[0]), &[x.requires_grad()]).unwrap();
    let ids = [1, 4, 0, 2, 2, 3];
    let targets = [4, 0, 2, 1, 3, 3];
    for (tie, positions, bias) in [
        (true, Positions::Learned, true),
        (false, Positions::Sinusoidal, false),
    ] {
        let gpt = Gpt::<f64>::new(
            GptConfig {
                vocab: 5,
                context: 4,
                d_model: 4,
                n_head: 2,
                n_layer: 2,
                tie_weights: tie,
                positions,
                bias,
                ..Default::default()
            },
            &mut rng(11),
        );
        let report = gradcheck_module(&gpt, |m| m.try_loss(&ids, &targets, 2)).unwrap();
        assert_eq!(report.inputs_checked, gpt.parameters().len());
    }
}
