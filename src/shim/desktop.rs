//! Menu entries (Desktop Entry Specification 1.5): parsing a program's
//! `.desktop` file and writing the override that starts it through hutch.
//!
//! The override keeps every line of the original except three things:
//! - `Exec` of the entry and of each `[Desktop Action …]` becomes
//!   `HUTCH run --profile P -- PROGRAM ARGS…`: the original arguments,
//!   field codes (`%f %F %u %U %i %c %k`) included, come after `--` and
//!   after the program, where hutch reads nothing, so no file name or URL
//!   a field code expands to can become an option of hutch's. (Flatpak's
//!   CVE-2024-32462 was a command that started with `--` handed to
//!   bubblewrap without a `--` before it; flatpak#4146, arguments of the
//!   app's own Exec copied into the launcher's part of the command line.)
//!   The program is resolved to an absolute path now, so that the
//!   sandbox's `PATH` cannot lead it to a shim. Localized `Exec[…]`
//!   variants, which some desktops read, are dropped.
//! - `DBusActivatable` goes: with it, the desktop starts the program over
//!   D-Bus, outside hutch. An action without `Exec` (activated over D-Bus
//!   only) goes with it, and from `Actions`.
//! - `X-Hutch-Shim=NAME` marks the file as hutch's.
//!
//! Anything whose meaning desktops might read differently is refused
//! rather than guessed at: a field code inside quotes (its expansion is
//! undefined: a file name with a `"` in it ends the quotes in GLib), an
//! unquoted reserved character, an unknown escape or field code, a
//! duplicated group or key, a file that is not UTF-8 or has control
//! characters. The override is read back and checked before it is used.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The largest entry read (real ones are a few KiB; a browser's with all
/// its translations ~50 KiB).
pub const MAX_BYTES: usize = 1 << 20;

/// The main group.
pub const MAIN: &str = "Desktop Entry";
const ACTION_PREFIX: &str = "Desktop Action ";
/// The key marking an override as hutch's.
pub const MARKER: &str = "X-Hutch-Shim";

/// A parsed entry: its lines, kept to be written back as they were.
#[derive(Debug, Clone)]
pub struct DesktopFile {
    lines: Vec<Line>,
}

#[derive(Debug, Clone)]
enum Line {
    /// A comment or blank line.
    Other(String),
    Group(String),
    Key {
        key: String,
        locale: Option<String>,
        /// The value as written (escapes not undone).
        value: String,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesktopError {
    #[error("larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("not UTF-8 text")]
    NotUtf8,
    #[error("line {0}: a control character")]
    Control(usize),
    #[error("line {0}: neither a comment, a [group] nor KEY=VALUE")]
    BadLine(usize),
    #[error("line {0}: key {1:?}: keys are letters, digits and `-`")]
    BadKey(usize, String),
    #[error("it does not start with the [Desktop Entry] group")]
    NoMainGroup,
    #[error("line {0}: group [{1}] appears twice")]
    DuplicateGroup(usize, String),
    #[error("line {0}: key {1} appears twice in its group")]
    DuplicateKey(usize, String),
    #[error("not an application (Type={0})")]
    NotApplication(String),
    #[error("hidden (Hidden=true): desktops treat it as deleted")]
    Hidden,
    #[error("no Exec")]
    NoExec,
    #[error("[{0}] Exec: {1}")]
    Exec(String, ExecError),
    #[error("the override did not read back as written ({0}); please report this")]
    SelfCheck(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("empty")]
    Empty,
    #[error("invalid escape `\\{0}` in the value")]
    ValueEscape(char),
    #[error("a quoted argument does not end")]
    Unterminated,
    #[error("`\\{0}` in a quoted argument (only \\\" \\` \\$ \\\\ are allowed)")]
    QuoteEscape(char),
    #[error("`{0}` unescaped in a quoted argument")]
    UnescapedInQuotes(char),
    #[error(
        "field code %{0} inside a quoted argument: its expansion is undefined, and a file name could end the quotes"
    )]
    CodeInQuotes(char),
    #[error("`{0}` must be quoted")]
    Unquoted(char),
    #[error("text right after a closing quote")]
    AfterQuote,
    #[error("unknown field code %{0}")]
    UnknownCode(char),
    #[error("a `%` at the end")]
    LonePercent,
    #[error("field code %{0} must be an argument on its own")]
    NotAlone(char),
    #[error("the program is a field code")]
    ProgramIsCode,
    #[error("the program {0:?} starts with `-`")]
    ProgramOption(String),
    #[error("the program {0:?} is neither an absolute path nor a name")]
    RelativeProgram(String),
    #[error("program {0:?} is not in PATH")]
    NotFound(String),
    #[error("env with options ({0:?}): only `env NAME=VALUE... PROGRAM` is understood")]
    EnvOptions(String),
}

