//! The recorded graph as Graphviz DOT text: [`Tensor::to_dot`] and
//! [`Tensor::to_dot_with_gradients`].

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use super::inspect::l2_norm;
use super::Gradients;
use crate::element::Element;
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// The graph recorded behind this tensor, as [Graphviz](https://graphviz.org)
    /// DOT text: render it with `dot -Tsvg graph.dot -o graph.svg`.
    ///
    /// Nodes do not know the names of the parameters, so they are passed in, as
    /// [`named_parameters`](crate::nn::ModuleParams::named_parameters) returns
    /// them (`&[]` for none). The picture has:
    ///
    /// - one node (an ellipse) per recorded op, with its name, its output's
    ///   shape and `requires_grad=true`; this tensor's node has a double border
    ///   and says `(output)`;
    /// - one box per leaf: a parameter of `names` under its name (blue;
    ///   `requires_grad=false (frozen)` when frozen, grey); a leaf that is not in
    ///   `names` is an `input` when it requires a gradient and a `constant`
    ///   (data, a mask, a detached value; grey, dashed) when it does not, except
    ///   that a leaf on the same data as a parameter of `names` is called
    ///   `detached NAME` (or `another leaf on NAME's data` when it requires a
    ///   gradient: its gradient is not the parameter's) in yellow, since that is
    ///   usually a mistake;
    /// - an edge from each op's input to the op (two edges when an op uses one
    ///   tensor twice, as in `x * x`);
    /// - a cluster `not in the graph` with every parameter of `names` that this
    ///   tensor does not depend on: a sub-layer forgotten in `forward`, or one
    ///   cut off by [`detach`](Tensor::detach) or [`no_grad`](crate::no_grad).
    ///   Those that require a gradient (and so will get none) are red.
    ///
    /// A tensor used several times is one node: nodes are tensors, identified by
    /// [`id`](Tensor::id). The text is deterministic: nodes are numbered
    /// `n0, n1, …` in creation order (not by raw id), so the same computation
    /// gives the same text in every run, whatever was created before it. The
    /// graph is walked without recursion, so a chain of a million ops exports
    /// (a picture of it is another matter: Graphviz is comfortable up to a few
    /// thousand nodes).
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f32>::ones(&[3, 2]);                     // data: a constant
    /// let w = Tensor::<f32>::ones(&[2, 4]).requires_grad();
    /// let forgotten = Tensor::<f32>::zeros(&[4]).requires_grad();
    /// let loss = x.matmul(&w).relu().sum();
    /// let dot = loss.to_dot(&[("fc.weight".into(), w), ("fc.bias".into(), forgotten)]);
    /// assert!(dot.contains("digraph ferrograd {"));
    /// assert!(dot.contains(r#"label="matmul\n[3, 4]\nrequires_grad=true""#));
    /// assert!(dot.contains(r#"label="fc.weight\n[2, 4]\nrequires_grad=true""#));
    /// assert!(dot.contains(r#"label="constant\n[3, 2]\nrequires_grad=false""#));
    /// assert!(dot.contains(r#"label="not in the graph""#));      // fc.bias is listed there
    /// assert!(dot.contains(r#"label="fc.bias\n[4]\nrequires_grad=true""#));
    /// // std::fs::write("graph.dot", dot)?;   then: dot -Tsvg graph.dot -o graph.svg
    /// ```
    pub fn to_dot(&self, names: &[(String, Tensor<T>)]) -> String {
        render(self, names, None)
    }

    /// [`to_dot`](Tensor::to_dot), with what a backward pass gave: each edge
    /// leaving a tensor that has a gradient in `grads` is labelled with the L2
    /// norm of that gradient, `‖g‖=16.97`, `‖g‖=1.234e-7` (so every edge out of a parameter
    /// carries the norm of the parameter's gradient; intermediates have one
    /// when `grads` holds theirs). A parameter of `names` that requires a
    /// gradient but has none in `grads` is red and says `no gradient`.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let w = Tensor::<f64>::from_vec(vec![3.0, 4.0], &[2])?.requires_grad();
    /// let b = Tensor::<f64>::zeros(&[2]).requires_grad();
    /// let loss = (&w * &w).sum() + (&w * &b.detach()).sum();   // bug: b is cut off
    /// let grads = loss.backward()?;                             // w's gradient: 2w + b = (6, 8)
    /// let dot = loss.to_dot_with_gradients(&[("w".into(), w), ("b".into(), b)], &grads);
    /// assert_eq!(dot.matches(r#"[label="‖g‖=10"]"#).count(), 3);  // the three uses of w
    /// assert!(dot.contains(r#"label="b\n[2]\nrequires_grad=true\nno gradient""#));
    /// assert!(dot.contains(r#"label="detached b\n[2]\nrequires_grad=false""#));
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn to_dot_with_gradients(
        &self,
        names: &[(String, Tensor<T>)],
        grads: &Gradients<T>,
    ) -> String {
        render(self, names, Some(grads))
    }
}

