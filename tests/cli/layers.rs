//! The module map of README "Development", enforced: dependencies point one way.
//!
//! `main → cli → commands → report → library → {protocol, exit}`, where the library
//! is every other top-level module, its server and client sides independent of each
//! other, and the proxy on neither side. Nothing imports a layer above its own;
//! subcommands never import each other (only the shared `commands::args` and the
//! helpers of `commands/mod.rs`); and the graph of top-level modules (and of the
//! server's own modules) has no cycle. Read from the source, `use crate::…` and
//! `crate::…::` paths alike, tests and doc comments left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file belongs to, as `["server", "ws"]` for `src/server/ws.rs`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file before its `#[cfg(test)]` module, without comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b` path in `code`, as `["a", "b"]` (`use crate::{a, b}` as two).
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if rest.starts_with('{') {
            let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
            for item in group.split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    paths.push(vec![name.to_string()]);
                }
            }
            continue;
        }
        let path: Vec<String> = rest
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or("")
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if !path.is_empty() {
            paths.push(path);
        }
    }
    paths
}

/// `super::x` paths of a file inside `commands/`, resolved to `["commands", "x"]`.
fn super_paths(module: &[String], code: &str) -> Vec<Vec<String>> {
    let parent = &module[..module.len().saturating_sub(1)];
    code.match_indices("super::")
        .map(|(at, _)| {
            let mut path = parent.to_vec();
            path.extend(
                code[at + 7..]
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or("")
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
            path
        })
        .collect()
}

/// Layer of a top-level module: higher may import lower, never the reverse.
fn layer(top: &str) -> u8 {
    match top {
        "cli" => 5,
        "commands" => 4,
        "report" => 3,
        "protocol" | "exit" => 1,
        "lib" => 6,
        _ => 2,
    }
}

struct Import {
    from: Vec<String>,
    to: Vec<String>,
}

/// Every module that is a file of its own (`["server", "security", "jwt"]`).
fn modules() -> BTreeSet<Vec<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.iter().map(|f| module_of(&src, f)).collect()
}

/// The module `path` points into: its longest prefix that is a module file.
fn owner(path: &[String], known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
}

fn imports() -> Vec<Import> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut all = Vec::new();
    for file in files {
        let module = module_of(&src, &file);
        if module
            .first()
            .is_some_and(|m| m == "main" || m == "fuzzing")
        {
            continue;
        }
        let code = code(&std::fs::read_to_string(&file).unwrap());
        let mut paths = crate_paths(&code);
        paths.extend(super_paths(&module, &code));
        for to in paths {
            all.push(Import {
                from: module.clone(),
                to,
            });
        }
    }
    all
}

