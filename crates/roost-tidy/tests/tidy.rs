//! Architecture tests: each test reads the workspace's sources and fails,
//! naming `file:line`, when an invariant of ARCHITECTURE.md is broken.
//!
//! The scan is deliberately simple: a small lexer blanks comments and the
//! contents of string literals (keeping line numbers), so that rules about
//! code do not fire on prose, and rules about SQL look only inside strings.
//!
//! Test code is exempt from the rules about wire JSON and domain purity. Test
//! code is: `tests/`, `benches/` and `examples/` directories, `#[cfg(test)]`
//! items and the module files they declare, and the crates
//! `roost-test-support` and `roost-bench`. Those two stand in for a user's
//! tools: a body written out by hand there checks the wire format
//! independently of the types both ends share.
//!
//! Allowlists name files owned by work in progress. Each may only shrink: a
//! listed file that no longer breaks the rule fails the test, so the entry
//! must be removed together with the violation.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Rules and their allowlists.

/// Crates that decide and do no I/O: no files, sockets, async runtime, clock
/// readings or serde (wire JSON belongs to roost-api).
const PURE_DOMAIN_CRATES: &[&str] = &[
    "roost-types",
    "roost-fm",
    "roost-mtce",
    "roost-dc",
    "roost-apps",
];

/// `roost-inventory` reads `/proc` and `/sys` by design (its root path is
/// injected), so files are allowed; sockets, async, clock readings and serde
/// are not.
const INVENTORY_CRATE: &str = "roost-inventory";

/// Words a pure domain crate's non-test code must not contain.
const DOMAIN_FORBIDDEN: &[(&str, &str)] = &[
    ("std::fs", "file I/O"),
    ("fs::", "file I/O"),
    ("File::", "file I/O"),
    ("std::net", "network I/O"),
    ("TcpStream", "network I/O"),
    ("TcpListener", "network I/O"),
    ("UdpSocket", "network I/O"),
    ("tokio", "an async runtime"),
    (
        "SystemTime::now",
        "reading the clock (take a time or a Clock)",
    ),
    ("Instant::now", "reading the clock (take a time or a Clock)"),
    ("serde", "serde (wire types live in roost-api)"),
    ("Serialize", "a serde derive (wire types live in roost-api)"),
    (
        "Deserialize",
        "a serde derive (wire types live in roost-api)",
    ),
];

/// Dependencies a domain crate must not declare.
const DOMAIN_FORBIDDEN_DEPS: &[&str] = &[
    "serde",
    "serde_json",
    "tokio",
    "axum",
    "hyper",
    "reqwest",
    "rusqlite",
    "rustls",
    "tokio-rustls",
];

/// Exceptions to the domain rules: (file, word, reason).
const DOMAIN_EXCEPTIONS: &[(&str, &str, &str)] = &[(
    "crates/roost-types/src/time.rs",
    "SystemTime::now",
    "SystemClock is the one real implementation of the injected Clock trait",
)];

/// Files outside roost-api (and tests) that still build JSON with `json!`.
/// Each is being moved to roost-api types; the list may only shrink.
const JSON_MACRO_ALLOWLIST: &[(&str, &str)] = &[
    (
        "crates/roost-server/src/http/dcmanager.rs",
        "being moved to roost-api types (dcmanager answers)",
    ),
    (
        "crates/roost-sim/src/subclouds.rs",
        "being moved to roost-api types (simulated subclouds' requests)",
    ),
];

/// Files of the server whose routes are not on the API port, so not in the
/// OpenAPI document.
const ROUTES_NOT_DOCUMENTED: &[(&str, &str)] = &[
    (
        "crates/roost-server/src/http/dclink.rs",
        "the DC listener (mutual TLS), described in docs/distributed-cloud.md",
    ),
    (
        "crates/roost-server/src/http/ui/mod.rs",
        "the web console's HTML pages (cookie sessions), described in docs/console.md",
    ),
];

/// Declared dependencies that no source names, with the reason they stay.
const UNUSED_DEPENDENCY_EXCEPTIONS: &[(&str, &str, &str)] = &[];

/// Crates that build a binary: they may use `anyhow` and report errors as
/// they like. Every other crate is a library.
const BINARY_CRATES: &[&str] = &["roost", "roost-bench"];