impl DesktopFile {
    /// Parses an entry, refusing what is not one (see the module's doc).
    pub fn parse(bytes: &[u8]) -> Result<DesktopFile, DesktopError> {
        if bytes.len() > MAX_BYTES {
            return Err(DesktopError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| DesktopError::NotUtf8)?;
        let mut lines = Vec::new();
        let mut groups = HashSet::new();
        let mut keys: HashSet<(String, Option<String>)> = HashSet::new();
        let body = text.strip_suffix('\n').unwrap_or(text);
        for (i, raw) in body.split('\n').enumerate() {
            let n = i + 1;
            if raw.chars().any(|c| c.is_control() && c != '\t') {
                return Err(DesktopError::Control(n));
            }
            let start = raw.trim_start_matches([' ', '\t']);
            if start.is_empty() || start.starts_with('#') {
                lines.push(Line::Other(raw.to_string()));
            } else if let Some(name) = group_name(start) {
                if lines.iter().all(|l| !matches!(l, Line::Group(_))) && name != MAIN {
                    return Err(DesktopError::NoMainGroup);
                }
                if !groups.insert(name.to_string()) {
                    return Err(DesktopError::DuplicateGroup(n, name.to_string()));
                }
                keys.clear();
                lines.push(Line::Group(name.to_string()));
            } else {
                let line = key_line(n, raw, start)?;
                if groups.is_empty() {
                    return Err(DesktopError::NoMainGroup);
                }
                let Line::Key { key, locale, .. } = &line else {
                    unreachable!("key_line makes keys")
                };
                if !keys.insert((key.clone(), locale.clone())) {
                    return Err(DesktopError::DuplicateKey(n, key.clone()));
                }
                lines.push(line);
            }
        }
        if groups.is_empty() {
            return Err(DesktopError::NoMainGroup);
        }
        Ok(DesktopFile { lines })
    }

    /// The value of the unlocalized `key` in `group`, as written.
    pub fn get(&self, group: &str, key: &str) -> Option<&str> {
        let mut current = None;
        for line in &self.lines {
            match line {
                Line::Group(g) => current = Some(g.as_str()),
                Line::Key {
                    key: k,
                    locale: None,
                    value,
                    ..
                } if current == Some(group) && k == key => return Some(value),
                _ => {}
            }
        }
        None
    }

    fn groups(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            Line::Group(g) => Some(g.as_str()),
            _ => None,
        })
    }

    /// What the entry starts, if it is an application hutch can start:
    /// `Type=Application`, not hidden, with an `Exec` it understands.
    pub fn command(
        &self,
        resolve: &dyn Fn(&str) -> Option<PathBuf>,
    ) -> Result<Command, DesktopError> {
        match self.get(MAIN, "Type") {
            Some("Application") => {}
            other => return Err(DesktopError::NotApplication(other.unwrap_or("").into())),
        }
        if self.get(MAIN, "Hidden") == Some("true") {
            return Err(DesktopError::Hidden);
        }
        let exec = self.get(MAIN, "Exec").ok_or(DesktopError::NoExec)?;
        group_command(MAIN, exec, resolve)
    }

    /// The override: every line kept but `Exec` (through hutch),
    /// `DBusActivatable` and actions without `Exec` (see the module's doc).
    pub fn rewrite(
        &self,
        to: &Override<'_>,
        resolve: &dyn Fn(&str) -> Option<PathBuf>,
    ) -> Result<String, DesktopError> {
        self.command(resolve)?;
        let mut execs = std::collections::HashMap::new();
        let mut dropped = HashSet::new();
        for group in self.groups() {
            if group != MAIN && !group.starts_with(ACTION_PREFIX) {
                continue;
            }
            match self.get(group, "Exec") {
                Some(exec) => {
                    let cmd = group_command(group, exec, resolve)?;
                    execs.insert(group.to_string(), escape_value(&join_exec(&to.argv(&cmd))));
                }
                None => {
                    dropped.insert(group.to_string());
                }
            }
        }
        let mut out = to.header();
        let mut group = "";
        for line in &self.lines {
            match line {
                Line::Group(g) => {
                    group = g;
                    if !dropped.contains(group) {
                        out.push_str(&format!("[{g}]\n"));
                    }
                    continue;
                }
                Line::Key { key, locale, .. } => {
                    if dropped.contains(group) || key == MARKER {
                        continue;
                    }
                    let rewritten = group == MAIN || group.starts_with(ACTION_PREFIX);
                    if rewritten && key == "Exec" {
                        if locale.is_none() {
                            out.push_str(&format!("Exec={}\n", execs[group]));
                            if group == MAIN {
                                out.push_str(&format!("{MARKER}={}\n", escape_value(to.name)));
                            }
                        }
                        continue;
                    }
                    if group == MAIN && key == "DBusActivatable" {
                        continue;
                    }
                    if group == MAIN && key == "Actions" && locale.is_none() && !dropped.is_empty()
                    {
                        let kept = self.kept_actions(&dropped);
                        if !kept.is_empty() {
                            out.push_str(&format!("Actions={kept}\n"));
                        }
                        continue;
                    }
                }
                Line::Other(_) => {}
            }
            if !dropped.contains(group) {
                out.push_str(line.text());
                out.push('\n');
            }
        }
        self_check(&out, to, resolve)?;
        Ok(out)
    }

    /// The `Actions` list without the dropped actions.
    fn kept_actions(&self, dropped: &HashSet<String>) -> String {
        let list = self.get(MAIN, "Actions").unwrap_or("");
        list.split(';')
            .filter(|a| !a.is_empty() && !dropped.contains(&format!("{ACTION_PREFIX}{a}")))
            .map(|a| format!("{a};"))
            .collect()
    }
}

