//! The manual pages in man/ are generated, and this test keeps them current
//! (regenerate with `HUTCH_BLESS=1 cargo test --test man`):
//!
//! - hutch(1) and hutch-SUBCOMMAND(1): synopsis, description and options
//!   from the CLI definition (clap_mangen), the commands of `volume` and
//!   `image`, then man/src/PAGE.in (exit status, examples, see also) with
//!   the shared ENVIRONMENT and FILES sections of man/src/;
//! - hutch-profile(5): man/src/hutch-profile.5.in around what the parser
//!   itself accepts (`hutch::profile::shape`: every table and key, its type
//!   and values), the words of `hutch::profile::reference`, and for each key
//!   the errors tests/bad-profiles checks for it.
//!
//! Each page must render without warnings (`mandoc -T lint`, `groff -ww`),
//! have the sections a manual page needs, and hutch-profile(5) must name
//! every key the parser accepts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use hutch::profile::reference::{self, Doc};
use hutch::profile::shape::{self, Shape};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The date of this version's entry in CHANGELOG.md, so that a page only
/// changes with a release.
fn release_date() -> String {
    let log = std::fs::read_to_string(root().join("CHANGELOG.md")).unwrap();
    let heading = format!("## [{VERSION}] - ");
    log.lines()
        .find_map(|l| l.strip_prefix(&heading))
        .unwrap_or_else(|| panic!("CHANGELOG.md has no `{heading}DATE` entry"))
        .trim()
        .to_string()
}

fn src(name: &str) -> String {
    let path = root().join("man/src").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; write the page's hand-written part",
            path.display()
        )
    })
}

/// Plain text for roff: backslashes, hyphens and line-leading dots escaped,
/// `code` in bold.
fn roff(text: &str) -> String {
    let mut out = String::new();
    let mut bold = false;
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '`' => {
                out.push_str(if bold { "\\fR" } else { "\\fB" });
                bold = !bold;
            }
            '→' => out.push_str("\\(->"),
            '←' => out.push_str("\\(<-"),
            c if !c.is_ascii() => out.push_str(&format!("\\[u{:04X}]", c as u32)),
            c => out.push(c),
        }
    }
    out.lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A block of text shown as is.
fn example(text: &str) -> String {
    format!(".EX\n{}\n.EE\n", roff(text.trim_end()))
}

fn paragraphs(text: &str) -> String {
    text.split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!(".PP\n{}\n", roff(p.trim())))
        .collect()
}

// ---- section 1 ---------------------------------------------------------

fn clap_sections(cmd: clap::Command, title: &str, sections: &[&str]) -> String {
    let man = clap_mangen::Man::new(cmd.clone())
        .title(title.to_uppercase())
        .section("1")
        .date(release_date())
        .source(format!("hutch {VERSION}"))
        .manual("hutch manual");
    let mut out = Vec::new();
    for s in sections {
        match *s {
            "title" => man.render_title(&mut out),
            "name" => man.render_name_section(&mut out),
            "synopsis" => man.render_synopsis_section(&mut out),
            "description" => man.render_description_section(&mut out),
            "options" => {
                let built = {
                    let mut c = cmd.clone();
                    c.build();
                    c
                };
                if built.get_arguments().any(|a| !a.is_hide_set()) {
                    man.render_options_section(&mut out)
                } else {
                    Ok(())
                }
            }
            other => panic!("{other}"),
        }
        .unwrap();
    }
    tidy(&String::from_utf8(out).unwrap())
}

