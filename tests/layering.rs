//! Dependencies among the service's modules point one way: no module of `src/` reaches, through
//! any chain of `crate::` paths, back to itself.
//!
//! The graph is read from the source: every top-level module (`src/<name>.rs` or `src/<name>/`)
//! is a node, and a `crate::<other>` path anywhere in its code (not in comments) is an edge.
//! `lib.rs` is the composition root (it builds the gateway from every module) and is not a node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges allowed to close a cycle, each with why. Keep this empty but for modules on their way
/// out of the service crate; an entry must name modules that exist, so it is removed with them.
const ALLOWED: &[(&str, &str, &str)] = &[];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module names a line of code refers to through `crate::name` or `crate::{name, ...}`.
fn referenced(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        // Skip `hookgate_crate::`-like identifiers that merely end in "crate".
        let preceded = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if preceded {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
            }
        } else {
            names.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    names
}

fn module_graph(src: &Path) -> Graph {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("read src") {
        let path = entry.expect("entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem == "lib" || stem == "main" {
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path.clone());
        } else {
            continue;
        }
        modules.entry(stem.to_owned()).or_default().extend(files);
    }
    let mut graph = Graph::new();
    for (module, files) in &modules {
        let edges = graph.entry(module.clone()).or_default();
        for file in files {
            let text = std::fs::read_to_string(file).expect("read module");
            for line in text.lines() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for name in referenced(code) {
                    if name != *module && modules.contains_key(&name) {
                        edges.insert(name);
                    }
                }
            }
        }
    }
    graph
}

/// Every cycle found by a depth-first walk, each as the path that closes it.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    fn walk(
        node: &str,
        graph: &Graph,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            found.push(cycle);
            return;
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            walk(next, graph, stack, done, found);
        }
        stack.pop();
        done.insert(node.to_owned());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        walk(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn no_import_cycle_among_the_service_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = module_graph(&src);
    for (from, to, why) in ALLOWED {
        assert!(
            graph.get(*from).is_some_and(|e| e.contains(*to)),
            "the allowed edge {from} -> {to} ({why}) no longer exists: remove it from ALLOWED"
        );
        if let Some(edges) = graph.get_mut(*from) {
            edges.remove(*to);
        }
    }
    let found = cycles(&graph);
    let shown: Vec<String> = found.iter().map(|c| c.join(" -> ")).collect();
    assert!(
        found.is_empty(),
        "import cycles among src/ modules:\n  {}\nmodule graph: {graph:#?}",
        shown.join("\n  ")
    );
    // The graph is really read: the pipeline uses the store.
    assert!(graph.get("pipeline").is_some_and(|e| e.contains("db")));
}

#[test]
fn the_check_reads_grouped_paths_and_finds_cycles() {
    assert_eq!(
        referenced("use crate::{db::Db, metrics, x::y}; let a = crate::now_ms();"),
        ["db", "metrics", "x", "now_ms"]
    );
    assert!(referenced("use hookgate_crate::x;").is_empty());
    let graph: Graph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(n, e)| (n.to_owned(), e.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c", "a"]]);
    let mut acyclic = graph;
    acyclic.get_mut("c").map(|e| e.remove("a"));
    assert!(cycles(&acyclic).is_empty());
}