/// Library crates whose errors are still being converted to the one-enum
/// rule (one `thiserror` enum, no `anyhow`, no `Result<_, String>`), with
/// the reason. The test below fails once a listed crate keeps every rule.
const ERROR_RULE_EXCEPTIONS: &[(&str, &str)] = &[];

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn sql_lives_only_in_roost_store() {
    let ws = Workspace::load();
    let mut errors = Vec::new();
    for f in &ws.files {
        // roost-tidy spells out the rule itself.
        if f.krate == "roost-store" || f.krate == "roost-tidy" {
            continue;
        }
        for (line, word) in find_words(&f.code, &["rusqlite"]) {
            errors.push(format!(
                "{}:{line}: `{word}` outside crates/roost-store (only roost-store contains SQL)",
                f.rel
            ));
        }
        for s in &f.strings {
            if let Some(what) = sql_in(&s.text) {
                errors.push(format!(
                    "{}:{}: SQL ({what}) in a string outside crates/roost-store",
                    f.rel, s.line
                ));
            }
        }
    }
    for m in &ws.manifests {
        if m.krate == "roost-store" {
            continue;
        }
        for d in &m.deps {
            if d.name == "rusqlite" {
                errors.push(format!(
                    "{}:{}: depends on rusqlite (only roost-store contains SQL)",
                    m.rel, d.line
                ));
            }
        }
    }
    report("SQL outside roost-store", errors);
}

#[test]
fn domain_crates_do_no_io_and_define_no_wire_types() {
    let ws = Workspace::load();
    let mut errors = Vec::new();
    for f in &ws.files {
        let pure = PURE_DOMAIN_CRATES.contains(&f.krate.as_str());
        let inventory = f.krate == INVENTORY_CRATE;
        if !(pure || inventory) || f.all_test {
            continue;
        }
        let rules: Vec<(&str, &str)> = DOMAIN_FORBIDDEN
            .iter()
            .copied()
            .filter(|(w, _)| pure || !matches!(*w, "std::fs" | "fs::" | "File::"))
            .collect();
        let words: Vec<&str> = rules.iter().map(|(w, _)| *w).collect();
        for (line, word) in find_words(&f.code, &words) {
            if f.is_test_line(line) {
                continue;
            }
            if DOMAIN_EXCEPTIONS
                .iter()
                .any(|(file, w, _)| *file == f.rel && *w == word)
            {
                continue;
            }
            let why = rules.iter().find(|(w, _)| *w == word).map(|(_, y)| *y);
            errors.push(format!(
                "{}:{line}: `{word}` in domain crate {}: {}",
                f.rel,
                f.krate,
                why.unwrap_or("")
            ));
        }
    }
    for m in &ws.manifests {
        if !(PURE_DOMAIN_CRATES.contains(&m.krate.as_str()) || m.krate == INVENTORY_CRATE) {
            continue;
        }
        for d in m.deps.iter().filter(|d| d.section == Section::Normal) {
            if DOMAIN_FORBIDDEN_DEPS.contains(&d.name.as_str()) {
                errors.push(format!(
                    "{}:{}: domain crate {} depends on {}",
                    m.rel, d.line, m.krate, d.name
                ));
            }
        }
    }
    for (file, word, _) in DOMAIN_EXCEPTIONS {
        let f = ws.file(file);
        if find_words(&f.code, &[*word]).is_empty() {
            errors.push(format!(
                "{file}: exception for `{word}` is no longer needed: remove it from DOMAIN_EXCEPTIONS"
            ));
        }
    }
    report("domain crate purity", errors);
}

#[test]
fn wire_json_is_built_only_in_roost_api_and_tests() {
    let ws = Workspace::load();
    let mut errors = Vec::new();
    let mut still_needed = BTreeSet::new();
    for f in &ws.files {
        if f.krate == "roost-api" || f.all_test {
            continue;
        }
        for (line, _) in find_words(&f.code, &["json!"]) {
            if f.is_test_line(line) {
                continue;
            }
            if JSON_MACRO_ALLOWLIST.iter().any(|(a, _)| *a == f.rel) {
                still_needed.insert(f.rel.clone());
                continue;
            }
            errors.push(format!(
                "{}:{line}: `json!` outside roost-api: use a roost-api type shared by both ends",
                f.rel
            ));
        }
    }
    for (file, _) in JSON_MACRO_ALLOWLIST {
        if !still_needed.contains(*file) {
            errors.push(format!(
                "{file}: no longer uses `json!`: remove it from JSON_MACRO_ALLOWLIST"
            ));
        }
    }
    report("json! outside roost-api", errors);
}

#[test]
fn every_routed_path_is_documented_and_every_documented_path_is_routed() {
    let ws = Workspace::load();
    let mut routed: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut errors = Vec::new();
    for f in &ws.files {
        if f.krate != "roost-server" || f.all_test {
            continue;
        }
        if ROUTES_NOT_DOCUMENTED.iter().any(|(a, _)| *a == f.rel) {
            if routes_in(f).is_empty() {
                errors.push(format!(
                    "{}: routes nothing now: remove it from ROUTES_NOT_DOCUMENTED",
                    f.rel
                ));
            }
            continue;
        }
        for r in routes_in(f) {
            if r.methods.is_empty() {
                errors.push(format!(
                    "{}:{}: cannot read the methods of route {}",
                    f.rel, r.line, r.path
                ));
            }
            for m in r.methods {
                routed.insert((m, r.path.clone()), format!("{}:{}", f.rel, r.line));
            }
        }
    }
    assert!(
        routed.len() > 20,
        "found only {} routes in crates/roost-server: the scan is broken",
        routed.len()
    );
    let doc = committed_openapi();
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    for ((method, path), at) in &routed {
        if !documented.contains(&(method.clone(), path.clone())) {
            errors.push(format!(
                "{at}: {} {path} is routed but not in openapi/roost.json (add it to roost_api::openapi::ROUTES)",
                method.to_uppercase()
            ));
        }
    }
    for (method, path) in &documented {
        if !routed.contains_key(&(method.clone(), path.clone())) {
            errors.push(format!(
                "openapi/roost.json: {} {path} is documented but no router in crates/roost-server routes it",
                method.to_uppercase()
            ));
        }
    }
    report("routes and the OpenAPI document", errors);
}

