//! The docs name only what exists: README.md, docs/*.md and
//! switchboard.example.toml, checked against the server's own declarations
//! (PROTOCOL.md's exchanges are run against a server in protocol_doc.rs).
//!
//! - Every `--flag` is a flag of `switchboard` (of any command: read from
//!   its `--help`), or of a tool the docs also show ([`FOREIGN_FLAGS`]).
//! - Every `SWITCHBOARD_*` variable is one the binary reads (its `--help`
//!   lists them), or one of [`OTHER_VARIABLES`], each checked to be read
//!   where the list says.
//! - Every file key — `[table] key` anywhere, or a snake_case name alone in
//!   inline code — is a key of `switchboard.toml` (`Settings::all()`), unless
//!   it is one of the protocol's or the admin interface's field names
//!   ([`NOT_KEYS`]).
//! - README's settings table has a row for every setting, with its flags
//!   and file keys in the same order, and the defaults it gives as numbers
//!   (or true/false) are the defaults.
//! - PROTOCOL.md's error table lists exactly the error codes the server
//!   answers with (the default rules' and the host's own), and every
//!   `"code":"…"` an example shows is one of them.
//! - SECURITY.md names every setting but those that limit nothing
//!   ([`NOT_LIMITS`]).
//!
//! Each check is a function of the text, and the tests at the end show each
//! one failing on a doc with one mistake.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use switchboard::config::Config;
use switchboard::config::settings::{Setting, Settings};
use switchboard_tests::switchboard_bin;

/// Flags of other tools that the docs show: `(flag, tool)`.
const FOREIGN_FLAGS: &[(&str, &str)] = &[
    ("features", "cargo"),
    ("release", "cargo"),
    ("target", "cargo"),
    ("target-dir", "cargo"),
    ("profile", "cargo"),
    ("bench", "cargo"),
    ("data-binary", "curl"),
    ("system", "useradd"),
    ("home-dir", "useradd"),
    ("shell", "useradd"),
    ("now", "systemctl"),
    ("ulimit", "docker run"),
    // README: "each flag `--some-flag` is also the variable `SWITCHBOARD_SOME_FLAG`".
    ("some-flag", "a placeholder"),
];

/// Variables the docs name that are no flag's: `(variable, a file that
/// reads it)`, the file relative to the repository.
const OTHER_VARIABLES: &[(&str, &str)] = &[
    ("SWITCHBOARD_PERFMAP", "host/src/policy/engine.rs"),
    ("SWITCHBOARD_BIN", "Makefile"),
    ("SWITCHBOARD_TEST_NODES", "tests/src/lib.rs"),
    ("SWITCHBOARD_SOME_FLAG", "README.md"),
];

/// snake_case names in inline code that are not file keys: fields of the
/// protocol's frames, of the admin interface's answers, of the WIT
/// bindings, and example ids.
const NOT_KEYS: &[&str] = &[
    // Fields of the JSON log lines (OPERATIONS.md, "Logs").
    "duration_ms",
    "frames_in",
    "frames_out",
    // Protocol frames (PROTOCOL.md).
    "retry_after_ms",
    "stored_at",
    // `GET /admin/policy` (PLUGINS.md).
    "watched_file",
    "published_by",
    "published_at",
    "loaded_at",
    "last_rollback",
    "auto_rollback",
    // The Rust bindings' field names (PLUGINS.md).
    "on_joined",
    "on_held",
    "on_sent",
    "on_closed",
    "on_stored",
    // An example id (PROTOCOL.md, Connecting).
    "user_42",
    // nginx directives (SECURITY.md, open files).
    "worker_rlimit_nofile",
    "worker_connections",
    // A `limit` label value of `switchboard_limit_refusals_total`
    // (OPERATIONS.md, "Metrics"); the others are keys.
    "stored_notices",
];