/// clap's help text as roff: `code` in bold, no blank lines (clap_mangen
/// puts one between `.br` requests before a list of values).
fn tidy(text: &str) -> String {
    let text = text.replace(".br\n\n.br\n", ".br\n");
    let mut out = String::new();
    for line in text.lines() {
        if !line.starts_with('.') && line.matches('`').count() % 2 == 0 {
            let mut bold = false;
            for c in line.chars() {
                if c == '`' {
                    out.push_str(if bold { "\\fR" } else { "\\fB" });
                    bold = !bold;
                } else {
                    out.push(c);
                }
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// What follows the `.SH HEADING` line of a clap_mangen section (which
/// comes after the roff prologue that each rendering repeats).
fn body(section: &str) -> String {
    let mut lines = section.lines().skip_while(|l| !l.starts_with(".SH "));
    lines.next();
    lines.map(|l| format!("{l}\n")).collect()
}

fn visible_subcommands(cmd: &clap::Command) -> Vec<clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .cloned()
        .collect()
}

/// The page of `hutch` or of `hutch SUB`.
fn command_page(cmd: clap::Command, words: &[&str]) -> (String, String) {
    let page = words.join("-");
    let cmd = cmd.display_name(page.clone()).bin_name(words.join(" "));
    let mut out = clap_sections(
        cmd.clone(),
        &page,
        &["title", "name", "synopsis", "description", "options"],
    );
    let subs = visible_subcommands(&cmd);
    if !subs.is_empty() && words.len() == 1 {
        out.push_str(".SH COMMANDS\n");
        for s in &subs {
            out.push_str(&format!(
                ".TP\n.BR hutch\\-{} (1)\n{}\n",
                s.get_name(),
                roff(&s.get_about().map(|a| a.to_string()).unwrap_or_default())
            ));
        }
    } else if !subs.is_empty() {
        out.push_str(".SH COMMANDS\n");
        for s in &subs {
            let bin = format!("{} {}", words.join(" "), s.get_name());
            let sub = s.clone().bin_name(bin.clone()).display_name(bin.clone());
            let parts = ["synopsis", "description", "options"]
                .map(|p| body(&clap_sections(sub.clone(), &page, &[p])));
            out.push_str(&format!(".SS \"{}\"\n", roff(&bin)));
            out.push_str(&parts[0]);
            out.push_str(".PP\n");
            out.push_str(&parts[1]);
            if !parts[2].is_empty() {
                out.push_str(".PP\nOptions:\n");
                out.push_str(&parts[2]);
            }
        }
    }
    let extra = src(&format!("{page}.1.in"))
        .replace("@ENVIRONMENT@\n", &src("environment.roff"))
        .replace("@FILES@\n", &src("files.roff"));
    out.push_str(&extra);
    (format!("{page}.1"), out)
}

// ---- hutch-profile(5) ----------------------------------------------------

fn type_words(shape: &Shape) -> String {
    match shape {
        Shape::Bool => "boolean".into(),
        Shape::Integer { min, max } if *min > i64::MIN as i128 => {
            format!("integer from {min} to {max}")
        }
        Shape::Integer { .. } => "integer".into(),
        Shape::Float => "number".into(),
        Shape::String => "string".into(),
        Shape::Enum(_) => "string, one of the values below".into(),
        Shape::Custom(name) => reference::type_doc(name)
            .map(|t| t.title.to_string())
            .unwrap_or_else(|| name.to_string()),
        Shape::Array(inner) => match &**inner {
            Shape::Table(_) => "array of tables".into(),
            other => format!("array of {}", plural(&type_words(other))),
        },
        Shape::Map(inner) => match &**inner {
            Shape::Table(_) => "tables, by name".into(),
            other => format!("table of {}", plural(&type_words(other))),
        },
        Shape::Table(_) => "table".into(),
    }
}

fn plural(words: &str) -> String {
    match words.split_once(' ') {
        Some((first, rest)) => format!("{first}s {rest}"),
        None => format!("{words}s"),
    }
}

/// What tests/bad-profiles checks, per key (dotted path as the reference
/// spells it) and for no key in particular.
fn errors_by_key() -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let dir = root().join("tests/bad-profiles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut general = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let header = |tag: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(tag))
                .map(str::to_string)
        };
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        let Some(first) = expects.first() else {
            continue;
        };
        // `key \`root\`:` alone says little: add what follows.
        let message = match expects.get(1) {
            Some(next) if first.trim_end().ends_with(':') => format!("{first} ... {next}"),
            _ => first.to_string(),
        };
        let key = header("# at: ").and_then(|at| {
            let target = match header("# at-file: ") {
                Some(other) => std::fs::read_to_string(dir.join(other)).ok()?,
                None => text.clone(),
            };
            let (line, col) = at.split_once(':')?;
            let line: usize = line.parse().ok()?;
            let col: usize = col.parse().unwrap_or(1);
            let offset = target
                .split_inclusive('\n')
                .take(line - 1)
                .map(str::len)
                .sum::<usize>()
                + col.saturating_sub(1);
            hutch::profile::load::key_at(&target, offset).map(|k| reference_path(&k))
        });
        let message = message.trim().trim_end_matches(':').to_string();
        match key.and_then(|k| owner(&k, &message)) {
            Some(k) => by_key.entry(k).or_default().push(message),
            None => general.push(message),
        }
    }
    for list in by_key.values_mut() {
        list.sort();
        list.dedup();
    }
    general.sort();
    general.dedup();
    (by_key, general)
}

/// The documented key an error at `key` is about: the key itself if the
/// message names it, else its table (a `[[mount]]` entry that lacks `src`);
/// none for errors about the file (syntax, a missing `version`).
fn owner(key: &str, message: &str) -> Option<String> {
    let leaf = key.rsplit('.').next()?.trim_end_matches("[]");
    if reference::doc(key).is_some() && message.contains(leaf) {
        return Some(key.to_string());
    }
    let (table, _) = key.rsplit_once('.')?;
    let table = table.trim_end_matches("[]").trim_end_matches(".*");
    reference::doc(table).map(|_| table.to_string())
}

/// `mount.size` → `mount[].size`, `volumes.cache.dst` → `volumes.*.dst`.
fn reference_path(key: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["mount", rest @ ..] if !rest.is_empty() => format!("mount[].{}", rest.join(".")),
        ["volumes", _name] => "volumes".into(),
        ["volumes", _name, rest @ ..] => format!("volumes.*.{}", rest.join(".")),
        _ => key.to_string(),
    }
}