#[test]
fn every_declared_dependency_is_used() {
    let ws = Workspace::load();
    let mut errors = Vec::new();
    let mut exceptions_used = BTreeSet::new();
    for m in &ws.manifests {
        let files: Vec<&SourceFile> = ws.files.iter().filter(|f| f.krate == m.krate).collect();
        for d in &m.deps {
            let ident = d.name.replace('-', "_");
            let patterns = [format!("{ident}::"), format!("{ident}!")];
            let pats: Vec<&str> = patterns.iter().map(String::as_str).collect();
            let used = files.iter().any(|f| {
                let hits = find_words(&f.code, &pats);
                match d.section {
                    // A normal dependency must be used by the crate's own
                    // code; one used only by tests belongs in dev-dependencies.
                    Section::Normal => hits
                        .iter()
                        .any(|(l, _)| !f.test_target && !f.is_test_line(*l)),
                    Section::Dev | Section::Build => !hits.is_empty(),
                }
            });
            if used {
                continue;
            }
            if UNUSED_DEPENDENCY_EXCEPTIONS
                .iter()
                .any(|(k, n, _)| *k == m.krate && *n == d.name)
            {
                exceptions_used.insert((m.krate.clone(), d.name.clone()));
                continue;
            }
            let what = match d.section {
                Section::Normal => "no non-test source of the crate names it",
                Section::Dev => "no source of the crate names it",
                Section::Build => "no source of the crate names it",
            };
            errors.push(format!(
                "{}:{}: dependency `{}` is unused: {what}",
                m.rel, d.line, d.name
            ));
        }
    }
    for (k, n, _) in UNUSED_DEPENDENCY_EXCEPTIONS {
        if !exceptions_used.contains(&(k.to_string(), n.to_string())) {
            errors.push(format!(
                "{k}: `{n}` is used now: remove it from UNUSED_DEPENDENCY_EXCEPTIONS"
            ));
        }
    }
    report("unused dependencies", errors);
}

#[test]
fn every_workspace_dependency_is_used_by_a_member() {
    let ws = Workspace::load();
    let root = workspace_root().join("Cargo.toml");
    let text = fs::read_to_string(&root).expect("Cargo.toml");
    let mut in_table = false;
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            in_table = line == "[workspace.dependencies]";
            continue;
        }
        if !in_table || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !ws
            .manifests
            .iter()
            .any(|m| m.deps.iter().any(|d| d.name == name))
        {
            errors.push(format!(
                "Cargo.toml:{}: workspace dependency `{name}` is declared by no member",
                i + 1
            ));
        }
    }
    report("unused workspace dependencies", errors);
}

#[test]
fn library_crates_do_not_depend_on_anyhow() {
    let ws = Workspace::load();
    let mut errors = Vec::new();
    for m in &ws.manifests {
        if !is_library(&m.krate) {
            continue;
        }
        for d in m.deps.iter().filter(|d| d.section == Section::Normal) {
            if d.name != "anyhow" {
                continue;
            }
            if error_rule_exception(&m.krate) {
                continue;
            }
            errors.push(format!(
                "{}:{}: library crate {} depends on anyhow (anyhow is for the binaries; use the crate's own Error enum)",
                m.rel, d.line, m.krate
            ));
        }
    }
    report("anyhow only in the binaries", errors);
}

#[test]
fn library_code_returns_no_string_errors() {
    let ws = Workspace::load();
    let mut errors = Vec::new();
    for f in &ws.files {
        if !is_library(&f.krate) || f.test_target {
            continue;
        }
        for line in string_error_results(&f.code) {
            if f.is_test_line(line) {
                continue;
            }
            if error_rule_exception(&f.krate) {
                continue;
            }
            errors.push(format!(
                "{}:{line}: `Result<_, String>` in library code: return the crate's Error enum, whose variant says the kind",
                f.rel
            ));
        }
    }
    report("no Result<_, String> in library code", errors);
}