impl Line {
    fn text(&self) -> &str {
        match self {
            Line::Other(t) | Line::Key { text: t, .. } => t,
            Line::Group(_) => unreachable!("groups are written from their name"),
        }
    }
}

/// `[name]`, with spaces or tabs after it (as GLib accepts).
fn group_name(start: &str) -> Option<&str> {
    let rest = start.strip_prefix('[')?;
    let end = rest.find(']')?;
    let (name, after) = (&rest[..end], &rest[end + 1..]);
    (!name.is_empty() && !name.contains('[') && after.trim_matches([' ', '\t']).is_empty())
        .then_some(name)
}

/// `KEY[LOCALE] = VALUE` (spaces around `=` ignored).
fn key_line(n: usize, raw: &str, start: &str) -> Result<Line, DesktopError> {
    let (left, value) = start.split_once('=').ok_or(DesktopError::BadLine(n))?;
    let left = left.trim_end_matches([' ', '\t']);
    let (key, locale) = match left.split_once('[') {
        Some((k, rest)) => {
            let loc = rest.strip_suffix(']').ok_or(DesktopError::BadLine(n))?;
            if loc.is_empty() || loc.contains(['[', ']']) {
                return Err(DesktopError::BadLine(n));
            }
            (k, Some(loc.to_string()))
        }
        None => (left, None),
    };
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(DesktopError::BadKey(n, key.to_string()));
    }
    Ok(Line::Key {
        key: key.to_string(),
        locale,
        value: value.trim_start_matches([' ', '\t']).to_string(),
        text: raw.to_string(),
    })
}

fn group_command(
    group: &str,
    exec: &str,
    resolve: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<Command, DesktopError> {
    let wrap = |e| DesktopError::Exec(group.to_string(), e);
    let args = split_exec(&unescape_value(exec).map_err(wrap)?).map_err(wrap)?;
    Command::resolve(args, resolve).map_err(wrap)
}

/// Undoes the escapes of a string value: `\s \n \t \r \\`.
pub fn unescape_value(raw: &str) -> Result<String, ExecError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('s') => ' ',
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('\\') => '\\',
            Some(other) => return Err(ExecError::ValueEscape(other)),
            None => return Err(ExecError::ValueEscape(' ')),
        });
    }
    Ok(out)
}

