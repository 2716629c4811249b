//! The module layering, checked on every `cargo test`: no import circles between the files
//! of `src/`, and the core (`state/`, `prompt/`, `eval/`, `technique/`, `chat.rs`) imports
//! neither the terminal (ratatui, crossterm), nor tokio, nor the backends in `src/llm`.
//!
//! Imports are read from the source: `use crate::…`, `use super::…` and inline `crate::…`
//! paths, each resolved to the file that defines the longest matching module. Test code
//! (`tests.rs` files, modules declared under `#[cfg(test)]`, and everything after a file's
//! `#[cfg(test)]` line) is left out: tests may reach across layers. A `mod.rs` importing its
//! own submodules (re-exports) is structure, not a dependency, and is left out too.
//!
//! Run `cargo test --test architecture -- --nocapture` to print the graph's cycles and the
//! forbidden imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Core files that still reach outside the core, as (file under src/, path used), waiting for
/// their refactor. Shrink-only: an entry that no longer occurs fails the test too.
const KNOWN_FORBIDDEN: &[(&str, &str)] = &[];

/// Import edges that still close a cycle, waiting for their refactor (issue 13). The test
/// fails on a cycle through any edge not listed here, and on a listed edge that no longer
/// closes a cycle (delete it: the list only shrinks). A parent module and its children share
/// types through a leaf (`prompt/variant.rs`, `ui/cache.rs`, `store/error.rs`,
/// `bench/figures.rs`) rather than through the parent.
const KNOWN_CYCLE_EDGES: &[&str] = &[];

/// Core modules and what they must not import.
const CORE: [&str; 5] = ["state", "prompt", "eval", "technique", "chat"];
const CORE_FORBIDDEN_CRATES: [&str; 4] = ["ratatui", "crossterm", "tokio", "tokio_util"];
const CORE_FORBIDDEN_MODULES: [&str; 4] = ["llm", "app", "ui", "cmd"];

/// One source file as a module: `src/app/update/mod.rs` is `app::update`.
#[derive(Debug)]
struct SourceFile {
    module: Vec<String>,
    path: PathBuf,
    /// Non-test code.
    code: String,
    /// A `mod.rs` or `lib.rs` (its submodules are its children).
    is_dir_module: bool,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> (Vec<String>, bool) {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs").to_string();
    match stem.as_str() {
        "mod" | "lib" | "main" => (parts, true),
        _ => {
            parts.push(stem);
            (parts, false)
        }
    }
}

/// Modules declared `#[cfg(test)] mod name;` in `text`.
fn test_only_children(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut after_cfg_test = false;
    for line in text.lines() {
        let t = line.trim();
        if t == "#[cfg(test)]" {
            after_cfg_test = true;
            continue;
        }
        if after_cfg_test {
            let decl = t
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ");
            if let Some(name) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                out.insert(name.trim().to_string());
            }
        }
        after_cfg_test = false;
    }
    out
}

/// The code of `text` before a `#[cfg(test)]` that opens a module body (`mod tests {`).
fn non_test_code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if t == "#[cfg(test)]" {
            let next = lines.get(i + 1).map_or("", |l| l.trim());
            if next.contains("mod ") && next.ends_with('{') {
                break; // the test module runs to the end of the file
            }
            // `#[cfg(test)] mod x;` or a test-only item: skip the next line too.
            i += 2;
            continue;
        }
        // Comments never import.
        if !t.starts_with("//") {
            out.push_str(lines[i]);
            out.push('\n');
        }
        i += 1;
    }
    out
}

fn load(src: &Path) -> Vec<SourceFile> {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    paths.sort();
    let texts: BTreeMap<PathBuf, String> = paths
        .iter()
        .map(|p| (p.clone(), std::fs::read_to_string(p).unwrap_or_default()))
        .collect();
    // Files that are test modules: `tests.rs` and `#[cfg(test)] mod x;` children.
    let mut test_modules: BTreeSet<Vec<String>> = BTreeSet::new();
    for (p, text) in &texts {
        // A child of `a/b.rs` or `a/b/mod.rs` is `a::b::child` either way.
        let (parent, _) = module_of(src, p);
        for child in test_only_children(text) {
            let mut c = parent.clone();
            c.push(child);
            test_modules.insert(c);
        }
    }
    let mut out = Vec::new();
    for (p, text) in texts {
        let (module, is_dir_module) = module_of(src, &p);
        let is_test = module.last().is_some_and(|l| l == "tests")
            || test_modules
                .iter()
                .any(|t| module.len() >= t.len() && module[..t.len()] == t[..]);
        if is_test || p.file_name().is_some_and(|f| f == "main.rs") {
            continue;
        }
        out.push(SourceFile {
            module,
            path: p,
            code: non_test_code(&text),
            is_dir_module,
        });
    }
    out
}

