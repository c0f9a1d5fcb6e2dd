//! Seeing the graph and its gradients, through the public API: `Tensor::to_dot`
//! and `to_dot_with_gradients` (nodes, labels, edges, gradient norms, the
//! parameters that are not in the graph), `Gradients::missing` and
//! `Gradients::norms`, and the optimizers' strict mode, which lists every
//! missing parameter.

use std::collections::BTreeMap;

use ferrograd::autograd::{BackwardCtx, ForwardCtx, Function};
use ferrograd::nn::{Activation, Linear, Mlp, Module};
use ferrograd::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{no_grad, Error, Tensor};

// ----- a small reader of the DOT text this crate writes -----

/// The nodes (by DOT name) with their raw label text, which are in the
/// "not in the graph" cluster, and the edges with their labels.
#[derive(Debug, PartialEq)]
struct Dot {
    labels: BTreeMap<String, String>,
    attrs: BTreeMap<String, String>,
    unreached: Vec<String>,
    edges: Vec<(String, String, Option<String>)>,
}

/// The text of `key="…"` in `attrs`, up to the closing unescaped quote.
fn quoted(attrs: &str, key: &str) -> Option<String> {
    let start = attrs.find(&format!("{key}=\""))? + key.len() + 2;
    let mut out = String::new();
    let mut chars = attrs[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                out.push(chars.next().expect("an escape is complete"));
            }
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    panic!("unterminated string in {attrs}")
}

fn parse(dot: &str) -> Dot {
    assert!(dot.contains("digraph ferrograd {\n"), "{dot}");
    assert!(dot.ends_with("}\n"), "{dot}");
    let mut d = Dot {
        labels: BTreeMap::new(),
        attrs: BTreeMap::new(),
        unreached: Vec::new(),
        edges: Vec::new(),
    };
    let mut in_cluster = false;
    for line in dot.lines().map(str::trim) {
        if line.starts_with("subgraph cluster_not_in_graph") {
            in_cluster = true;
        } else if line == "}" {
            in_cluster = false;
        } else if let Some((from, rest)) = line.split_once(" -> ") {
            let (to, attrs) = rest.split_once(' ').unwrap_or((rest, ""));
            d.edges.push((
                from.to_string(),
                to.trim_end_matches(';').to_string(),
                quoted(attrs, "label"),
            ));
        } else if let Some((name, attrs)) = line.split_once(" [") {
            if ["graph", "node", "edge"].contains(&name) {
                continue;
            }
            let label = quoted(attrs, "label").expect("every node has a label");
            d.labels.insert(name.to_string(), label);
            d.attrs.insert(name.to_string(), attrs.to_string());
            if in_cluster {
                d.unreached.push(name.to_string());
            }
        }
    }
    d
}

impl Dot {
    /// The one node whose label is exactly `label` (raw DOT text).
    fn node(&self, label: &str) -> &str {
        let found: Vec<&String> = self
            .labels
            .iter()
            .filter(|(_, l)| *l == label)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "nodes labelled {label:?} in {:#?}",
            self.labels
        );
        found[0]
    }

    /// The label's first line of node `name`.
    fn title(&self, name: &str) -> &str {
        self.labels[name].split("\\n").next().unwrap()
    }

    /// The edges as (title of the input, title of the op), sorted.
    fn edge_titles(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<_> = self
            .edges
            .iter()
            .map(|(a, b, _)| (self.title(a), self.title(b)))
            .collect();
        v.sort();
        v
    }

    /// The labels of the edges leaving node `name`.
    fn labels_from(&self, name: &str) -> Vec<Option<String>> {
        self.edges
            .iter()
            .filter(|(a, _, _)| a == name)
            .map(|(_, _, l)| l.clone())
            .collect()
    }
}

/// `‖g‖=X` → X.
fn norm_of(label: &Option<String>) -> f64 {
    let text = label.as_deref().expect("a labelled edge");
    text.strip_prefix("‖g‖=")
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap_or_else(|_| panic!("{text}"))
}

fn named<T: ferrograd::Element>(list: &[(&str, &Tensor<T>)]) -> Vec<(String, Tensor<T>)> {
    list.iter()
        .map(|(n, t)| (n.to_string(), (*t).clone()))
        .collect()
}

/// Renders `dot` with Graphviz when it is installed (and says nothing otherwise):
/// the text must be valid DOT.
fn renders(dot: &str) {
    let Ok(mut child) = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dot failed: {}\n{dot}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
}