/// Escapes a string value: backslash and the characters a line cannot
/// hold, and a leading space.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' ' if i == 0 => out.push_str("\\s"),
            c => out.push(c),
        }
    }
    out
}

/// One argument of an Exec line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(String),
    /// A field code on its own: `%f`, `%U`, ...
    Code(char),
    /// Text with field codes in it (`--file=%f`), never quoted.
    Mixed(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Code(char),
}

/// The field codes in use; `%F %U %i` may only stand alone.
const CODES: &str = "fFuUick";
const ALONE: &str = "FUi";
/// Deprecated codes: removed, as the specification says.
const DEPRECATED: &str = "dDnNvm";
/// What an argument must be quoted to contain.
const RESERVED: &str = " \t\n\"'\\><~|&;$*?#()`";

/// Splits an Exec value (escapes already undone) into its arguments, by
/// the specification's quoting rules; deprecated field codes are removed.
pub fn split_exec(s: &str) -> Result<Vec<Arg>, ExecError> {
    let mut args = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if_eq(&' ').is_some() {}
        match chars.peek() {
            None => break,
            Some('"') => {
                chars.next();
                args.push(quoted(&mut chars)?);
            }
            Some(_) => args.extend(unquoted(&mut chars)?),
        }
    }
    if args.is_empty() {
        return Err(ExecError::Empty);
    }
    Ok(args)
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn quoted(chars: &mut Chars<'_>) -> Result<Arg, ExecError> {
    let mut text = String::new();
    loop {
        match chars.next().ok_or(ExecError::Unterminated)? {
            '"' => break,
            '\\' => match chars.next().ok_or(ExecError::Unterminated)? {
                c @ ('"' | '`' | '$' | '\\') => text.push(c),
                c => return Err(ExecError::QuoteEscape(c)),
            },
            c @ ('`' | '$') => return Err(ExecError::UnescapedInQuotes(c)),
            '%' => match chars.next().ok_or(ExecError::LonePercent)? {
                '%' => text.push('%'),
                c => return Err(ExecError::CodeInQuotes(c)),
            },
            c => text.push(c),
        }
    }
    match chars.peek() {
        None | Some(' ') => Ok(Arg::Text(text)),
        Some(_) => Err(ExecError::AfterQuote),
    }
}

fn unquoted(chars: &mut Chars<'_>) -> Result<Option<Arg>, ExecError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    while let Some(c) = chars.next_if(|c| *c != ' ') {
        if c != '%' {
            if RESERVED.contains(c) || c.is_control() {
                return Err(ExecError::Unquoted(c));
            }
            text.push(c);
            continue;
        }
        match chars.next().ok_or(ExecError::LonePercent)? {
            '%' => text.push('%'),
            k if CODES.contains(k) => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Code(k));
            }
            k if DEPRECATED.contains(k) => {}
            k => return Err(ExecError::UnknownCode(k)),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(match pieces.as_slice() {
        [] => None,
        [Piece::Text(t)] => Some(Arg::Text(t.clone())),
        [Piece::Code(k)] => Some(Arg::Code(*k)),
        _ => {
            if let Some(k) = pieces.iter().find_map(|p| match p {
                Piece::Code(k) if ALONE.contains(*k) => Some(*k),
                _ => None,
            }) {
                return Err(ExecError::NotAlone(k));
            }
            Some(Arg::Mixed(pieces))
        }
    })
}

/// Writes arguments back as an Exec value (before the value's own
/// escapes): plain words as they are, anything else quoted; `%` doubled.
pub fn join_exec(args: &[Arg]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|a| match a {
            Arg::Text(t) => quote(t),
            Arg::Code(k) => format!("%{k}"),
            Arg::Mixed(pieces) => pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.replace('%', "%%"),
                    Piece::Code(k) => format!("%{k}"),
                })
                .collect(),
        })
        .collect();
    words.join(" ")
}