// Colours: parameters blue, leaves without gradient grey, suspicious yellow,
// missing gradients red.
const OP_STYLE: &str = "style=filled, fillcolor=\"#ffffff\"";
const PARAM_STYLE: &str = "shape=box, style=filled, fillcolor=\"#cfe2ff\"";
const FROZEN_STYLE: &str = "shape=box, style=filled, fillcolor=\"#e0e0e0\"";
const MISSING_STYLE: &str = "shape=box, style=filled, fillcolor=\"#f4b4b4\", color=\"#c00000\"";
const INPUT_STYLE: &str = "shape=box, style=filled, fillcolor=\"#d8f0d8\"";
const CONSTANT_STYLE: &str = "shape=box, style=\"filled,dashed\", fillcolor=\"#f2f2f2\"";
const SUSPICIOUS_STYLE: &str = "shape=box, style=filled, fillcolor=\"#fff0b0\"";

/// The names given for the parameters: by tensor id (all names of one
/// tensor), and by buffer (the first name), to recognise detached copies.
struct Names<'a, T: Element> {
    by_id: HashMap<usize, Vec<&'a str>>,
    by_storage: HashMap<usize, &'a str>,
    list: &'a [(String, Tensor<T>)],
}

impl<'a, T: Element> Names<'a, T> {
    fn new(list: &'a [(String, Tensor<T>)]) -> Self {
        let mut by_id: HashMap<usize, Vec<&str>> = HashMap::new();
        let mut by_storage = HashMap::new();
        for (name, t) in list {
            by_id.entry(t.0.id).or_default().push(name);
            by_storage.entry(storage_key(t)).or_insert(name.as_str());
        }
        Names {
            by_id,
            by_storage,
            list,
        }
    }
}

fn storage_key<T: Element>(t: &Tensor<T>) -> usize {
    crate::shared::Shared::as_ptr(t.storage()) as *const () as usize
}