// ----- to_dot -----

#[test]
fn dot_shows_each_op_with_its_shape_the_parameters_by_name_and_the_edges() {
    let x = Tensor::<f32>::ones(&[3, 2]);
    let w = Tensor::<f32>::ones(&[2, 4]).requires_grad();
    let b = Tensor::<f32>::zeros(&[4]).requires_grad();
    let loss = (x.matmul(&w) + &b).relu().sum();
    let text = loss.to_dot(&named(&[("fc.weight", &w), ("fc.bias", &b)]));
    let d = parse(&text);

    let expected = [
        r"constant\n[3, 2]\nrequires_grad=false",
        r"fc.weight\n[2, 4]\nrequires_grad=true",
        r"fc.bias\n[4]\nrequires_grad=true",
        r"matmul\n[3, 4]\nrequires_grad=true",
        r"add\n[3, 4]\nrequires_grad=true",
        r"relu\n[3, 4]\nrequires_grad=true",
        r"sum\n[]\nrequires_grad=true\n(output)",
    ];
    let mut labels: Vec<&str> = d.labels.values().map(String::as_str).collect();
    labels.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(labels, want);
    // nodes are numbered in creation order
    for (k, label) in expected.iter().enumerate() {
        assert_eq!(d.node(label), format!("n{k}"));
    }
    assert_eq!(
        d.edge_titles(),
        [
            ("add", "relu"),
            ("constant", "matmul"),
            ("fc.bias", "add"),
            ("fc.weight", "matmul"),
            ("matmul", "add"),
            ("relu", "sum"),
        ]
    );
    assert!(
        d.edges.iter().all(|(_, _, l)| l.is_none()),
        "no gradients given"
    );
    assert!(d.unreached.is_empty());
    assert!(!text.contains("not in the graph"));
    assert!(
        d.attrs["n6"].contains("peripheries=2"),
        "the output stands out"
    );
    assert_eq!(
        d.attrs
            .values()
            .filter(|a| a.contains("peripheries"))
            .count(),
        1
    );
    assert!(text.starts_with("// ferrograd graph: 4 ops, 3 leaves\n"));
    renders(&text);
}

#[test]
fn dot_of_a_module_uses_named_parameters_and_lists_what_is_not_in_the_graph() {
    let mut rng = StdRng::seed_from_u64(1);
    let mlp = Mlp::<f32>::new(&[2, 3, 1], Activation::Tanh, &mut rng);
    let x = Tensor::<f32>::randn(&[5, 2], &mut rng);
    let loss = mlp.forward(&x).square().mean();
    let d = parse(&loss.to_dot(&mlp.named_parameters()));
    for (name, shape) in [
        ("0.weight", "[3, 2]"),
        ("0.bias", "[3]"),
        ("1.weight", "[1, 3]"),
        ("1.bias", "[1]"),
    ] {
        d.node(&format!(r"{name}\n{shape}\nrequires_grad=true"));
    }
    assert!(d.labels.values().any(|l| l.starts_with(r"tanh\n[5, 3]")));
    assert!(d.unreached.is_empty());

    // frozen first layer: its ops are not recorded, so it is not in the graph,
    // and is shown (grey, not red) in the cluster; its output is a constant
    mlp.freeze();
    mlp.named_parameters()[2..]
        .iter()
        .for_each(|(_, p)| p.set_requires_grad(true));
    let loss = mlp.forward(&x).square().mean();
    let d = parse(&loss.to_dot(&mlp.named_parameters()));
    let unreached: Vec<&str> = d.unreached.iter().map(|n| d.title(n)).collect();
    assert_eq!(unreached, ["0.weight", "0.bias"]);
    let frozen = d.node(r"0.weight\n[3, 2]\nrequires_grad=false (frozen)");
    assert!(d.attrs[frozen].contains("#e0e0e0"), "{}", d.attrs[frozen]);
    d.node(r"constant\n[5, 3]\nrequires_grad=false");
    d.node(r"1.weight\n[1, 3]\nrequires_grad=true");
}

#[test]
fn a_tensor_used_twice_is_one_node_with_an_edge_per_use() {
    let a = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2])
        .unwrap()
        .requires_grad();
    let y = (&a * &a + &a).sum();
    let d = parse(&y.to_dot(&named(&[("a", &a)])));
    let node = d.node(r"a\n[2]\nrequires_grad=true");
    assert_eq!(d.labels.len(), 4); // a, mul, add, sum
    assert_eq!(
        d.edge_titles(),
        [
            ("a", "add"),
            ("a", "mul"),
            ("a", "mul"),
            ("add", "sum"),
            ("mul", "add")
        ]
    );
    assert_eq!(d.labels_from(node).len(), 3);
}