fn key_entry(name: &str, shape: &Shape, required: bool, doc: &Doc, errors: &[String]) -> String {
    let mut out = format!(".TP\n.B {}\n", roff(name));
    let mut first = format!("\\fI{}\\fR", roff(&type_words(shape)));
    if required {
        first.push_str("; required");
    } else if !doc.default.is_empty() {
        first.push_str(&format!("; default: {}", roff(doc.default)));
    }
    out.push_str(&format!("{first}.\n.br\n{}\n", roff(doc.summary)));
    if !doc.details.is_empty() {
        out.push_str(&format!("{}\n", roff(doc.details)));
    }
    let mut inner = String::new();
    for (value, meaning) in doc.values {
        inner.push_str(&format!(".TP\n.B \"{value}\"\n{}\n", roff(meaning)));
    }
    if let Some(text) = reference::example_profile(doc) {
        let shown: String = text
            .lines()
            .filter(|l| *l != "version = 1" || doc.path == "version")
            .map(|l| format!("{l}\n"))
            .collect();
        inner.push_str(&format!(".PP\nExample:\n{}", example(&shown)));
    }
    if !errors.is_empty() {
        inner.push_str(".PP\nErrors include:\n");
        for e in errors {
            inner.push_str(&format!(".IP \\(bu 2\n{}\n", roff(e)));
        }
    }
    if !inner.is_empty() {
        out.push_str(&format!(".RS\n{inner}.RE\n"));
    }
    out
}

fn is_table(shape: &Shape) -> bool {
    match shape {
        Shape::Table(_) => true,
        Shape::Array(inner) | Shape::Map(inner) => matches!(**inner, Shape::Table(_)),
        _ => false,
    }
}

