//! A test that the crate's top-level modules depend on each other without a
//! cycle: each module can be read, changed and tested with only the ones
//! below it in mind. The layering today, lowest first: redact, agents,
//! metrics, cluster, assess, config, services, safety, tools, cli, server
//! (MCP and HTTP).
//!
//! The scan reads the sources (no compiler): every `crate::X` and every
//! `super::` path that climbs to the crate root is an edge from the file's
//! top-level module to `X`, after comments, string and char literals are
//! blanked out. `#[cfg(test)]` items are left out: a unit test may use a
//! module above its own (tools' tests build MCP tools, say).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edge → where it was first seen ("file:line").
type Edges = BTreeMap<(String, String), String>;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The source with comments, strings and chars replaced by spaces (line
/// breaks kept, so line numbers hold).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (0usize, 0usize);
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &rest[..j]);
            i += j;
        } else if let Some(len) = raw_string(rest) {
            blank(&mut out, &rest[..len]);
            i += len;
        } else if rest[0] == b'"' || rest.starts_with(b"b\"") {
            let mut j = if rest[0] == b'"' { 1 } else { 2 };
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            let len = if rest.get(1) == Some(&b'\\') {
                rest.get(3..)
                    .and_then(|r| r.iter().position(|&c| c == b'\''))
                    .map(|p| p + 4)
            } else {
                src[i + 1..].chars().next().and_then(|c| {
                    let after = 1 + c.len_utf8();
                    (rest.get(after) == Some(&b'\'')).then_some(after + 1)
                })
            };
            match len {
                Some(len) => {
                    blank(&mut out, &rest[..len]);
                    i += len;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = src[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Length of a raw string literal (`r"…"`, `r#"…"#`, `br"…"`) at the start.
fn raw_string(s: &[u8]) -> Option<usize> {
    let mut j = match s {
        [b'r', ..] => 1,
        [b'b', b'r', ..] => 2,
        _ => return None,
    };
    let hashes = s[j..].iter().take_while(|&&c| c == b'#').count();
    j += hashes;
    if s.get(j) != Some(&b'"') {
        return None;
    }
    let close: Vec<u8> = std::iter::once(b'"')
        .chain(std::iter::repeat_n(b'#', hashes))
        .collect();
    let body = &s[j + 1..];
    let end = body
        .windows(close.len())
        .position(|w| w == close.as_slice())?;
    Some(j + 1 + end + close.len())
}

/// The code with every `#[cfg(test)]` item blanked out.
fn without_tests(code: &str) -> String {
    let mut out = code.to_string();
    let mut from = 0;
    while let Some(at) = out[from..].find("#[cfg(test)]").map(|p| p + from) {
        let b = out.as_bytes();
        let mut j = at + "#[cfg(test)]".len();
        // The item ends at its block's closing brace, or at `;`.
        while j < b.len() && b[j] != b'{' && b[j] != b';' {
            j += 1;
        }
        if j < b.len() && b[j] == b'{' {
            let mut depth = 0;
            while j < b.len() {
                match b[j] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        let end = (j + 1).min(out.len());
        let blanked: String = out[at..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(at..end, &blanked);
        from = end;
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first segments a path continues with: `x` or each of `{x, y::z}`.
fn first_segments(rest: &str) -> Vec<String> {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut items = vec![String::new()];
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => items.push(String::new()),
                _ => {}
            }
            if depth == 0
                && c != ','
                && let Some(last) = items.last_mut()
            {
                last.push(c);
            }
        }
        items
            .iter()
            .map(|i| ident(i.trim()).to_string())
            .filter(|i| !i.is_empty())
            .collect()
    } else {
        vec![ident(rest).to_string()]
    }
}

/// The module path of a file under `src` (`tools/node/mod.rs` → tools, node).
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn edges(src: &Path, modules: &BTreeSet<String>) -> Edges {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut found = Edges::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src").to_path_buf();
        if rel == Path::new("lib.rs") || rel == Path::new("main.rs") {
            continue;
        }
        // A `tests.rs` holds a module's unit tests, declared
        // `#[cfg(test)] mod tests;` (checked below): test code, as above.
        if rel.file_name().is_some_and(|f| f == "tests.rs") {
            let parent = file.with_file_name("mod.rs");
            let declared = std::fs::read_to_string(&parent).unwrap_or_default();
            assert!(
                declared.contains("#[cfg(test)]\nmod tests;"),
                "{}: a tests.rs must be declared `#[cfg(test)] mod tests;` in {}",
                rel.display(),
                parent.display()
            );
            continue;
        }
        let path = module_path(&rel);
        let from = path[0].clone();
        let text = std::fs::read_to_string(&file).expect("read source");
        let code = without_tests(&code_only(&text));
        for (n, line) in code.lines().enumerate() {
            let mut targets = Vec::new();
            for (at, _) in line.match_indices("crate::") {
                let before = line[..at].chars().last();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                targets.extend(first_segments(&line[at + "crate::".len()..]));
            }
            let mut at = 0;
            while let Some(p) = line[at..].find("super::").map(|p| p + at) {
                let before = line[..p].chars().last();
                let mut rest = &line[p..];
                let mut climbs = 0;
                while let Some(r) = rest.strip_prefix("super::") {
                    climbs += 1;
                    rest = r;
                }
                at = line.len() - rest.len();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                if climbs >= path.len() {
                    targets.extend(first_segments(rest));
                }
            }
            for to in targets {
                if to != from && modules.contains(&to) {
                    found
                        .entry((from.clone(), to))
                        .or_insert_with(|| format!("{}:{}", rel.display(), n + 1));
                }
            }
        }
    }
    found
}

/// Groups of modules that reach each other (more than one module each).
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges.keys().flat_map(|(a, b)| [a, b]).collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for (a, b) in edges.keys() {
                if *a == n && seen.insert(b.clone()) {
                    todo.push(b.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut groups: BTreeSet<Vec<String>> = BTreeSet::new();
    for n in &nodes {
        let group: Vec<String> = nodes
            .iter()
            .filter(|m| reached[n].contains(**m) && reached[**m].contains(*n))
            .map(|m| (*m).clone())
            .collect();
        if group.len() > 1 {
            groups.insert(group);
        }
    }
    groups.into_iter().collect()
}

#[test]
fn top_level_modules_have_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').trim().to_string())
        .collect();
    assert!(
        modules.len() > 10,
        "modules not found in lib.rs: {modules:?}"
    );
    let edges = edges(&src, &modules);
    assert!(
        edges.contains_key(&("tools".into(), "agents".into())),
        "the scan found no tools → agents edge: it reads nothing"
    );
    let found = cycles(&edges);
    let explain: Vec<String> = found
        .iter()
        .map(|group| {
            let inside: Vec<String> = edges
                .iter()
                .filter(|((a, b), _)| group.contains(a) && group.contains(b))
                .map(|((a, b), at)| format!("  {a} → {b} ({at})"))
                .collect();
            format!("{}:\n{}", group.join(" ↔ "), inside.join("\n"))
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles between top-level modules (move the shared item down, or invert the \
         reference):\n{}",
        explain.join("\n")
    );
}

#[test]
fn the_scan_sees_paths_and_skips_comments_strings_and_tests() {
    let code = without_tests(&code_only(
        "use crate::{agents::X, cluster};\n// crate::mcp\nlet s = \"crate::http\";\nlet c = '{';\n\
         #[cfg(test)]\nmod tests { use crate::cli; }\nlet r = r#\"crate::auth\"#;\nsuper::super::redact::f();\n",
    ));
    assert!(code.contains("crate::{agents::X, cluster}"));
    for gone in ["crate::mcp", "crate::http", "crate::cli", "crate::auth"] {
        assert!(!code.contains(gone), "{gone} left in:\n{code}");
    }
    assert_eq!(code.lines().count(), 8);
    assert_eq!(
        first_segments("{agents::X, cluster::{a, b}}"),
        ["agents", "cluster"]
    );
    assert_eq!(
        module_path(Path::new("tools/node/mod.rs")),
        ["tools", "node"]
    );
    let mut e = Edges::new();
    e.insert(("a".into(), "b".into()), String::new());
    e.insert(("b".into(), "c".into()), String::new());
    assert!(cycles(&e).is_empty());
    e.insert(("c".into(), "a".into()), String::new());
    assert_eq!(cycles(&e), [["a", "b", "c"]]);
}