/// The same computation on fresh tensors, after `garbage` unrelated tensors.
fn small_model(garbage: usize) -> (Tensor, Vec<(String, Tensor)>) {
    let _ignored: Vec<Tensor> = (0..garbage).map(|_| Tensor::zeros(&[1])).collect();
    let mut rng = StdRng::seed_from_u64(4);
    let mlp = Mlp::<f32>::new(&[3, 4, 4, 2], Activation::Relu, &mut rng);
    let x = Tensor::<f32>::randn(&[6, 3], &mut rng);
    let h = mlp.forward(&x);
    let loss = (h.softmax(-1) * &h).sum() + h.square().mean();
    (loss, mlp.named_parameters())
}

#[test]
fn the_text_is_deterministic() {
    let (loss, names) = small_model(0);
    let first = loss.to_dot(&names);
    assert_eq!(loss.to_dot(&names), first, "the same graph twice");
    // a second model: other ids, the same text
    let (loss2, names2) = small_model(17);
    assert_ne!(loss2.id(), loss.id());
    assert_eq!(loss2.to_dot(&names2), first);
    let grads = loss.backward().unwrap();
    let grads2 = loss2.backward().unwrap();
    assert_eq!(
        loss.to_dot_with_gradients(&names, &grads),
        loss2.to_dot_with_gradients(&names2, &grads2)
    );
    // and its node names follow creation order, 0 up
    let d = parse(&first);
    let n = d.labels.len();
    let numbers: Vec<usize> = d
        .labels
        .keys()
        .map(|k| k.strip_prefix('n').unwrap().parse().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(numbers, (0..n).collect::<Vec<_>>());
}

#[test]
fn gradient_norms_label_the_edges_and_equal_the_hand_computed_ones() {
    let w = Tensor::<f64>::from_vec(vec![3.0, 4.0], &[2])
        .unwrap()
        .requires_grad();
    let b = Tensor::<f64>::from_vec(vec![1.0, 2.0, 2.0], &[3])
        .unwrap()
        .requires_grad();
    let x = Tensor::<f64>::from_vec(vec![1.0, -1.0], &[2])
        .unwrap()
        .requires_grad(); // an input that asks for a gradient, not a parameter
                          // gradients: 2w = (6, 8), norm 10; b = (1, 2, 2), norm 3; 3·(1, 1), norm 3√2
    let loss = (&w * &w).sum() + (&b * &b).sum() * 0.5 + (&x * 3.0).sum();
    let grads = loss.backward().unwrap();
    let names = named(&[("w", &w), ("b", &b)]);
    let text = loss.to_dot_with_gradients(&names, &grads);
    let d = parse(&text);

    let wn = d.node(r"w\n[2]\nrequires_grad=true");
    let from_w = d.labels_from(wn);
    assert_eq!(from_w.len(), 2);
    assert!(from_w.iter().all(|l| norm_of(l) == 10.0), "{from_w:?}");
    assert_eq!(from_w[0].as_deref(), Some("‖g‖=10"));
    let bn = d.node(r"b\n[3]\nrequires_grad=true");
    assert!(d.labels_from(bn).iter().all(|l| norm_of(l) == 3.0));
    let xn = d.node(r"input\n[2]\nrequires_grad=true");
    let from_x = d.labels_from(xn);
    assert_eq!(from_x.len(), 1);
    let expected = 3.0 * 2f64.sqrt();
    assert!((norm_of(&from_x[0]) - expected).abs() < 5e-4 * expected);
    assert_eq!(from_x[0].as_deref(), Some("‖g‖=4.243"));
    // ops have no gradient in `grads`: their edges carry no label
    let ops_out: Vec<_> = d
        .edges
        .iter()
        .filter(|(a, _, _)| ![wn, bn, xn].contains(&a.as_str()))
        .collect();
    assert!(!ops_out.is_empty());
    assert!(ops_out.iter().all(|(_, _, l)| l.is_none()), "{ops_out:?}");
    assert!(!text.contains("no gradient"));
    renders(&text);

    // gradients of another loss, where b took no part: b is marked
    let other = w.square().sum().backward().unwrap(); // 2w again, norm 10
    let d = parse(&loss.to_dot_with_gradients(&names, &other));
    let bn = d.node(r"b\n[3]\nrequires_grad=true\nno gradient");
    assert!(d.attrs[bn].contains("#f4b4b4"));
    assert!(d.labels_from(bn).iter().all(Option::is_none));
    let wn = d.node(r"w\n[2]\nrequires_grad=true");
    assert!(d.labels_from(wn).iter().all(|l| norm_of(l) == 10.0));
    // x is not a parameter: no mark, no label
    let xn = d.node(r"input\n[2]\nrequires_grad=true");
    assert!(d.labels_from(xn).iter().all(Option::is_none));
}

#[test]
fn a_detached_parameter_shows_as_such_and_in_the_not_in_the_graph_cluster() {
    let w = Tensor::<f32>::ones(&[2, 2]).requires_grad();
    let b = Tensor::<f32>::zeros(&[2]).requires_grad();
    let frozen = Tensor::<f32>::zeros(&[2]);
    let loss = (&w.detach() * &b).sum();
    let names = named(&[("w", &w), ("b", &b), ("frozen", &frozen)]);
    let grads = loss.backward().unwrap();
    let text = loss.to_dot_with_gradients(&names, &grads);
    let d = parse(&text);
    let detached = d.node(r"detached w\n[2, 2]\nrequires_grad=false");
    assert!(d.attrs[detached].contains("#fff0b0"));
    assert_eq!(
        d.edge_titles(),
        [("b", "mul"), ("detached w", "mul"), ("mul", "sum")]
    );
    assert!(text.contains("label=\"not in the graph\""));
    let cluster: Vec<&str> = d.unreached.iter().map(|n| d.labels[n].as_str()).collect();
    assert_eq!(
        cluster,
        [
            r"w\n[2, 2]\nrequires_grad=true\nno gradient",
            r"frozen\n[2]\nrequires_grad=false (frozen)"
        ]
    );
    assert!(
        d.attrs[&d.unreached[0]].contains("#f4b4b4"),
        "red: will get no gradient"
    );
    assert!(d.attrs[&d.unreached[1]].contains("#e0e0e0"), "grey: frozen");
    renders(&text);

    // a new leaf handle on the parameter's data is flagged too: its gradient is not w's
    let loss = (&w.requires_grad() * 2.0).sum();
    let d = parse(&loss.to_dot(&names));
    d.node(r"another leaf on w's data\n[2, 2]\nrequires_grad=true");
    // and without gradients, the unreached w is red but says nothing about them
    assert!(d.labels.values().all(|l| !l.contains("no gradient")));
}

#[test]
fn labels_are_escaped() {
    let w = Tensor::<f32>::ones(&[2]).requires_grad();
    let name = "layer \"1\"\\w\nnext\\n";
    let loss = w.sum();
    let text = loss.to_dot(&named(&[(name, &w)]));
    let d = parse(&text);
    d.node(r#"layer \"1\"\\w\nnext\\n\n[2]\nrequires_grad=true"#);
    // the label is one quoted string: no raw line break or stray quote
    let line = text.lines().find(|l| l.contains("layer")).unwrap();
    assert!(line.ends_with("];"), "{line}");
    renders(&text);
}

#[test]
fn a_graph_a_hundred_thousand_ops_deep_exports_without_recursion() {
    // a small stack: a recursive walk would overflow it
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let x = Tensor::<f32>::scalar(1.0).requires_grad();
            let mut h = x.clone();
            for _ in 0..100_000 {
                h = &h * 1.0;
            }
            let names = named(&[("x", &x)]);
            let text = h.to_dot(&names);
            let edges = text.lines().filter(|l| l.contains(" -> ")).count();
            assert_eq!(edges, 100_000);
            assert_eq!(
                text.lines().filter(|l| l.contains("[label=")).count(),
                100_001
            );
            assert!(text.contains(r#"n0 [label="x\n[]\nrequires_grad=true""#));
            assert!(
                text.contains(r#"n100000 [label="mul_scalar\n[]\nrequires_grad=true\n(output)""#)
            );
            let grads = h.backward().unwrap();
            let text = h.to_dot_with_gradients(&names, &grads);
            assert!(text.contains("n0 -> n1 [label=\"‖g‖=1\"];"));
        })
        .unwrap()
        .join()
        .unwrap();
}

/// `2x`, as a custom function.
#[derive(Clone)]
struct Twice;

impl Function<f64> for Twice {
    fn name(&self) -> &'static str {
        "twice"
    }
    fn forward(
        &self,
        _: &mut ForwardCtx<f64>,
        inputs: &[&Tensor<f64>],
    ) -> ferrograd::Result<Tensor<f64>> {
        Ok(inputs[0] * 2.0)
    }
    fn backward(
        &self,
        _: &BackwardCtx<'_, f64>,
        grad: &Tensor<f64>,
    ) -> ferrograd::Result<Vec<Option<Tensor<f64>>>> {
        Ok(vec![Some(grad * 2.0)])
    }
}

#[test]
fn custom_functions_show_by_name_and_retained_gradients_label_their_edges() {
    let w = Tensor::<f64>::from_vec(vec![3.0, 4.0], &[2])
        .unwrap()
        .requires_grad();
    let h = Tensor::apply(&Twice, &[&w]); // (6, 8)
    h.retain_grad().unwrap();
    let loss = h.square().sum();
    // gradients: h's is 2h = (12, 16), norm 20; w's is 2·(12, 16), norm 40
    let grads = loss.backward().unwrap();
    let d = parse(&loss.to_dot_with_gradients(&named(&[("w", &w)]), &grads));
    let twice = d.node(r"twice\n[2]\nrequires_grad=true");
    let wn = d.node(r"w\n[2]\nrequires_grad=true");
    assert_eq!(d.labels_from(wn), [Some("‖g‖=40".to_string())]);
    assert_eq!(d.labels_from(twice), [Some("‖g‖=20".to_string())]);
    assert_eq!(
        d.edge_titles(),
        [("square", "sum"), ("twice", "square"), ("w", "twice")]
    );
}

// ----- Gradients::missing and norms -----

#[derive(ferrograd::nn::Module)]
struct ThreeLayers {
    fc1: Linear,
    fc2: Linear,
    head: Linear,
    #[module(skip)]
    bug: Bug,
}

#[derive(Clone, Copy)]
enum Bug {
    None,
    ForgetsFc2,
    DetachesAfterFc1,
    Fc1UnderNoGrad,
}

impl Module for ThreeLayers {
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = match self.bug {
            Bug::Fc1UnderNoGrad => {
                let _guard = no_grad();
                self.fc1.forward(x).relu()
            }
            _ => self.fc1.forward(x).relu(),
        };
        let h = match self.bug {
            Bug::ForgetsFc2 => h,
            Bug::DetachesAfterFc1 => self.fc2.forward(&h.detach()).relu(),
            _ => self.fc2.forward(&h).relu(),
        };
        self.head.forward(&h)
    }
}

fn three_layers(bug: Bug) -> ThreeLayers {
    let mut rng = StdRng::seed_from_u64(9);
    ThreeLayers {
        fc1: Linear::new(3, 4, true, &mut rng),
        fc2: Linear::new(4, 4, true, &mut rng),
        head: Linear::new(4, 1, true, &mut rng),
        bug,
    }
}

fn grads_of(model: &ThreeLayers) -> ferrograd::Gradients {
    let x = Tensor::<f32>::ones(&[2, 3]);
    model.forward(&x).square().sum().backward().unwrap()
}

#[test]
fn missing_finds_a_forgotten_layer_and_a_cut_off_branch() {
    let ok = three_layers(Bug::None);
    assert!(grads_of(&ok).missing(&ok.named_parameters()).is_empty());

    let forgot = three_layers(Bug::ForgetsFc2);
    let grads = grads_of(&forgot);
    assert_eq!(
        grads.missing(&forgot.named_parameters()),
        ["fc2.weight", "fc2.bias"]
    );
    // bare tensors: by position and shape, as optimizers name unnamed parameters
    assert_eq!(
        grads.missing(&forgot.parameters()),
        ["#2 (shape [4, 4])", "#3 (shape [4])"]
    );
    let refs: Vec<(&str, &Tensor)> =
        vec![("w", forgot.fc2.weight()), ("head", forgot.head.weight())];
    assert_eq!(grads.missing(&refs), ["w"]);

    for bug in [Bug::DetachesAfterFc1, Bug::Fc1UnderNoGrad] {
        let cut = three_layers(bug);
        assert_eq!(
            grads_of(&cut).missing(&cut.named_parameters()),
            ["fc1.weight", "fc1.bias"]
        );
    }
}

#[test]
fn missing_ignores_frozen_parameters() {
    let forgot = three_layers(Bug::ForgetsFc2);
    forgot.fc2.freeze();
    let grads = grads_of(&forgot);
    assert!(grads.missing(&forgot.named_parameters()).is_empty());
    // frozen and used: no gradient either, and not missing
    let model = three_layers(Bug::None);
    model.fc1.freeze();
    let grads = grads_of(&model);
    assert!(grads.get(model.fc1.weight()).is_none());
    assert!(grads.missing(&model.named_parameters()).is_empty());
    // thawed after the forward pass: now it is expected, and missing
    model.fc1.unfreeze();
    assert_eq!(
        grads.missing(&model.named_parameters()),
        ["fc1.weight", "fc1.bias"]
    );
}

#[test]
fn norms_are_the_l2_norms_of_each_gradient_in_order() {
    // loss = Σ w·c: the gradient of w is exactly c
    let c = |v: &[f64]| Tensor::<f64>::from_vec(v.to_vec(), &[v.len()]).unwrap();
    let a = Tensor::<f64>::zeros(&[2]).requires_grad();
    let b = Tensor::<f64>::zeros(&[3]).requires_grad();
    let z = Tensor::<f64>::zeros(&[2]).requires_grad();
    let unused = Tensor::<f64>::zeros(&[4]).requires_grad();
    let frozen = Tensor::<f64>::zeros(&[1]);
    let loss = (&a * &c(&[3.0, 4.0])).sum()                // ‖(3, 4)‖ = 5
        + (&b * &c(&[1.0, -2.0, 2.0])).sum()                // ‖(1, −2, 2)‖ = 3
        + (&z * &c(&[0.0, 0.0])).sum()                      // a real 0
        + (&frozen * 7.0).sum();
    let grads = loss.backward().unwrap();
    let params = [
        ("b", &b),
        ("unused", &unused),
        ("a", &a),
        ("frozen", &frozen),
        ("z", &z),
    ];
    assert_eq!(
        grads.norms(&params),
        [
            ("b".to_string(), 3.0),
            ("a".to_string(), 5.0),
            ("z".to_string(), 0.0)
        ]
    );
    assert_eq!(
        grads.norms(&[unused.clone(), a.clone()]),
        [("#1 (shape [2])".to_string(), 5.0)]
    );

    // f32, through a module: each norm is sqrt(Σ g²) of that parameter's gradient
    let model = three_layers(Bug::None);
    let grads = grads_of(&model);
    let norms = grads.norms(&model.named_parameters());
    let names: Vec<&str> = norms.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "head.weight",
            "head.bias"
        ]
    );
    for ((_, norm), (_, p)) in norms.iter().zip(model.named_parameters()) {
        let g = grads.get(&p).unwrap().to_vec();
        let by_hand = g
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        assert_eq!(*norm, by_hand as f32);
        assert!(*norm > 0.0);
    }
    // the global norm is the norm of the per-parameter norms
    let global = norms.iter().map(|(_, n)| n * n).sum::<f32>().sqrt();
    assert!((global - grads.global_norm()).abs() <= 1e-5 * global);
}