fn keys_section() -> String {
    let profile = shape::profile();
    let Shape::Table(top) = &profile else {
        panic!("a profile is a table")
    };
    let (errors, _) = errors_by_key();
    let doc = |path: &str| {
        reference::doc(path)
            .unwrap_or_else(|| panic!("{path} is not documented in src/profile/reference.rs"))
    };
    let none = Vec::new();
    let mut out = String::from(".SH KEYS\n.SS \"Top\\-level keys\"\n");
    for k in top.iter().filter(|k| !is_table(&k.shape)) {
        let e = errors.get(k.name).unwrap_or(&none);
        out.push_str(&key_entry(k.name, &k.shape, k.required, doc(k.name), e));
    }
    for t in top.iter().filter(|k| is_table(&k.shape)) {
        let (heading, prefix, keys) = match &t.shape {
            Shape::Table(keys) => (format!("[{}]", t.name), t.name.to_string(), keys),
            Shape::Array(inner) => match &**inner {
                Shape::Table(keys) => (format!("[[{}]]", t.name), format!("{}[]", t.name), keys),
                _ => unreachable!(),
            },
            Shape::Map(inner) => match &**inner {
                Shape::Table(keys) => (format!("[{}.NAME]", t.name), format!("{}.*", t.name), keys),
                _ => unreachable!(),
            },
            _ => unreachable!(),
        };
        let d = doc(t.name);
        out.push_str(&format!(
            ".SS \"{}\"\n{}\n",
            roff(&heading),
            roff(d.summary)
        ));
        out.push_str(&paragraphs(d.details));
        if let Some(e) = errors.get(t.name) {
            out.push_str(".PP\nErrors include:\n");
            for m in e {
                out.push_str(&format!(".IP \\(bu 2\n{}\n", roff(m)));
            }
        }
        // A table inside (`[dbus.session]`) is a subsection of its own,
        // after the table's other keys.
        let mut inner = Vec::new();
        for k in keys {
            let path = format!("{prefix}.{}", k.name);
            if let Shape::Table(sub) = &k.shape {
                inner.push((path, sub));
                continue;
            }
            let e = errors.get(&path).unwrap_or(&none);
            out.push_str(&key_entry(k.name, &k.shape, k.required, doc(&path), e));
        }
        for (path, sub) in inner {
            let d = doc(&path);
            out.push_str(&format!(
                ".SS \"{}\"\n{}\n",
                roff(&format!("[{path}]")),
                roff(d.summary)
            ));
            out.push_str(&paragraphs(d.details));
            if let Some(e) = errors.get(&path) {
                out.push_str(".PP\nErrors include:\n");
                for m in e {
                    out.push_str(&format!(".IP \\(bu 2\n{}\n", roff(m)));
                }
            }
            for k in sub {
                let path = format!("{path}.{}", k.name);
                let e = errors.get(&path).unwrap_or(&none);
                out.push_str(&key_entry(k.name, &k.shape, k.required, doc(&path), e));
            }
        }
    }
    out
}

fn types_section() -> String {
    reference::TYPES
        .iter()
        .map(|t| format!(".TP\n.I {}\n{}\n", roff(t.title), roff(t.accepts)))
        .collect()
}

fn error_example() -> String {
    let file = hutch::diag::SourceFile::new("my.toml", None, "version = 1\nhostnme = \"box\"\n");
    let e = hutch::profile::parse(&file).expect_err("an unknown key");
    example(&e.0.render())
}

fn profile_page() -> (String, String) {
    let (_, general) = errors_by_key();
    let general: String = general
        .iter()
        .map(|m| format!(".IP \\(bu 2\n{}\n", roff(m)))
        .collect();
    let variables = hutch::profile::vars::KNOWN
        .iter()
        .map(|v| format!("\\fB${{{v}}}\\fR"))
        .collect::<Vec<_>>()
        .join(",\n");
    let page = src("hutch-profile.5.in")
        .replace("@DATE@", &release_date())
        .replace("@VERSION@", VERSION)
        .replace(
            "@FORMAT@",
            &hutch::profile::schema::FORMAT_VERSION.to_string(),
        )
        .replace("@KEYS@\n", &keys_section())
        .replace("@TYPES@\n", &types_section())
        .replace("@VARIABLES@\n", &format!(".PP\n{variables}.\n"))
        .replace("@ERROR_EXAMPLE@\n", &error_example())
        .replace("@ERRORS@\n", &general)
        .replace("@FILES@\n", &src("files.roff"));
    ("hutch-profile.5".into(), page)
}