/// Expand a use tree (`a::{b, c::{d, e}}`) into paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let t = tree.split(" as ").next().unwrap_or("").trim();
        return vec![t.to_string()];
    };
    let prefix = tree[..open].trim_end_matches("::").trim();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| {
            if p == "self" {
                prefix.to_string()
            } else if prefix.is_empty() {
                p
            } else {
                format!("{prefix}::{p}")
            }
        })
        .collect()
}

/// Every path the code names: use trees, and inline `crate::`/`super::` paths; with
/// whether it is a re-export (`pub use`). Also the code without its use statements.
fn paths_in(code: &str) -> (Vec<(String, bool)>, String) {
    let mut out = Vec::new();
    let mut body = String::new();
    // use statements (may span lines)
    let lines: Vec<&str> = code.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        let t = ["pub(crate) ", "pub(super) ", "pub "]
            .iter()
            .find_map(|p| line.strip_prefix(p))
            .unwrap_or(line);
        let reexport = t.len() != line.len();
        if let Some(start) = t.strip_prefix("use ") {
            let mut stmt = start.to_string();
            while !stmt.contains(';') && i + 1 < lines.len() {
                i += 1;
                stmt.push(' ');
                stmt.push_str(lines[i].trim());
            }
            let stmt = stmt.split(';').next().unwrap_or("");
            out.extend(expand(stmt).into_iter().map(|p| (p, reexport)));
        } else {
            body.push_str(lines[i]);
            body.push('\n');
        }
        i += 1;
    }
    // inline paths
    for root in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = body[from..].find(root) {
            let start = from + i;
            let before = body[..start].chars().last();
            from = start + root.len();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = body[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push((path.trim_end_matches(':').to_string(), false));
        }
    }
    (out, body)
}

/// Whether `code` has `needle` at the start of a path (not inside another path or word).
fn mentions(code: &str, needle: &str) -> bool {
    code.match_indices(needle).any(|(i, _)| {
        code[..i]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'))
    })
}

/// The file module a path points into, if it is one of ours.
fn resolve(from: &SourceFile, path: &str, modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let segs: Vec<&str> = path.split("::").map(str::trim).collect();
    let mut base: Vec<String> = match *segs.first()? {
        "crate" => Vec::new(),
        "super" => {
            let mut b = from.module.clone();
            b.pop();
            b
        }
        "self" => from.module.clone(),
        _ => return None,
    };
    let mut rest = &segs[1..];
    while rest.first() == Some(&"super") {
        base.pop();
        rest = &rest[1..];
    }
    let mut best = None;
    let mut cur = base.clone();
    if modules.contains(&cur) {
        best = Some(cur.clone());
    }
    for s in rest {
        cur.push(s.to_string());
        if modules.contains(&cur) {
            best = Some(cur.clone());
        }
    }
    best
}

struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
    forbidden: Vec<String>,
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "lib".into()
    } else {
        m.join("::")
    }
}