fn render<T: Element>(
    root: &Tensor<T>,
    names: &[(String, Tensor<T>)],
    grads: Option<&Gradients<T>>,
) -> String {
    // Every tensor behind the root, iteratively (graphs may be very deep).
    let mut seen: HashSet<usize> = HashSet::from([root.0.id]);
    let mut nodes: Vec<&Tensor<T>> = vec![root];
    let mut i = 0;
    while i < nodes.len() {
        if let Some(gf) = nodes[i].grad_fn() {
            for input in gf.inputs {
                if seen.insert(input.0.id) {
                    nodes.push(input);
                }
            }
        }
        i += 1;
    }
    // Creation order, numbered densely: the text does not depend on raw ids.
    nodes.sort_unstable_by_key(|t| t.0.id);
    let dense: HashMap<usize, usize> = nodes.iter().enumerate().map(|(k, t)| (t.0.id, k)).collect();
    let names = Names::new(names);

    let ops = nodes.iter().filter(|t| t.grad_fn().is_some()).count();
    let mut out = String::with_capacity(96 * nodes.len() + 256);
    let _ = writeln!(
        out,
        "// ferrograd graph: {ops} ops, {} leaves",
        nodes.len() - ops
    );
    out.push_str("digraph ferrograd {\n");
    out.push_str("  graph [fontname=\"Helvetica\", fontsize=11];\n");
    out.push_str("  node [fontname=\"Helvetica\", fontsize=10];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    for (k, t) in nodes.iter().enumerate() {
        let (mut lines, style) = describe(t, &names, grads);
        let is_root = t.0.id == root.0.id;
        if is_root {
            lines.push("(output)".into());
        }
        let _ = write!(out, "  n{k} [label=\"{}\", {style}", join_label(&lines));
        if is_root {
            out.push_str(", peripheries=2");
        }
        out.push_str("];\n");
    }
    for (k, t) in nodes.iter().enumerate() {
        let Some(gf) = t.grad_fn() else { continue };
        for input in gf.inputs {
            let from = dense[&input.0.id];
            let _ = write!(out, "  n{from} -> n{k}");
            if let Some(g) = grads.and_then(|g| g.get(input)) {
                let _ = write!(out, " [label=\"‖g‖={}\"]", format_norm(l2_norm(g)));
            }
            out.push_str(";\n");
        }
    }
    // The parameters this tensor does not depend on.
    let unreached: Vec<&(String, Tensor<T>)> = names
        .list
        .iter()
        .filter(|(_, t)| !seen.contains(&t.0.id))
        .collect();
    if !unreached.is_empty() {
        out.push_str("  subgraph cluster_not_in_graph {\n");
        out.push_str("    label=\"not in the graph\";\n");
        out.push_str("    style=dashed;\n");
        out.push_str("    color=\"#c00000\";\n");
        for (k, (name, t)) in unreached.iter().enumerate() {
            let mut lines = vec![escape(name), shape_text(t), requires_grad_text(t, true)];
            let style = if t.needs_grad() {
                if grads.is_some_and(|g| g.get(t).is_none()) {
                    lines.push("no gradient".into());
                }
                MISSING_STYLE
            } else {
                FROZEN_STYLE
            };
            let _ = writeln!(out, "    p{k} [label=\"{}\", {style}];", join_label(&lines));
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

/// The label lines (already escaped) and the style attributes of one node.
fn describe<T: Element>(
    t: &Tensor<T>,
    names: &Names<'_, T>,
    grads: Option<&Gradients<T>>,
) -> (Vec<String>, &'static str) {
    let shape = shape_text(t);
    let op = t.grad_fn().map(|gf| gf.op.name());
    if let Some(given) = names.by_id.get(&t.0.id) {
        let mut lines = vec![escape(&given.join(", "))];
        if let Some(op) = op {
            lines.push(format!("= {}", escape(op)));
        }
        lines.push(shape);
        lines.push(requires_grad_text(t, op.is_none()));
        let style = if !t.needs_grad() {
            FROZEN_STYLE
        } else if op.is_none() && grads.is_some_and(|g| g.get(t).is_none()) {
            // (an op output given a name gets a gradient only with retain_grad)
            lines.push("no gradient".into());
            MISSING_STYLE
        } else {
            PARAM_STYLE
        };
        return (lines, style);
    }
    if let Some(op) = op {
        return (
            vec![escape(op), shape, requires_grad_text(t, false)],
            OP_STYLE,
        );
    }
    let (title, style) = match names.by_storage.get(&storage_key(t)) {
        Some(name) if t.needs_grad() => (
            format!("another leaf on {}'s data", escape(name)),
            SUSPICIOUS_STYLE,
        ),
        Some(name) => (format!("detached {}", escape(name)), SUSPICIOUS_STYLE),
        None if t.needs_grad() => ("input".to_string(), INPUT_STYLE),
        None => ("constant".to_string(), CONSTANT_STYLE),
    };
    (vec![title, shape, requires_grad_text(t, false)], style)
}

fn shape_text<T: Element>(t: &Tensor<T>) -> String {
    format!("{:?}", t.shape())
}

/// `requires_grad=true`, or `requires_grad=false`, with ` (frozen)` for a
/// named parameter.
fn requires_grad_text<T: Element>(t: &Tensor<T>, named_leaf: bool) -> String {
    match (t.needs_grad(), named_leaf) {
        (true, _) => "requires_grad=true".into(),
        (false, true) => "requires_grad=false (frozen)".into(),
        (false, false) => "requires_grad=false".into(),
    }
}

/// A norm with four significant digits: plainly between 0.001 and 10 000
/// (`16.97`, `0.5`, `10`), in scientific notation outside (`1.234e-7`).
pub(crate) fn format_norm(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    if !(1e-3..1e4).contains(&v) {
        return format!("{v:.3e}");
    }
    let decimals = (3 - v.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Label lines joined with DOT's centred line break.
fn join_label(lines: &[String]) -> String {
    lines.join("\\n")
}

/// Text made safe inside a double-quoted DOT string: backslashes and quotes
/// escaped (so that no `\n`, `\l`, `\N` … escape of Graphviz is triggered),
/// line breaks as DOT's `\n`, other control characters replaced.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(char::REPLACEMENT_CHARACTER),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{escape, format_norm};

    #[test]
    fn norms_have_four_significant_digits() {
        assert_eq!(format_norm(16.970562748477143), "16.97");
        assert_eq!(format_norm(10.0), "10");
        assert_eq!(format_norm(0.5), "0.5");
        assert_eq!(format_norm(0.0012345), "0.001234");
        assert_eq!(format_norm(9999.4), "9999");
        assert_eq!(format_norm(12345.0), "1.234e4");
        assert_eq!(format_norm(1.5e-7), "1.500e-7");
        assert_eq!(format_norm(0.0), "0");
        assert_eq!(format_norm(f64::INFINITY), "inf");
        assert_eq!(format_norm(f64::NAN), "NaN");
    }

    #[test]
    fn escape_quotes_backslashes_and_line_breaks() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("two\nlines"), r"two\nlines");
        assert_eq!(escape("tab\there\r"), "tab\u{FFFD}here\u{FFFD}");
        assert_eq!(escape("blocks.0.attn.w‖"), "blocks.0.attn.w‖");
        // a name ending in a backslash cannot escape the closing quote
        assert_eq!(escape("x\\"), "x\\\\");
    }
}