#[test]
fn no_module_imports_a_layer_above_its_own() {
    let mut wrong = BTreeSet::new();
    for i in imports() {
        let (from, to) = (i.from[0].as_str(), i.to[0].as_str());
        if from != "lib" && from != to && layer(to) > layer(from) {
            wrong.insert(format!("{} imports {}", i.from.join("::"), i.to.join("::")));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The client side of the library (what talks to a backend and judges what it
/// says).
const CLIENT_SIDE: &[&str] = &[
    "client",
    "check",
    "diagnose",
    "expect",
    "follow",
    "lifecycle",
    "load",
    "seq",
];

/// The server and the client side share only the leaves (`protocol`, `exit`,
/// `claims`, `backoff`): a Redis bus or a faster fan-out never touches the client,
/// and a client check never relies on the bundled server's internals.
#[test]
fn the_server_and_the_client_side_are_independent() {
    let mut wrong = BTreeSet::new();
    for i in imports() {
        let (from, to) = (i.from[0].as_str(), i.to[0].as_str());
        let across = (from == "server" && CLIENT_SIDE.contains(&to))
            || (CLIENT_SIDE.contains(&from) && to == "server");
        if across {
            wrong.insert(format!("{} imports {}", i.from.join("::"), i.to.join("::")));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `replay` is server side (`src/server/replay/`: it serves sockets), and plays a
/// recording without the engine: no queue, no in-process history, no shared state
/// of `serve` (only the HTTP layer, the socket helpers and the plain types).
#[test]
fn replay_is_server_side_without_the_engine() {
    let known = modules();
    assert!(known.contains(&vec!["server".to_string(), "replay".to_string()]));
    let engine = [
        "queue",
        "in_process",
        "state",
        "conflicts",
        "routes",
        "security",
    ];
    let mut wrong = BTreeSet::new();
    for i in imports() {
        let from_replay = i.from.len() >= 2 && i.from[0] == "server" && i.from[1] == "replay";
        let into_engine =
            i.to.len() >= 2 && i.to[0] == "server" && engine.contains(&i.to[1].as_str());
        if from_replay && (into_engine || CLIENT_SIDE.contains(&i.to[0].as_str())) {
            wrong.insert(format!("{} imports {}", i.from.join("::"), i.to.join("::")));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// What the proxy (`src/proxy/`) may use. It stands between a client and a server
/// and is neither: it uses no connection code of either side, only the leaves and
/// the where rules and event names of `check` and `expect`; and neither side
/// imports it.
const PROXY_USES: &[&str] = &["proxy", "protocol", "exit", "text", "check", "expect"];

#[test]
fn the_proxy_belongs_to_neither_side() {
    let mut wrong = BTreeSet::new();
    for i in imports() {
        let (from, to) = (i.from[0].as_str(), i.to[0].as_str());
        let proxy_reaches_out = from == "proxy" && !PROXY_USES.contains(&to);
        let side_reaches_in = to == "proxy" && (from == "server" || CLIENT_SIDE.contains(&from));
        if proxy_reaches_out || side_reaches_in {
            wrong.insert(format!("{} imports {}", i.from.join("::"), i.to.join("::")));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(
        modules().contains(&vec!["proxy".to_string(), "network".to_string()]),
        "the proxy's modules are read"
    );
}

#[test]
fn subcommands_never_import_each_other() {
    let mut wrong = BTreeSet::new();
    for i in imports() {
        if i.from.len() == 2 && i.from[0] == "commands" && i.to.len() >= 2 && i.to[0] == "commands"
        {
            let target = i.to[1].as_str();
            // `args` is the shared flag groups; `interrupted` lives in commands/mod.rs.
            if target != i.from[1] && target != "args" && target != "interrupted" {
                wrong.insert(format!("{} imports {}", i.from.join("::"), i.to.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut found = stack[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if !done.insert(node.to_string()) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, stack, done) {
                return Some(found);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_module_graph_has_no_cycle() {
    let known = modules();
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut server: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for i in imports() {
        if i.from[0] != i.to[0] && i.from[0] != "lib" {
            top.entry(i.from[0].clone())
                .or_default()
                .insert(i.to[0].clone());
        }
        // Inside the server, file by file (`security::jwt`); items of a folder's
        // `mod.rs` belong to that folder's module.
        let inner = |p: &[String]| {
            owner(p, &known)
                .filter(|m| m.len() >= 2 && m[0] == "server")
                .map(|m| m[1..].join("::"))
        };
        if let (Some(a), Some(b)) = (inner(&i.from), inner(&i.to))
            && a != b
            && !a.starts_with(&format!("{b}::"))
        {
            server.entry(a).or_default().insert(b);
        }
    }
    assert_eq!(cycle(&top), None, "{top:#?}");
    assert_eq!(cycle(&server), None, "{server:#?}");
}

#[test]
fn the_checker_sees_imports_and_cycles() {
    assert_eq!(
        crate_paths("use crate::client::{self, ws};\nlet x = crate::exit::Exit::Usage;"),
        [
            vec!["client".to_string()],
            vec!["exit".into(), "Exit".into(), "Usage".into()]
        ]
    );
    assert_eq!(crate_paths("use crate::{check, seq::SeqTracker};").len(), 2);
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into();
    assert!(cycle(&graph).is_some());
    assert!(layer("report") > layer("client") && layer("commands") > layer("report"));
}

/// The `key = value` lines of one `[section]` of Cargo.toml.
fn cargo_section(section: &str) -> Vec<(String, String)> {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let header = format!("[{section}]");
    manifest
        .lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn the_release_binary_ships_without_debug_info_and_profiling_keeps_it() {
    // Issue 11 point 21: a release binary with line tables was 73.6 MB; stripped
    // of debug info it is about 16 MB. Symbols for perf live in `--profile profiling`.
    let release = cargo_section("profile.release");
    assert!(
        release.contains(&("debug".into(), "false".into())),
        "{release:?}"
    );
    assert!(
        release.contains(&("strip".into(), "\"debuginfo\"".into())),
        "{release:?}"
    );
    let profiling = cargo_section("profile.profiling");
    assert!(
        profiling.contains(&("inherits".into(), "\"release\"".into())),
        "{profiling:?}"
    );
    assert!(
        profiling.contains(&("debug".into(), "\"line-tables-only\"".into())),
        "{profiling:?}"
    );
}