fn graph(src: &Path) -> Graph {
    let files = load(src);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut forbidden = Vec::new();
    for f in &files {
        let from = name(&f.module);
        edges.entry(from.clone()).or_default();
        let core = f.module.first().is_some_and(|m| CORE.contains(&m.as_str()));
        let (mut paths, body) = paths_in(&f.code);
        if f.is_dir_module {
            // Paths through a child module by its bare name (`headless::run` in lib.rs).
            for m in &modules {
                if m.len() == f.module.len() + 1 && m[..f.module.len()] == f.module[..] {
                    let child = &m[m.len() - 1];
                    if mentions(&body, &format!("{child}::")) {
                        paths.push((format!("self::{child}"), false));
                    }
                }
            }
        }
        for (p, reexport) in paths {
            let first = p.split("::").next().unwrap_or("").trim();
            if core && CORE_FORBIDDEN_CRATES.contains(&first) {
                forbidden.push(format!("{} uses {p}", f.path.display()));
            }
            let Some(to) = resolve(f, &p, &modules) else {
                continue;
            };
            if core
                && to
                    .first()
                    .is_some_and(|m| CORE_FORBIDDEN_MODULES.contains(&m.as_str()))
            {
                forbidden.push(format!("{} uses {p}", f.path.display()));
            }
            // A directory module re-exporting its own submodules is structure; using them
            // is a dependency like any other.
            let descendant =
                reexport && to.len() > f.module.len() && to[..f.module.len()] == f.module[..];
            if to == f.module || descendant {
                continue;
            }
            edges.entry(from.clone()).or_default().insert(name(&to));
        }
    }
    forbidden.sort();
    forbidden.dedup();
    Graph { edges, forbidden }
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        let edges = t.edges;
        for w in edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// The edges inside a cycle, for the report.
fn cycle_edges(edges: &BTreeMap<String, BTreeSet<String>>, comp: &[String]) -> Vec<String> {
    let set: BTreeSet<&String> = comp.iter().collect();
    let mut out = Vec::new();
    for a in comp {
        for b in edges.get(a).into_iter().flatten() {
            if set.contains(b) {
                out.push(format!("{a} -> {b}"));
            }
        }
    }
    out
}

#[test]
fn the_module_graph_has_no_new_cycles_and_the_core_stays_pure() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    assert!(g.edges.len() > 20, "the source tree was not read");
    let found = cycles(&g.edges);
    let known: BTreeSet<&str> = KNOWN_CYCLE_EDGES.iter().copied().collect();
    let mut in_cycles: BTreeSet<String> = BTreeSet::new();
    let mut report = String::new();
    let mut failed = false;
    for c in &found {
        report.push_str(&format!("cycle of {} files:\n", c.len()));
        for e in cycle_edges(&g.edges, c) {
            let new = !known.contains(e.as_str());
            failed |= new;
            report.push_str(&format!("  {e}{}\n", if new { "   <- new" } else { "" }));
            in_cycles.insert(e);
        }
    }
    for k in &known {
        if !in_cycles.contains(*k) {
            failed = true;
            report.push_str(&format!(
                "no longer in a cycle, delete it from KNOWN_CYCLE_EDGES: {k}\n"
            ));
        }
    }
    let is_known =
        |f: &str, (file, path): &(&str, &str)| f.ends_with(&format!("{file} uses {path}"));
    for f in &g.forbidden {
        if KNOWN_FORBIDDEN.iter().any(|k| is_known(f, k)) {
            report.push_str(&format!("forbidden (known): {f}\n"));
            continue;
        }
        failed = true;
        report.push_str(&format!("forbidden: {f}\n"));
    }
    for k in KNOWN_FORBIDDEN {
        if !g.forbidden.iter().any(|f| is_known(f, k)) {
            failed = true;
            report.push_str(&format!(
                "no longer forbidden, delete it from KNOWN_FORBIDDEN: {} uses {}\n",
                k.0, k.1
            ));
        }
    }
    println!("{report}");
    assert!(!failed, "{report}");
}

#[test]
fn the_checker_sees_cycles_and_forbidden_imports() {
    // The checker itself, on a tiny tree it must flag.
    let dir = std::env::temp_dir().join(format!("promptloom-arch-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("state")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod state;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::Thing;\n").unwrap();
    std::fs::write(
        src.join("b.rs"),
        "pub fn f() { crate::a::g() }\n#[cfg(test)]\nmod tests {\n use crate::state::X;\n}\n",
    )
    .unwrap();
    std::fs::write(
        src.join("state/mod.rs"),
        "use tokio::sync::mpsc;\nuse crate::{a::{self, Y}, b};\n",
    )
    .unwrap();
    let g = graph(&src);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        cycles(&g.edges),
        vec![vec!["a".to_string(), "b".to_string()]]
    );
    assert_eq!(g.forbidden.len(), 1, "{:?}", g.forbidden);
    assert!(g.forbidden[0].contains("tokio::sync::mpsc"));
    assert!(g.edges["state"].contains("a") && g.edges["state"].contains("b"));
    assert!(!g.edges["b"].contains("state"), "test code is left out");
}