#[test]
fn each_library_crate_has_one_public_error_enum() {
    let ws = Workspace::load();
    let mut errors = Vec::new();
    let mut by_crate: BTreeMap<String, Vec<(String, ErrorType)>> = BTreeMap::new();
    for f in &ws.files {
        if !is_library(&f.krate) || f.test_target {
            continue;
        }
        for t in error_types(&f.code) {
            if f.is_test_line(t.line) || !t.public {
                continue;
            }
            by_crate
                .entry(f.krate.clone())
                .or_default()
                .push((f.rel.clone(), t));
        }
    }
    for (krate, types) in &by_crate {
        let wrong: Vec<&(String, ErrorType)> = types
            .iter()
            .filter(|(_, t)| !(t.is_enum && t.name == "Error"))
            .collect();
        if types.len() <= 1 && wrong.is_empty() {
            continue;
        }
        if error_rule_exception(krate) {
            continue;
        }
        let list: Vec<String> = types
            .iter()
            .map(|(rel, t)| format!("{} ({rel}:{})", t.name, t.line))
            .collect();
        errors.push(format!(
            "crates/{krate}: public error types {}: a library crate has one, `pub enum Error` (helper enums private to a module are fine)",
            list.join(", ")
        ));
    }
    report("one error enum per library crate", errors);
}

#[test]
fn error_rule_exceptions_are_still_needed() {
    let ws = Workspace::load();
    let mut errors = Vec::new();
    for (krate, _) in ERROR_RULE_EXCEPTIONS {
        if !ws.manifests.iter().any(|m| m.krate == *krate) {
            errors.push(format!(
                "crates/{krate} does not exist: remove it from ERROR_RULE_EXCEPTIONS"
            ));
        } else if !crate_breaks_any_error_rule(&ws, krate) {
            errors.push(format!(
                "crates/{krate} keeps every error rule now: remove it from ERROR_RULE_EXCEPTIONS"
            ));
        }
    }
    report("error rule exceptions", errors);
}

/// The scanner itself: comments and strings are blanked, test modules found.
#[test]
fn the_lexer_blanks_comments_and_strings_and_finds_test_modules() {
    let src = "use a::b; // json! here\nlet s = \"SELECT x FROM t\"; /* tokio\n */ let r = r#\"json!\"#;\nlet c = '\"'; let l: &'static str = \"x\";\n#[cfg(test)]\nmod tests {\n    fn f() { json!({}); }\n}\nfn after() {}\n";
    let lx = lex(src);
    assert_eq!(
        find_words(&lx.code, &["json!"]),
        vec![(7, "json!")],
        "{}",
        lx.code
    );
    assert!(find_words(&lx.code, &["tokio"]).is_empty());
    assert_eq!(lx.strings[0].text, "SELECT x FROM t");
    assert_eq!(lx.strings[0].line, 2);
    assert_eq!(lx.strings[1].text, "json!");
    assert_eq!(lx.strings.last().map(|s| s.text.as_str()), Some("x"));
    let (ranges, children) = test_items(&lx.code);
    assert_eq!(ranges, vec![(5, 8)]);
    assert!(children.is_empty());
    assert!(sql_in("SELECT uuid FROM alarms WHERE x = ?1").is_some());
    assert!(sql_in("UPDATE hosts SET a = 1").is_some());
    assert!(sql_in("Select the hosts to update").is_none());
}

/// The scanners of the error rules.
#[test]
fn the_error_scanners_find_string_errors_and_error_types() {
    let src = "fn a() -> Result<Vec<(String, u8)>, String> {}\nfn b() -> Result<String, Error> {}\nfn c() -> Result<\n    impl Fn() -> u8,\n    String,\n> {}\nfn d() -> io::Result<String> {}\n";
    assert_eq!(string_error_results(src), vec![1, 3]);
    let src = "#[derive(Debug, thiserror::Error)]\npub enum Error { A }\n#[derive(Debug, Clone, thiserror::Error)]\n#[error(\"x\")]\npub struct Other;\n#[derive(Debug, thiserror::Error)]\nenum Private { B }\n#[derive(Debug)]\npub struct Manual;\nimpl std::error::Error for Manual {}\n";
    let found: Vec<(String, bool, bool, usize)> = error_types(src)
        .into_iter()
        .map(|t| (t.name, t.is_enum, t.public, t.line))
        .collect();
    assert_eq!(
        found,
        vec![
            ("Error".to_string(), true, true, 2),
            ("Other".to_string(), false, true, 5),
            ("Private".to_string(), true, false, 7),
            ("Manual".to_string(), false, true, 9),
        ]
    );
}

// ---------------------------------------------------------------------------
// The error rules' helpers.

/// A library crate: every crate but the binaries and roost-tidy.
/// roost-test-support counts: tests and benchmarks call it as a library.
fn is_library(krate: &str) -> bool {
    !BINARY_CRATES.contains(&krate) && krate != "roost-tidy"
}

fn error_rule_exception(krate: &str) -> bool {
    ERROR_RULE_EXCEPTIONS.iter().any(|(k, _)| *k == krate)
}