fn pages() -> Vec<(String, String)> {
    let top = hutch::cli::Cli::command();
    let mut pages = vec![command_page(top.clone(), &["hutch"])];
    for sub in visible_subcommands(&top) {
        let name = sub.get_name().to_string();
        pages.push(command_page(sub, &["hutch", &name]));
    }
    pages.push(profile_page());
    pages
}

#[test]
fn man_pages_are_current() {
    let dir = root().join("man");
    let pages = pages();
    let bless = std::env::var_os("HUTCH_BLESS").is_some();
    let mut stale = Vec::new();
    for (file, rendered) in &pages {
        let path = dir.join(file);
        if bless {
            std::fs::write(&path, rendered).unwrap();
        }
        if std::fs::read_to_string(&path).unwrap_or_default() != *rendered {
            stale.push(file.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; run `HUTCH_BLESS=1 cargo test --test man`"
    );
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".1") || n.ends_with(".5"))
        .collect();
    on_disk.sort();
    let mut generated: Vec<String> = pages.iter().map(|(f, _)| f.clone()).collect();
    generated.sort();
    assert_eq!(on_disk, generated, "man/ holds exactly the generated pages");
    let mut built_in: Vec<String> = hutch::manpages::PAGES
        .iter()
        .map(|(f, _)| f.to_string())
        .collect();
    built_in.sort();
    assert_eq!(
        built_in, generated,
        "src/manpages.rs must list every page, for `hutch man`"
    );
}

#[test]
fn every_page_has_the_sections_of_a_manual_page() {
    for (file, text) in pages() {
        let mut needed = vec!["NAME", "SYNOPSIS", "DESCRIPTION", "FILES", "SEE ALSO"];
        if file.ends_with(".1") {
            needed.extend(["EXIT STATUS", "ENVIRONMENT", "EXAMPLES"]);
        } else {
            needed.extend(["KEYS", "ERRORS", "VERSIONS", "EXAMPLES"]);
        }
        for section in needed {
            assert!(
                text.lines()
                    .any(|l| l == format!(".SH {section}") || l == format!(".SH \"{section}\"")),
                "{file} has no {section} section"
            );
        }
    }
}

#[test]
fn the_profile_page_names_every_key_the_parser_accepts() {
    let (_, page) = profile_page();
    let mut missing = Vec::new();
    for (path, shape, _) in shape::profile().walk() {
        let leaf = path.rsplit('.').next().unwrap().trim_end_matches("[]");
        let found = if is_table(shape) {
            // A table is a subsection: `[name]`, `[[name]]`, `[name.NAME]`,
            // or a table inside one, by its whole path: `[dbus.session]`.
            page.lines().any(|l| {
                let heading = l.trim_start_matches(".SS \"").trim_start_matches('[');
                l.starts_with(".SS \"[")
                    && (heading.starts_with(&roff(leaf)) || heading.starts_with(&roff(&path)))
            })
        } else {
            page.lines().any(|l| l == format!(".B {}", roff(leaf)))
        };
        if !found {
            missing.push(path);
        }
    }
    assert!(
        missing.is_empty(),
        "keys missing from hutch-profile(5): {missing:?}"
    );
    let (by_key, _) = errors_by_key();
    assert!(
        by_key.len() > 20,
        "most bad-profile errors belong to a key: {by_key:?}"
    );
}

/// `man -l` renders with groff or mandoc: both must have nothing to say.
#[test]
fn every_page_renders_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (file, text) in pages() {
        let path = dir.path().join(&file);
        std::fs::write(&path, &text).unwrap();
        if let Ok(out) = Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(&path)
            .output()
        {
            let said = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(said.trim().is_empty(), "mandoc -T lint {file}:\n{said}");
            checked += 1;
        }
        if let Ok(out) = Command::new("groff")
            .args(["-ww", "-z", "-man", "-Tutf8"])
            .arg(&path)
            .output()
        {
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(said.trim().is_empty(), "groff -ww {file}:\n{said}");
            checked += 1;
        }
    }
    if checked == 0 {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIP: neither mandoc nor groff is installed: the pages were not rendered"
        );
    }
}