/// Settings that limit nothing a caller can do, so SECURITY.md need not
/// name them (by flag).
const NOT_LIMITS: &[&str] = &[
    "listen",
    "log",
    "log-format",
    "tls-cert",
    "tls-key",
    "policy",
    "watch-policy",
    "rollback-failures",
    "rollback-window-secs",
    "admin-listen",
    "admin-token",
    "admin-token-file",
    "drain-secs",
    "metrics-listen",
];

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> Result<String> {
    let path = root().join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The docs checked: README.md, every docs/*.md, and the example settings
/// file, as `(name, text)`.
fn docs() -> Result<Vec<(String, String)>> {
    let mut names = vec![
        "README.md".to_owned(),
        "switchboard.example.toml".to_owned(),
    ];
    let mut more: Vec<String> = std::fs::read_dir(root().join("docs"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    more.sort();
    names.extend(more);
    names
        .into_iter()
        .map(|n| Ok((n.clone(), read(&n)?)))
        .collect()
}

/// What the binary declares: every flag and variable of every command,
/// from `--help`.
#[derive(Debug, Default)]
struct Declared {
    flags: BTreeSet<String>,
    variables: BTreeSet<String>,
}

/// `switchboard <command> --help` for the top level and every command
/// below it.
fn declared() -> Result<Declared> {
    let bin = switchboard_bin()?;
    let mut found = Declared::default();
    let mut commands: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(command) = commands.pop() {
        let out = Command::new(&bin)
            .args(&command)
            .arg("--help")
            .env_remove("SWITCHBOARD_CONFIG")
            .output()
            .context("running switchboard --help")?;
        ensure!(
            out.status.success(),
            "switchboard {command:?} --help: {out:?}"
        );
        let help = String::from_utf8(out.stdout)?;
        found.flags.extend(flags(&help));
        found.variables.extend(variables(&help));
        for sub in subcommands(&help) {
            let mut next = command.clone();
            next.push(sub);
            commands.push(next);
        }
    }
    Ok(found)
}

/// The commands a `--help` lists (its `Commands:` section), but `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// Every `--flag` in `text` (without its dashes).
fn flags(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("--") {
        let start = i + at + 2;
        // `---` (a rule), or a word with `--` inside it, is not a flag.
        let before = (i + at).checked_sub(1).map(|b| bytes[b]);
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                .unwrap_or(text.len() - start);
        let word = text[start..end].trim_end_matches('-');
        if !word.is_empty()
            && word.as_bytes()[0].is_ascii_lowercase()
            && !matches!(before, Some(b) if b.is_ascii_alphanumeric() || b == b'-')
        {
            found.push(word.to_owned());
        }
        i = end.max(start);
    }
    found
}

/// Every `SWITCHBOARD_…` variable in `text` (not the bare prefix, as in
/// `SWITCHBOARD_<FLAG>`).
fn variables(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("SWITCHBOARD_") {
        let start = i + at;
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(text.len() - start);
        let name = &text[start..end];
        if !name.ends_with('_') {
            found.push(name.to_owned());
        }
        i = end;
    }
    found
}

/// The paragraphs of a Markdown `doc` outside fenced code blocks, each
/// joined into one line (an inline code span may go on over a line break),
/// with the number of its first line; a table row is a paragraph of its
/// own. The lines of fenced blocks are left out.
fn paragraphs(doc: &str) -> Vec<(usize, String)> {
    let mut fenced = false;
    let mut found: Vec<(usize, String)> = Vec::new();
    let mut open = false;
    for (i, line) in doc.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            open = false;
            continue;
        }
        let row = line.starts_with('|');
        if fenced || line.trim().is_empty() {
            open = false;
            continue;
        }
        match found.last_mut() {
            Some((_, text)) if open && !row => {
                text.push(' ');
                text.push_str(line.trim());
            }
            _ => found.push((i + 1, line.trim().to_owned())),
        }
        open = !row;
    }
    found
}

/// The inline code spans of a line (`x`, ``x``), trimmed.
fn code_spans(line: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('`') {
        let ticks = rest[open..].len() - rest[open..].trim_start_matches('`').len();
        let after = &rest[open + ticks..];
        let fence = &rest[open..open + ticks];
        match after.find(fence) {
            Some(close) => {
                spans.push(after[..close].trim());
                rest = &after[close + ticks..];
            }
            None => break,
        }
    }
    spans
}

fn is_snake(word: &str) -> bool {
    word.contains('_')
        && word.starts_with(|c: char| c.is_ascii_lowercase())
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Every `[table] key` in `text`: `(line, table, key)`.
fn table_keys(text: &str) -> Vec<(usize, String, String)> {
    let mut found = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(open) = rest.find('[') {
            rest = &rest[open + 1..];
            let Some(close) = rest.find("] ") else { break };
            let table = &rest[..close];
            if table.is_empty() || !table.chars().all(|c| c.is_ascii_lowercase()) {
                continue;
            }
            let after = &rest[close + 2..];
            let key: String = after
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !key.is_empty() {
                found.push((no + 1, table.to_owned(), key));
            }
        }
    }
    found
}

/// What `doc` (named `name`) names that does not exist.
fn unknown_names(name: &str, doc: &str, declared: &Declared) -> Vec<String> {
    let all = Settings::all();
    let mut wrong = Vec::new();
    let foreign = |f: &str| FOREIGN_FLAGS.iter().any(|(x, _)| *x == f);
    for (no, line) in doc.lines().enumerate() {
        for flag in flags(line) {
            if !declared.flags.contains(&flag) && !foreign(&flag) {
                wrong.push(format!(
                    "{name}:{}: `--{flag}` is no flag of switchboard (nor in FOREIGN_FLAGS)",
                    no + 1
                ));
            }
        }
        for var in variables(line) {
            let other = OTHER_VARIABLES.iter().any(|(v, _)| *v == var);
            if !declared.variables.contains(&var) && !other {
                wrong.push(format!(
                    "{name}:{}: `{var}` is no variable switchboard reads (nor in OTHER_VARIABLES)",
                    no + 1
                ));
            }
        }
    }
    // In Markdown, `[table] key` may be cut by a line break: look in whole
    // paragraphs (and in fenced blocks, line by line).
    let keyed: Vec<(usize, String)> = if name.ends_with(".md") {
        let mut fenced = false;
        let mut texts = paragraphs(doc);
        for (i, line) in doc.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
            } else if fenced {
                texts.push((i + 1, line.to_owned()));
            }
        }
        texts
    } else {
        doc.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_owned()))
            .collect()
    };
    for (first, text) in &keyed {
        for (_, table, key) in table_keys(text) {
            let known_table = all.iter().any(|s| s.table == table);
            if known_table && !all.iter().any(|s| s.table == table && s.key == key) {
                wrong.push(format!(
                    "{name}:{first}: `[{table}] {key}` is no key of switchboard.toml"
                ));
            }
        }
    }
    if name.ends_with(".md") {
        for (no, text) in paragraphs(doc) {
            for span in code_spans(&text) {
                // `key`, or `key = value`.
                let word = span.split(" = ").next().unwrap_or(span).trim();
                // Metric names (OPERATIONS.md, "Metrics") are checked
                // against a scrape by tests/packaging.rs and tests/metrics.rs.
                let metric = word.starts_with("switchboard_");
                if is_snake(word)
                    && !metric
                    && !NOT_KEYS.contains(&word)
                    && !all.iter().any(|s| s.key == word)
                {
                    wrong.push(format!(
                        "{name}:{no}: `{word}` is no key of switchboard.toml (nor in NOT_KEYS){}",
                        did_you_mean(word, &all)
                    ));
                }
            }
        }
    }
    wrong
}

fn did_you_mean(word: &str, all: &[Setting]) -> String {
    all.iter()
        .find(|s| s.key.starts_with(word) || word.starts_with(s.key))
        .map(|s| format!("; did you mean `{}`?", s.file_key()))
        .unwrap_or_default()
}

/// One row of README's settings table.
#[derive(Debug)]
struct Row {
    line: usize,
    flags: Vec<String>,
    /// `(table, key)` of each key the row names.
    keys: Vec<(String, String)>,
    /// The default cell, cut at `, ` (one per flag when they match).
    defaults: Vec<String>,
}

/// The rows of README's settings table (under "## Configuration") whose
/// first cell names a flag.
fn settings_rows(readme: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut inside = false;
    for (i, line) in readme.lines().enumerate() {
        if line.starts_with("## ") {
            inside = line == "## Configuration";
            continue;
        }
        if !inside || !line.starts_with("| `--") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        ensure!(
            cells.len() >= 4,
            "README.md:{}: a row of 4 cells: {line}",
            i + 1
        );
        let flags = code_spans(cells[0])
            .iter()
            .filter_map(|f| f.strip_prefix("--"))
            .map(str::to_owned)
            .collect();
        let mut keys = Vec::new();
        let mut table = String::new();
        for span in code_spans(cells[1]) {
            let key = match span.strip_prefix('[').and_then(|s| s.split_once("] ")) {
                Some((t, k)) => {
                    table = t.to_owned();
                    k
                }
                None => span,
            };
            keys.push((table.clone(), key.to_owned()));
        }
        let defaults = cells[2]
            .split(", ")
            .map(|d| d.trim_matches('`').to_owned())
            .collect();
        rows.push(Row {
            line: i + 1,
            flags,
            keys,
            defaults,
        });
    }
    Ok(rows)
}

/// A default as README writes it (`4096`, `64 MiB`, `1 GiB`), in the
/// setting's units; `None` when it is not a number.
fn number(text: &str) -> Option<u64> {
    let mut words = text.split_whitespace();
    let n: u64 = words.next()?.replace(',', "").parse().ok()?;
    let unit = match words.next() {
        Some("KiB") => 1 << 10,
        Some("MiB") => 1 << 20,
        Some("GiB") => 1 << 30,
        _ => 1,
    };
    Some(n * unit)
}

/// What is wrong with README's settings table.
fn table_mistakes(readme: &str, declared: &Declared) -> Result<Vec<String>> {
    let all = Settings::all();
    let defaults = Config::default();
    let rows = settings_rows(readme)?;
    let mut wrong = Vec::new();
    for row in &rows {
        let at = format!("README.md:{}", row.line);
        let settings: Vec<Option<&Setting>> = row
            .flags
            .iter()
            .map(|f| all.iter().find(|s| s.flag == f))
            .collect();
        if settings.iter().all(Option::is_none) {
            // A flag of a command (`--admin-url`): no file key.
            for f in &row.flags {
                if !declared.flags.contains(f) {
                    wrong.push(format!("{at}: `--{f}` is no flag of switchboard"));
                }
            }
            if !row.keys.is_empty() {
                wrong.push(format!(
                    "{at}: `--{}` has no file key",
                    row.flags.join("`, `--")
                ));
            }
            continue;
        }
        if row.keys.len() != row.flags.len() {
            wrong.push(format!(
                "{at}: {} flags but {} file keys: name each key in full, in the flags' order",
                row.flags.len(),
                row.keys.len()
            ));
            continue;
        }
        let numbered = row.defaults.len() == row.flags.len();
        for (i, (flag, setting)) in row.flags.iter().zip(&settings).enumerate() {
            let Some(s) = setting else {
                wrong.push(format!(
                    "{at}: `--{flag}` is not a setting of switchboard.toml"
                ));
                continue;
            };
            let (table, key) = &row.keys[i];
            if (s.table, s.key) != (table.as_str(), key.as_str()) {
                wrong.push(format!(
                    "{at}: `--{flag}` is `{}` in the file, not `[{table}] {key}`",
                    s.file_key()
                ));
            }
            if !numbered {
                continue;
            }
            let shown = &row.defaults[i];
            let actual = (s.read)(&defaults);
            let ok = match (number(shown), shown.as_str()) {
                (Some(n), _) => actual.as_deref() == Some(n.to_string().as_str()),
                (None, b @ ("true" | "false")) => actual.as_deref() == Some(b),
                _ => true,
            };
            if !ok {
                wrong.push(format!(
                    "{at}: `--{flag}` defaults to {actual:?}, the table says {shown:?}"
                ));
            }
        }
    }
    for s in &all {
        if !rows.iter().any(|r| r.flags.iter().any(|f| f == s.flag)) {
            wrong.push(format!(
                "README.md: the settings table has no row for `--{}` (`{}`)",
                s.flag,
                s.file_key()
            ));
        }
    }
    Ok(wrong)
}

/// The error codes the server answers with: the default rules' (the
/// `ErrorCode` names in guest-logic/src/frames.rs) and the host's own
/// (`chat::replies::code`), read from their declarations so that a new one
/// is seen.
fn codes_in_the_code() -> Result<BTreeSet<String>> {
    let mut codes = BTreeSet::new();
    let guest = read("guest-logic/src/frames.rs")?;
    for line in guest.lines() {
        let l = line.trim();
        if l.starts_with("ErrorCode::")
            && let Some((_, code)) = l.split_once("=> \"")
        {
            codes.insert(code.trim_end_matches(['"', ',']).to_owned());
        }
    }
    let host = read("host/src/chat/replies.rs")?;
    let module = host
        .split_once("pub mod code {")
        .and_then(|(_, rest)| rest.split_once("\n}"))
        .map(|(body, _)| body)
        .context("no `pub mod code` in host/src/chat/replies.rs")?;
    for line in module.lines() {
        if let Some((_, value)) = line.trim().split_once("&str = \"") {
            codes.insert(value.trim_end_matches(['"', ';']).to_owned());
        }
    }
    ensure!(codes.len() >= 8, "too few error codes found: {codes:?}");
    Ok(codes)
}

/// The codes of PROTOCOL.md's error table (its first column).
fn codes_in_the_table(protocol: &str) -> BTreeSet<String> {
    let section = protocol
        .split_once("\n## Errors\n")
        .map_or("", |(_, rest)| rest.split("\n## ").next().unwrap_or(""));
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| code_spans(l).first().map(|c| (*c).to_owned()))
        // The header row.
        .filter(|c| c != "code")
        .collect()
}

/// Every `"code":"…"` in `doc`.
fn codes_in_examples(doc: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (no, line) in doc.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("\"code\":\"") {
            rest = &rest[at + 8..];
            // `"code":"…"` describes the shape of an error, not one.
            if let Some(end) = rest.find('"')
                && &rest[..end] != "…"
            {
                found.push((no + 1, rest[..end].to_owned()));
            }
        }
    }
    found
}

/// What is wrong with the error codes PROTOCOL.md (and the README's and
/// SECURITY.md's examples) name.
fn code_mistakes(
    protocol: &str,
    examples: &[(&str, &str)],
    code: &BTreeSet<String>,
) -> Vec<String> {
    let table = codes_in_the_table(protocol);
    let mut wrong = Vec::new();
    for c in table.difference(code) {
        wrong.push(format!(
            "PROTOCOL.md's error table lists `{c}`, which the server never sends"
        ));
    }
    for c in code.difference(&table) {
        wrong.push(format!(
            "the server sends `{c}`, which PROTOCOL.md's error table does not list"
        ));
    }
    for (name, doc) in examples {
        for (no, c) in codes_in_examples(doc) {
            if !code.contains(&c) {
                wrong.push(format!(
                    "{name}:{no}: an example answers `{c}`, which is no error code"
                ));
            }
        }
    }
    wrong
}

/// Settings SECURITY.md does not name.
fn unnamed_limits(security: &str) -> Vec<String> {
    let named: BTreeSet<String> = flags(security).into_iter().collect();
    Settings::all()
        .iter()
        .filter(|s| !NOT_LIMITS.contains(&s.flag) && !named.contains(s.flag))
        .map(|s| {
            format!(
                "docs/SECURITY.md does not name `--{}` (or add it to NOT_LIMITS)",
                s.flag
            )
        })
        .collect()
}

fn report(wrong: Vec<String>) -> Result<()> {
    ensure!(
        wrong.is_empty(),
        "{} mistake(s):\n  {}",
        wrong.len(),
        wrong.join("\n  ")
    );
    Ok(())
}

#[test]
fn every_flag_variable_and_key_the_docs_name_exists() -> Result<()> {
    let declared = declared()?;
    let mut wrong = Vec::new();
    for (name, text) in docs()? {
        wrong.extend(unknown_names(&name, &text, &declared));
    }
    report(wrong)
}

#[test]
fn the_other_variables_are_read_where_the_list_says() -> Result<()> {
    for (var, file) in OTHER_VARIABLES {
        let text = read(file)?;
        ensure!(text.contains(var), "{file} does not mention {var}");
    }
    Ok(())
}

#[test]
fn the_readme_table_has_every_setting_with_its_key_and_default() -> Result<()> {
    report(table_mistakes(&read("README.md")?, &declared()?)?)
}

#[test]
fn the_error_table_lists_exactly_the_codes_the_server_sends() -> Result<()> {
    let protocol = read("docs/PROTOCOL.md")?;
    let (readme, security) = (read("README.md")?, read("docs/SECURITY.md")?);
    let examples = [
        ("docs/PROTOCOL.md", protocol.as_str()),
        ("README.md", readme.as_str()),
        ("docs/SECURITY.md", security.as_str()),
    ];
    report(code_mistakes(&protocol, &examples, &codes_in_the_code()?))
}

#[test]
fn security_names_every_limit() -> Result<()> {
    report(unnamed_limits(&read("docs/SECURITY.md")?))
}

// Each check fails on a doc with one mistake.

#[test]
fn a_wrong_name_is_caught() -> Result<()> {
    let declared = declared()?;
    for (doc, what) in [
        ("the interval (`ping_interval`, 0: off)", "ping_interval"),
        (
            "set `[limits] ping_interval` to 0",
            "[limits] ping_interval",
        ),
        // A key cut by a line break.
        (
            "set `[limits]\nping_interval` to 0",
            "[limits] ping_interval",
        ),
        ("run `switchboard --ping-interval 5`", "--ping-interval"),
        ("`SWITCHBOARD_PING_INTERVAL=5`", "SWITCHBOARD_PING_INTERVAL"),
    ] {
        let wrong = unknown_names("x.md", doc, &declared);
        ensure!(
            wrong.len() == 1 && wrong[0].contains(what),
            "{doc:?}: {wrong:?}"
        );
    }
    let right = "`--ping-interval-secs`, `[limits] ping_interval_secs`, \
                 `SWITCHBOARD_PING_INTERVAL_SECS`, `retry_after_ms`, `cargo build --release`";
    report(unknown_names("x.md", right, &declared))
}

#[test]
fn a_wrong_table_row_is_caught() -> Result<()> {
    let declared = declared()?;
    let readme = read("README.md")?;
    let line = readme
        .lines()
        .find(|l| l.starts_with("| `--ping-interval-secs`"))
        .context("no --ping-interval-secs row")?;
    for (changed, what) in [
        (line.replace("25, 10", "30, 10"), "defaults to Some(\"25\")"),
        (
            line.replace("ping_interval_secs", "ping_interval"),
            "not `[limits] ping_interval`",
        ),
        (String::new(), "no row for `--ping-interval-secs`"),
    ] {
        let wrong = table_mistakes(&readme.replace(line, &changed), &declared)?;
        ensure!(
            wrong.iter().any(|w| w.contains(what)),
            "{changed:?}: {wrong:?}"
        );
    }
    Ok(())
}

#[test]
fn a_wrong_error_table_is_caught() -> Result<()> {
    let code = codes_in_the_code()?;
    let protocol = read("docs/PROTOCOL.md")?;
    let dropped = protocol.replace("| `rate-limited` |", "| rate-limited |");
    let wrong = code_mistakes(&dropped, &[], &code);
    ensure!(
        wrong
            .iter()
            .any(|w| w.contains("`rate-limited`, which PROTOCOL.md")),
        "{wrong:?}"
    );
    let example = r#"← {"type":"error","code":"no-such-code","message":"x"}"#;
    let wrong = code_mistakes(&protocol, &[("x.md", example)], &code);
    ensure!(
        wrong.iter().any(|w| w.contains("no-such-code")),
        "{wrong:?}"
    );
    let unnamed = unnamed_limits("only `--max-connections` here");
    ensure!(
        unnamed.iter().any(|w| w.contains("--max-message-bytes")),
        "{unnamed:?}"
    );
    Ok(())
}