/// Whether `krate` still breaks one of the error rules.
fn crate_breaks_any_error_rule(ws: &Workspace, krate: &str) -> bool {
    let anyhow = ws.manifests.iter().any(|m| {
        m.krate == krate
            && m.deps
                .iter()
                .any(|d| d.section == Section::Normal && d.name == "anyhow")
    });
    let mut public_types = Vec::new();
    let mut string_errors = false;
    for f in ws
        .files
        .iter()
        .filter(|f| f.krate == krate && !f.test_target)
    {
        string_errors |= string_error_results(&f.code)
            .into_iter()
            .any(|l| !f.is_test_line(l));
        public_types.extend(
            error_types(&f.code)
                .into_iter()
                .filter(|t| t.public && !f.is_test_line(t.line)),
        );
    }
    let types_wrong = public_types.len() > 1
        || public_types
            .iter()
            .any(|t| !(t.is_enum && t.name == "Error"));
    anyhow || string_errors || types_wrong
}

/// Lines where a `Result<_, String>` starts: a `Result` whose second type
/// argument is `String`.
fn string_error_results(code: &str) -> Vec<usize> {
    let c: Vec<char> = code.chars().collect();
    let pattern: Vec<char> = "Result<".chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + pattern.len() <= c.len() {
        if c[i..i + pattern.len()] != pattern[..] || (i > 0 && is_ident(c[i - 1])) {
            i += 1;
            continue;
        }
        // The type arguments, up to the matching `>`; the last one starts
        // after the last comma at the outer level.
        let open = i + pattern.len();
        let mut commas = vec![open - 1];
        let mut depth = 1;
        let mut j = open;
        while j < c.len() {
            match c[j] {
                '<' | '(' | '[' => depth += 1,
                // The arrow of `impl Fn() -> T` closes nothing.
                '>' if c[j - 1] == '-' => {}
                '>' | ')' | ']' => depth -= 1,
                ',' if depth == 1 => commas.push(j),
                _ => {}
            }
            if depth == 0 {
                break;
            }
            j += 1;
        }
        if depth == 0 {
            commas.push(j);
            let args: Vec<String> = commas
                .windows(2)
                .map(|w| {
                    c[w[0] + 1..w[1]]
                        .iter()
                        .filter(|ch| !ch.is_whitespace())
                        .collect()
                })
                .filter(|a: &String| !a.is_empty())
                .collect();
            let last = args.last().map_or("", String::as_str);
            if args.len() == 2 && matches!(last, "String" | "std::string::String") {
                out.push(1 + c[..i].iter().filter(|&&ch| ch == '\n').count());
            }
        }
        i = open;
    }
    out
}

/// A type that is an error: it derives `thiserror::Error` or implements
/// `std::error::Error` by hand.
#[derive(Debug)]
struct ErrorType {
    name: String,
    is_enum: bool,
    /// Declared `pub` (not `pub(crate)` or private).
    public: bool,
    /// The line of its `enum` or `struct` keyword.
    line: usize,
}

fn error_types(code: &str) -> Vec<ErrorType> {
    let bare_error_is_thiserror = code.contains("use thiserror::Error");
    let manual: BTreeSet<String> = code
        .lines()
        .filter_map(|l| {
            let t = l.trim();
            let rest = t.strip_prefix("impl std::error::Error for ").or_else(|| {
                t.strip_prefix("impl Error for ")
                    .filter(|_| !bare_error_is_thiserror)
            })?;
            Some(rest.chars().take_while(|c| is_ident(*c)).collect())
        })
        .collect();
    let c: Vec<char> = code.chars().collect();
    let line_at = |pos: usize| 1 + c[..pos].iter().filter(|&&ch| ch == '\n').count();
    let mut out = Vec::new();
    let mut i = 0;
    // Each item: its attributes (`#[...]`, brackets balanced), then the
    // words before its body.
    while i < c.len() {
        if !(c[i] == '#' && c.get(i + 1) == Some(&'[')) || (i > 0 && !c[i - 1].is_whitespace()) {
            i += 1;
            continue;
        }
        let mut derives_error = false;
        let mut j = i;
        while c.get(j) == Some(&'#') && c.get(j + 1) == Some(&'[') {
            let start = j;
            let mut depth = 0;
            while j < c.len() {
                match c[j] {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            let attr: String = c[start..j.min(c.len())]
                .iter()
                .filter(|ch| !ch.is_whitespace())
                .collect();
            if let Some(list) = attr.strip_prefix("#[derive(") {
                derives_error |= list
                    .trim_end_matches(')')
                    .split(',')
                    .any(|d| d == "thiserror::Error" || (d == "Error" && bare_error_is_thiserror));
            }
            j += 1;
            while j < c.len() && c[j].is_whitespace() {
                j += 1;
            }
        }
        let header_end = (j..c.len())
            .find(|&k| matches!(c[k], '{' | ';' | '<' | '#'))
            .unwrap_or(c.len());
        let header: String = c[j..header_end].iter().collect();
        let words: Vec<&str> = header.split_whitespace().collect();
        let kw = words.iter().position(|w| *w == "enum" || *w == "struct");
        if let Some(k) = kw
            && words[..k]
                .iter()
                .all(|w| *w == "pub" || w.starts_with("pub"))
            && let Some(name) = words.get(k + 1)
        {
            let name: String = name.chars().take_while(|c| is_ident(*c)).collect();
            if derives_error || manual.contains(&name) {
                let kw_at = j + header.find(words[k]).unwrap_or(0);
                out.push(ErrorType {
                    is_enum: words[k] == "enum",
                    public: words.first() == Some(&"pub"),
                    name,
                    line: line_at(kw_at),
                });
            }
        }
        i = j.max(i + 1);
    }
    // A hand-written error with no attribute at all.
    for (n, line) in code.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(k) = words.iter().position(|w| *w == "enum" || *w == "struct")
            && let Some(name) = words.get(k + 1)
        {
            let name: String = name.chars().take_while(|c| is_ident(*c)).collect();
            if manual.contains(&name) && !out.iter().any(|t| t.name == name) {
                out.push(ErrorType {
                    is_enum: words[k] == "enum",
                    public: words.first() == Some(&"pub"),
                    name,
                    line: n + 1,
                });
            }
        }
    }
    out.sort_by_key(|t| t.line);
    out
}

// ---------------------------------------------------------------------------
// The workspace as the tests see it.

struct Workspace {
    files: Vec<SourceFile>,
    manifests: Vec<Manifest>,
}

struct SourceFile {
    /// Path relative to the workspace root, with `/`.
    rel: String,
    krate: String,
    code: String,
    strings: Vec<StrLit>,
    /// The whole file is test code.
    all_test: bool,
    /// The file belongs to a test target (`tests/`, `benches/`,
    /// `examples/`, or a `#[cfg(test)]` module file): it may use only
    /// dev-dependencies.
    test_target: bool,
    /// Line ranges (inclusive) of `#[cfg(test)]` items.
    test_ranges: Vec<(usize, usize)>,
}

impl SourceFile {
    fn is_test_line(&self, line: usize) -> bool {
        self.test_ranges
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&line))
    }
}