/// The floors of the playground (issue 13): `app::model` imports nothing else in `app`;
/// `app::update` imports only the model (and its own rooms); views import only the model.
/// The driver is the only floor that sees all of them.
#[test]
fn the_app_floors_only_look_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    let mut wrong = Vec::new();
    for (from, tos) in &g.edges {
        for to in tos {
            let bad = if from.starts_with("app::model") {
                to.starts_with("app") && !to.starts_with("app::model") && to != "app"
                    || to.starts_with("ui")
            } else if from.starts_with("app::update") {
                to.starts_with("app::driver") || to.starts_with("ui") || to.starts_with("cmd")
            } else if from.starts_with("ui") {
                to.starts_with("app::update") || to.starts_with("app::driver")
            } else {
                false
            };
            if bad {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        g.edges.keys().any(|k| k.starts_with("app::model")),
        "no app::model files were read"
    );
    assert!(
        wrong.is_empty(),
        "imports that go up a floor:\n{}",
        wrong.join("\n")
    );
}

/// The subcommands are the top floor (issue 13): only `lib.rs` (which dispatches), `cli.rs`
/// (which composes their arguments) and the harnesses that reach everything (`bench/`, and
/// `fuzz.rs`, whose targets include the `rate` line parser) import `cmd/`.
#[test]
fn nothing_below_the_commands_imports_them() {
    const ABOVE: [&str; 4] = ["lib", "cli", "bench", "fuzz"];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    let mut wrong = Vec::new();
    for (from, tos) in &g.edges {
        let top = from.split("::").next().unwrap_or("");
        if top == "cmd" || ABOVE.contains(&top) {
            continue;
        }
        for to in tos {
            if to == "cmd" || to.starts_with("cmd::") {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        g.edges.keys().any(|k| k.starts_with("cmd::")),
        "no cmd files were read"
    );
    assert!(
        wrong.is_empty(),
        "imports of cmd/ from below it:\n{}",
        wrong.join("\n")
    );
}

/// `update` is pure: no file under `app/update` or `app/model` reads or writes a file, or
/// calls what does (loading or parsing a prompt file reads its `context_files`; reading
/// retrieval files is `render::read_inputs` / `indexes_for`, the driver's and `run`'s job).
#[test]
fn update_and_the_model_read_no_files() {
    const IO: [&str; 9] = [
        "std::fs",
        "fs::",
        "File::",
        "prompt::load",
        "prompt::parse",
        "read_inputs",
        "indexes_for",
        "Indexes::load",
        "retrieve::index",
    ];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = load(&src);
    let floor: Vec<&SourceFile> = files
        .iter()
        .filter(|f| {
            f.module.len() >= 2
                && f.module[0] == "app"
                && ["update", "model"].contains(&f.module[1].as_str())
        })
        .collect();
    assert!(floor.len() > 10, "app/update and app/model were not read");
    let mut wrong = Vec::new();
    for f in floor {
        for needle in IO {
            if names(&f.code, needle) {
                wrong.push(format!("{}: {needle}", f.path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "I/O inside update:\n{}", wrong.join("\n"));
    // The check sees it when it is there, and not inside another name.
    assert!(names("let t = std::fs::read_to_string(p);", "fs::"));
    assert!(names(
        "let p = crate::prompt::parse(path, text);",
        "prompt::parse"
    ));
    assert!(!names("let p: PromptFile::Thing;", "File::"));
}

/// Whether `code` has `needle` not inside a longer name (a path prefix is fine).
fn names(code: &str, needle: &str) -> bool {
    code.match_indices(needle).any(|(i, _)| {
        code[..i]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

/// Where the files under `src/app/update` and `src/app/model` of `src` mention `crossterm`,
/// tests and comments included, as `path:line`.
fn crossterm_mentions(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["app/update", "app/model"] {
        rust_files(&src.join(dir), &mut files);
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            if line.to_ascii_lowercase().contains("crossterm") {
                let rel = f.strip_prefix(src).unwrap_or(&f);
                out.push(format!("{}:{}", rel.display(), i + 1));
            }
        }
    }
    out
}

/// The app's core sees keys as its own `Key` (issues 13 and 19): the driver converts the
/// terminal's events (`app/driver/input.rs`), so nothing under `app/update` or `app/model`,
/// tests included, names crossterm.
#[test]
fn the_app_core_never_mentions_crossterm() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert!(
        src.join("app/model/keys.rs").exists(),
        "the app's own key type is missing"
    );
    let found = crossterm_mentions(&src);
    assert!(
        found.is_empty(),
        "crossterm in the app's core:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_crossterm_check_sees_a_mention() {
    let dir = std::env::temp_dir().join(format!("promptloom-ct-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("app/update/rooms")).unwrap();
    std::fs::create_dir_all(src.join("app/model")).unwrap();
    std::fs::create_dir_all(src.join("app/driver")).unwrap();
    std::fs::write(src.join("app/model/keys.rs"), "pub struct Key;\n").unwrap();
    std::fs::write(
        src.join("app/update/rooms/tests.rs"),
        "fn t() {}\nuse crossterm::event::KeyCode;\n",
    )
    .unwrap();
    std::fs::write(src.join("app/driver/input.rs"), "use crossterm::event;\n").unwrap();
    let found = crossterm_mentions(&src);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found, vec!["app/update/rooms/tests.rs:2".to_string()]);
}