// ----- strict mode -----

#[test]
fn strict_mode_lists_every_missing_parameter_and_skips_frozen_ones() {
    let w = Tensor::<f32>::ones(&[2]).requires_grad();
    let b = Tensor::<f32>::ones(&[1]).requires_grad();
    let c = Tensor::<f32>::ones(&[3]).requires_grad();
    let frozen = Tensor::<f32>::ones(&[4]).requires_grad();
    frozen.set_requires_grad(false);
    let grads = w.sum().backward().unwrap();
    let params = named(&[("w", &w), ("b", &b), ("frozen", &frozen), ("c", &c)]);
    let mut opt = Adam::new_named(params.clone(), AdamConfig::default()).strict(true);
    let err = opt.step(&grads).unwrap_err();
    match &err {
        Error::MissingGradient { param } => assert_eq!(param, "b, c"),
        other => panic!("expected MissingGradient, got {other:?}"),
    }
    assert_eq!(grads.missing(&params), ["b", "c"], "the same list");
    assert!(
        err.to_string().contains("no gradient for parameter b, c"),
        "{err}"
    );
    assert_eq!(w.to_vec(), [1.0, 1.0], "nothing updated");

    let mut unnamed = Sgd::new(vec![w.clone(), b, frozen, c], SgdConfig::default()).strict(true);
    match unnamed.step(&grads) {
        Err(Error::MissingGradient { param }) => {
            assert_eq!(param, "#1 (shape [1]), #3 (shape [3])")
        }
        other => panic!("expected MissingGradient, got {other:?}"),
    }
}