#[derive(Debug)]
struct StrLit {
    line: usize,
    /// Offset of the opening quote in `code` (in chars).
    offset: usize,
    text: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Section {
    Normal,
    Dev,
    Build,
}

struct Dep {
    name: String,
    section: Section,
    line: usize,
}

struct Manifest {
    rel: String,
    krate: String,
    deps: Vec<Dep>,
}

/// Crates whose every file is test code.
const TEST_CRATES: &[&str] = &["roost-test-support", "roost-bench", "roost-tidy"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

impl Workspace {
    fn load() -> Workspace {
        let root = workspace_root();
        let mut files = Vec::new();
        let mut manifests = Vec::new();
        let mut crate_dirs: Vec<PathBuf> = fs::read_dir(root.join("crates"))
            .expect("crates/")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.join("Cargo.toml").is_file())
            .collect();
        crate_dirs.sort();
        for dir in crate_dirs {
            let krate = dir
                .file_name()
                .and_then(|n| n.to_str())
                .expect("crate dir name")
                .to_string();
            let manifest_path = dir.join("Cargo.toml");
            manifests.push(Manifest {
                rel: rel(&root, &manifest_path),
                krate: krate.clone(),
                deps: parse_deps(&fs::read_to_string(&manifest_path).expect("Cargo.toml")),
            });
            let mut paths = Vec::new();
            walk(&dir, &mut paths);
            paths.sort();
            let mut crate_files: Vec<(PathBuf, SourceFile, Vec<String>)> = Vec::new();
            for p in paths {
                let text = fs::read_to_string(&p).expect("source file");
                let lx = lex(&text);
                let (test_ranges, test_children) = test_items(&lx.code);
                let r = rel(&root, &p);
                let inside = r
                    .trim_start_matches(&format!("crates/{krate}/"))
                    .to_string();
                let test_target = ["tests/", "benches/", "examples/"]
                    .iter()
                    .any(|d| inside.starts_with(d));
                let all_test = test_target || TEST_CRATES.contains(&krate.as_str());
                crate_files.push((
                    p,
                    SourceFile {
                        rel: r,
                        krate: krate.clone(),
                        code: lx.code,
                        strings: lx.strings,
                        all_test,
                        test_target,
                        test_ranges,
                    },
                    test_children,
                ));
            }
            // Module files declared by `#[cfg(test)] mod name;` are test code,
            // and so is everything below them.
            let mut test_dirs: Vec<PathBuf> = Vec::new();
            let mut test_files: BTreeSet<PathBuf> = BTreeSet::new();
            for (p, _, children) in &crate_files {
                let parent = p.parent().expect("parent");
                let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                let base = if matches!(stem, "lib" | "main" | "mod") {
                    parent.to_path_buf()
                } else {
                    parent.join(stem)
                };
                for c in children {
                    test_files.insert(base.join(format!("{c}.rs")));
                    test_files.insert(base.join(c).join("mod.rs"));
                    test_dirs.push(base.join(c));
                }
            }
            for (p, mut f, _) in crate_files {
                if test_files.contains(&p) || test_dirs.iter().any(|d| p.starts_with(d)) {
                    f.all_test = true;
                    f.test_target = true;
                }
                files.push(f);
            }
        }
        Workspace { files, manifests }
    }

    fn file(&self, rel: &str) -> &SourceFile {
        self.files
            .iter()
            .find(|f| f.rel == rel)
            .unwrap_or_else(|| panic!("{rel} is named by a tidy rule but does not exist"))
    }
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .expect("under the root")
        .to_string_lossy()
        .replace('\\', "/")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("dir entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') {
                walk(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// Reads the dependency tables of a Cargo.toml (one dependency per line, as
/// this workspace writes them).
fn parse_deps(text: &str) -> Vec<Dep> {
    let mut out = Vec::new();
    let mut section = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            section = match line {
                "[dependencies]" => Some(Section::Normal),
                "[dev-dependencies]" => Some(Section::Dev),
                "[build-dependencies]" => Some(Section::Build),
                _ => None,
            };
            continue;
        }
        let Some(section) = section else { continue };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(Dep {
                name,
                section,
                line: i + 1,
            });
        }
    }
    out
}

fn committed_openapi() -> serde_json::Value {
    let path = workspace_root().join("openapi/roost.json");
    let text = fs::read_to_string(&path).expect("openapi/roost.json");
    serde_json::from_str(&text).expect("openapi/roost.json is JSON")
}

fn report(rule: &str, errors: Vec<String>) {
    assert!(
        errors.is_empty(),
        "architecture rule broken ({rule}):\n  {}\n",
        errors.join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// Scanning.

struct Lexed {
    /// The source with comments and string contents replaced by spaces
    /// (newlines kept, so line numbers stay right).
    code: String,
    strings: Vec<StrLit>,
}

fn lex(text: &str) -> Lexed {
    let c: Vec<char> = text.chars().collect();
    let mut code: Vec<char> = Vec::with_capacity(c.len());
    let mut strings = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let blank = |ch: char, code: &mut Vec<char>, line: &mut usize| {
        if ch == '\n' {
            *line += 1;
            code.push('\n');
        } else {
            code.push(' ');
        }
    };
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                code.push(' ');
                i += 1;
            }
            continue;
        }
        if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    code.push_str_chars("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    code.push_str_chars("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(c[i], &mut code, &mut line);
                    i += 1;
                }
            }
            continue;
        }
        let prev_ident = i > 0 && ident(c[i - 1]);
        if !prev_ident && (ch == 'r' || (ch == 'b' && next == Some('r'))) {
            let mut j = i + if ch == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) == Some(&'"') {
                while i <= j {
                    code.push(c[i]);
                    i += 1;
                }
                let start_line = line;
                let offset = j;
                let mut text = String::new();
                while i < c.len() {
                    if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
                        break;
                    }
                    text.push(c[i]);
                    blank(c[i], &mut code, &mut line);
                    i += 1;
                }
                strings.push(StrLit {
                    line: start_line,
                    offset,
                    text,
                });
                for _ in 0..=hashes {
                    if i < c.len() {
                        code.push(c[i]);
                        i += 1;
                    }
                }
                continue;
            }
        }
        if ch == '"' {
            code.push('"');
            let start_line = line;
            let offset = i;
            i += 1;
            let mut text = String::new();
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' && i + 1 < c.len() {
                    text.push(c[i]);
                    text.push(c[i + 1]);
                    blank(c[i], &mut code, &mut line);
                    blank(c[i + 1], &mut code, &mut line);
                    i += 2;
                    continue;
                }
                text.push(c[i]);
                blank(c[i], &mut code, &mut line);
                i += 1;
            }
            if i < c.len() {
                code.push('"');
                i += 1;
            }
            strings.push(StrLit {
                line: start_line,
                offset,
                text,
            });
            continue;
        }
        if ch == '\'' {
            // A char literal ('x', '\n', '\''), or else a lifetime.
            let end = if next == Some('\\') {
                (i + 2..c.len()).find(|&k| c[k] == '\'' && k > i + 2)
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            if let Some(end) = end {
                code.push('\'');
                for &ch in &c[i + 1..end] {
                    blank(ch, &mut code, &mut line);
                }
                code.push('\'');
                i = end + 1;
                continue;
            }
        }
        if ch == '\n' {
            line += 1;
        }
        code.push(ch);
        i += 1;
    }
    Lexed {
        code: code.into_iter().collect(),
        strings,
    }
}