fn quote(t: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c);
    if !t.is_empty() && t.chars().all(plain) {
        return t.replace('%', "%%");
    }
    let mut out = String::from("\"");
    for c in t.chars() {
        match c {
            '"' | '`' | '$' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What an Exec line starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The program, absolute (after `env NAME=VALUE...` if the line
    /// starts with it).
    pub program: PathBuf,
    /// The whole command line, its programs absolute.
    pub argv: Vec<Arg>,
}

impl Command {
    /// Resolves the program of `args` (a name through `resolve`: `PATH`
    /// without hutch's shims), looking through `env NAME=VALUE...`.
    pub fn resolve(
        mut args: Vec<Arg>,
        resolve: &dyn Fn(&str) -> Option<PathBuf>,
    ) -> Result<Command, ExecError> {
        let first = program_at(&args, 0, resolve)?;
        args[0] = Arg::Text(path_text(&first));
        if first.file_name().is_none_or(|n| n != "env") {
            return Ok(Command {
                program: first,
                argv: args,
            });
        }
        let mut i = 1;
        while let Some(Arg::Text(t)) = args.get(i)
            && is_assignment(t)
        {
            i += 1;
        }
        match args.get(i) {
            Some(Arg::Text(t)) if t.starts_with('-') => {
                return Err(ExecError::EnvOptions(t.clone()));
            }
            None => return Err(ExecError::EnvOptions(String::new())),
            _ => {}
        }
        let program = program_at(&args, i, resolve)?;
        args[i] = Arg::Text(path_text(&program));
        Ok(Command {
            program,
            argv: args,
        })
    }
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn program_at(
    args: &[Arg],
    i: usize,
    resolve: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<PathBuf, ExecError> {
    let Some(Arg::Text(p)) = args.get(i) else {
        return Err(ExecError::ProgramIsCode);
    };
    if p.starts_with('-') {
        return Err(ExecError::ProgramOption(p.clone()));
    }
    if p.starts_with('/') {
        return Ok(PathBuf::from(p));
    }
    if p.is_empty() || p.contains('/') || p.contains('=') {
        return Err(ExecError::RelativeProgram(p.clone()));
    }
    resolve(p).ok_or_else(|| ExecError::NotFound(p.clone()))
}

fn is_assignment(t: &str) -> bool {
    t.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Who the override is for, and what it runs.
pub struct Override<'a> {
    /// hutch's executable.
    pub hutch: &'a Path,
    /// The shim's name.
    pub name: &'a str,
    pub profile: &'a str,
    /// The entry it is made from.
    pub source: &'a Path,
}

impl Override<'_> {
    /// `HUTCH run --profile P -- COMMAND...`.
    fn argv(&self, cmd: &Command) -> Vec<Arg> {
        let mut argv: Vec<Arg> = [
            &path_text(self.hutch),
            "run",
            "--profile",
            self.profile,
            "--",
        ]
        .iter()
        .map(|s| Arg::Text(s.to_string()))
        .collect();
        argv.extend(cmd.argv.iter().cloned());
        argv
    }

    fn header(&self) -> String {
        let clean = |s: &str| {
            escape_value(s)
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect::<String>()
        };
        format!(
            "# Written by `hutch shim install`: {} runs in hutch's profile {}.\n\
             # Made from {}; `hutch shim remove {}` removes it.\n",
            clean(self.name),
            clean(self.profile),
            clean(&self.source.to_string_lossy()),
            clean(self.name),
        )
    }
}

/// Reads an override back: it must parse, carry the marker, and every
/// `Exec` it has must start hutch, with the program after `--`.
fn self_check(
    text: &str,
    to: &Override<'_>,
    resolve: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<(), DesktopError> {
    let fail = |what: &str| DesktopError::SelfCheck(what.to_string());
    let file = DesktopFile::parse(text.as_bytes()).map_err(|e| fail(&e.to_string()))?;
    if file.get(MAIN, MARKER).is_none() || file.get(MAIN, "DBusActivatable").is_some() {
        return Err(fail("marker or DBusActivatable"));
    }
    let head: Vec<Arg> = to.argv(&Command {
        program: PathBuf::new(),
        argv: Vec::new(),
    });
    for group in file.groups() {
        if group != MAIN && !group.starts_with(ACTION_PREFIX) {
            continue;
        }
        let exec = file
            .get(group, "Exec")
            .ok_or_else(|| fail("an Exec is missing"))?;
        let args = split_exec(&unescape_value(exec).map_err(|e| fail(&e.to_string()))?)
            .map_err(|e| fail(&e.to_string()))?;
        if args.len() <= head.len() || args[..head.len()] != head[..] {
            return Err(fail("an Exec does not start hutch"));
        }
        Command::resolve(args[head.len()..].to_vec(), resolve).map_err(|e| fail(&e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