trait PushChars {
    fn push_str_chars(&mut self, s: &str);
}

impl PushChars for Vec<char> {
    fn push_str_chars(&mut self, s: &str) {
        self.extend(s.chars());
    }
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// Occurrences of each word in `code` (not inside a longer identifier), as
/// (line, word), in order.
fn find_words<'a>(code: &str, words: &[&'a str]) -> Vec<(usize, &'a str)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for w in words {
            let mut from = 0;
            while let Some(pos) = line[from..].find(w) {
                let at = from + pos;
                let before = line[..at].chars().next_back();
                let after = line[at + w.len()..].chars().next();
                let starts_ident = w.chars().next().is_some_and(is_ident);
                let ends_ident = w.chars().next_back().is_some_and(is_ident);
                let ok_before = !(starts_ident && before.is_some_and(is_ident));
                let ok_after = !(ends_ident && after.is_some_and(is_ident));
                if ok_before && ok_after {
                    out.push((n + 1, *w));
                    break;
                }
                from = at + w.len();
            }
        }
    }
    out
}

/// Line ranges of `#[cfg(test)]` items, and the names of `#[cfg(test)] mod
/// name;` declarations (whose files are test code).
fn test_items(code: &str) -> (Vec<(usize, usize)>, Vec<String>) {
    let c: Vec<char> = code.chars().collect();
    let line_at = |pos: usize| 1 + c[..pos].iter().filter(|&&ch| ch == '\n').count();
    let mut ranges = Vec::new();
    let mut children = Vec::new();
    let pattern: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + pattern.len() <= c.len() {
        if c[i..i + pattern.len()] != pattern[..] {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + pattern.len();
        // The item: up to its first `;` or the `}` matching its first `{`.
        let mut header = String::new();
        let mut end = None;
        while j < c.len() {
            match c[j] {
                ';' => {
                    end = Some(j);
                    break;
                }
                '{' => {
                    let mut depth = 0;
                    while j < c.len() {
                        if c[j] == '{' {
                            depth += 1;
                        } else if c[j] == '}' {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        j += 1;
                    }
                    end = Some(j.min(c.len() - 1));
                    break;
                }
                ch => header.push(ch),
            }
            j += 1;
        }
        let Some(end) = end else { break };
        let words: Vec<&str> = header.split_whitespace().collect();
        if c[end] == ';'
            && let Some(k) = words.iter().position(|w| *w == "mod")
            && let Some(name) = words.get(k + 1)
        {
            children.push(name.to_string());
        }
        ranges.push((line_at(start), line_at(end)));
        i = end + 1;
    }
    (ranges, children)
}

/// The SQL a string holds, if any: statements as Roost writes them, in
/// upper case.
fn sql_in(s: &str) -> Option<&'static str> {
    const FIXED: &[&str] = &[
        "INSERT INTO",
        "INSERT OR",
        "DELETE FROM",
        "CREATE TABLE",
        "CREATE INDEX",
        "DROP TABLE",
        "ALTER TABLE",
        "PRAGMA ",
    ];
    if let Some(k) = FIXED.iter().find(|k| s.contains(**k)) {
        return Some(k);
    }
    if let Some(p) = s.find("SELECT ")
        && s[p..].contains(" FROM ")
    {
        return Some("SELECT ... FROM");
    }
    if let Some(p) = s.find("UPDATE ")
        && s[p..].contains(" SET ")
    {
        return Some("UPDATE ... SET");
    }
    if s.ends_with(".sql") {
        return Some("a .sql file");
    }
    None
}

struct RouteCall {
    line: usize,
    path: String,
    methods: Vec<String>,
}

/// The `.route("path", method(handler)...)` calls of a file, with trailing
/// slashes removed (they are aliases of the same operation).
fn routes_in(f: &SourceFile) -> Vec<RouteCall> {
    let c: Vec<char> = f.code.chars().collect();
    let pattern: Vec<char> = ".route(".chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + pattern.len() <= c.len() {
        if c[i..i + pattern.len()] != pattern[..] {
            i += 1;
            continue;
        }
        let open = i + pattern.len() - 1;
        let mut depth = 0;
        let mut close = open;
        for (k, ch) in c.iter().enumerate().skip(open) {
            if *ch == '(' {
                depth += 1;
            } else if *ch == ')' {
                depth -= 1;
                if depth == 0 {
                    close = k;
                    break;
                }
            }
        }
        let Some(lit) = f
            .strings
            .iter()
            .find(|s| s.offset > open && s.offset < close)
        else {
            i = close + 1;
            continue;
        };
        let mut path = lit.text.clone();
        if path.len() > 1 && path.ends_with('/') {
            path.pop();
        }
        let args: String = c[lit.offset..close].iter().collect();
        let mut methods = Vec::new();
        for m in ["get", "post", "put", "patch", "delete"] {
            let call = format!("{m}(");
            let found = args
                .match_indices(&call)
                .any(|(at, _)| at == 0 || !args[..at].chars().next_back().is_some_and(is_ident));
            if found {
                methods.push(m.to_string());
            }
        }
        out.push(RouteCall {
            line: lit.line,
            path,
            methods,
        });
        i = close + 1;
    }
    out
}
