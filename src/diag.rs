//! Diagnostics that point into profile files, rendered the way rustc does.
//!
//! Every error about something a user wrote carries the file, a byte span and a
//! message; `Display` gives one line (`file:line:col: message`) and
//! [`Diagnostic::render`] adds the source line with a caret and a `help:` line.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A profile file as read, kept so that later stages can point into it.
#[derive(Debug)]
pub struct SourceFile {
    /// What the user recognises: a path, or `builtin:NAME` for compiled-in profiles.
    pub name: String,
    /// The real path, if the profile came from the filesystem.
    pub path: Option<PathBuf>,
    pub text: String,
    /// Byte offset where each line starts: the planner asks for the line and
    /// column of every mount entry (for `--explain`), so each lookup is a
    /// binary search rather than a scan from the top of the file.
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, path: Option<&Path>, text: impl Into<String>) -> Arc<Self> {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Arc::new(SourceFile {
            name: name.into(),
            path: path.map(Path::to_path_buf),
            text,
            line_starts,
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let offset = floor_char_boundary(&self.text, offset);
        // line_starts[0] is 0, so at least one start is <= offset.
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line - 1];
        let col = self.text[line_start..offset].chars().count() + 1;
        (line, col)
    }

    fn line_text(&self, line: usize) -> &str {
        self.text.lines().nth(line - 1).unwrap_or("")
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A message about a place in a profile.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub message: String,
    pub file: Option<Arc<SourceFile>>,
    pub span: Option<Range<usize>>,
    /// Short text printed under the caret.
    pub label: Option<String>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            file: None,
            span: None,
            label: None,
            help: None,
        }
    }

    pub fn at(mut self, file: &Arc<SourceFile>, span: Range<usize>) -> Self {
        self.file = Some(Arc::clone(file));
        self.span = Some(span);
        self
    }

    pub fn in_file(mut self, file: &Arc<SourceFile>) -> Self {
        self.file = Some(Arc::clone(file));
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:col` (or just `file`) of this diagnostic.
    pub fn location(&self) -> Option<String> {
        let file = self.file.as_ref()?;
        Some(match &self.span {
            Some(span) => {
                let (line, col) = file.line_col(span.start);
                format!("{}:{}:{}", name(&file.name), line, col)
            }
            None => name(&file.name),
        })
    }

    /// The full, multi-line rendering: location, source line, caret, help.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", line(&self.message));
        let (Some(file), Some(span)) = (&self.file, &self.span) else {
            if let Some(loc) = self.location() {
                out.push_str(&format!("  --> {loc}\n"));
            }
            if let Some(help) = &self.help {
                out.push_str(&format!("  = help: {}\n", sanitize(help)));
            }
            return out;
        };
        let (line, col) = file.line_col(span.start);
        let text = file.line_text(line);
        let gutter = line.to_string().len();
        let pad = " ".repeat(gutter);
        out.push_str(&format!("{pad}--> {}:{line}:{col}\n", name(&file.name)));
        out.push_str(&format!("{pad} |\n"));
        // Tabs kept: the caret below counts them as one column each.
        let shown = escaped(text, |c| c.is_control() && c != '\t');
        out.push_str(&format!("{line} | {shown}\n"));
        let line_chars = text.chars().count();
        let span_chars = {
            let end = floor_char_boundary(&file.text, span.end.min(file.text.len()));
            let start = floor_char_boundary(&file.text, span.start.min(end));
            file.text[start..end]
                .chars()
                .take_while(|c| *c != '\n')
                .count()
        };
        let width = span_chars.clamp(1, (line_chars + 1).saturating_sub(col - 1).max(1));
        let caret = format!("{}{}", " ".repeat(col - 1), "^".repeat(width));
        match &self.label {
            Some(label) => out.push_str(&format!("{pad} | {caret} {}\n", sanitize(label))),
            None => out.push_str(&format!("{pad} | {caret}\n")),
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("{pad} = help: {}\n", sanitize(help)));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = self.location() {
            write!(f, "{loc}: ")?;
        }
        write!(f, "{}", sanitize(&self.message))?;
        if let Some(help) = &self.help {
            write!(f, " ({})", sanitize(help))?;
        }
        Ok(())
    }
}

/// Escapes the characters `escape` picks as `\u{HEX}`.
fn escaped(s: &str, escape: impl Fn(char) -> bool) -> String {
    if !s.chars().any(&escape) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Text from outside (a profile, a file name, an image's metadata) for one
/// line of output: every control character escaped — a newline too, so a
/// name cannot forge a line of its own, and escape sequences cannot
/// disguise what a profile does.
pub fn sanitize(s: &str) -> String {
    escaped(s, char::is_control)
}

/// [`sanitize`] for text of several lines: newlines kept, every other
/// control character escaped.
pub fn sanitize_lines(s: &str) -> String {
    escaped(s, |c| c.is_control() && c != '\n')
}

/// Longest name, in characters, shown whole in a message.
pub const NAME_MAX: usize = 160;
/// Longest message line, in characters: what is longer loses its middle.
pub const LINE_MAX: usize = 2048;

/// `s` cut to at most `max` characters by leaving out its middle, which
/// says how much it left out: the start and the end of a name, or of a
/// message (what happened, and what to do), stay readable.
fn shortened(s: &str, max: usize) -> String {
    let count = s.chars().count();
    if count <= max {
        return s.to_owned();
    }
    let head = max * 5 / 8;
    let tail = max / 4;
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(count - tail).collect();
    format!(
        "{start}…[{} characters left out]…{end}",
        count - head - tail
    )
}

/// A name from outside (a path, an image or file name, a command) for a
/// message: sanitised, and cut to [`NAME_MAX`] characters.
pub fn name(s: &str) -> String {
    shortened(&sanitize(s), NAME_MAX)
}

/// A whole message as one line: sanitised, and cut to [`LINE_MAX`]
/// characters — the last guard, whatever a message holds.
pub fn line(message: &str) -> String {
    shortened(&sanitize(message), LINE_MAX)
}

/// Writes `hutch: MESSAGE` on stderr, as one [`line`].
pub fn error(message: impl fmt::Display) {
    say(&format!("hutch: {}", line(&message.to_string())));
}

/// Writes `hutch: MESSAGE` on stderr, as one [`line`]: what `-v` says.
pub fn note(message: impl fmt::Display) {
    error(message);
}

/// Writes `hutch: warning: MESSAGE` on stderr, as one [`line`].
pub fn warning(message: impl fmt::Display) {
    say(&format!("hutch: warning: {}", line(&message.to_string())));
}

fn say(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let f = SourceFile::new("p.toml", None, "version = 1\nhostnme = \"x\"\n");
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(12), (2, 1));
        assert_eq!(f.line_col(14), (2, 3));
    }

    #[test]
    fn line_and_column_match_a_scan_from_the_top() {
        let text = "a = 1\n\n# é ü\nkey = \"ß\"\r\n[[mount]]\nend";
        let f = SourceFile::new("p.toml", None, text);
        for offset in 0..=text.len() + 3 {
            let clamped = offset.min(text.len());
            let before = &text[..floor_char_boundary(text, clamped)];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let col = before[start..].chars().count() + 1;
            assert_eq!(f.line_col(offset), (line, col), "offset {offset}");
        }
    }

    #[test]
    fn render_points_at_the_span() {
        let f = SourceFile::new("p.toml", None, "version = 1\nhostnme = \"x\"\n");
        let d = Diagnostic::new("unknown key `hostnme`")
            .at(&f, 12..19)
            .label("not a profile key")
            .help("did you mean `hostname`?");
        let r = d.render();
        assert!(r.contains("--> p.toml:2:1"), "{r}");
        assert!(r.contains("2 | hostnme = \"x\""), "{r}");
        assert!(r.contains("  | ^^^^^^^ not a profile key"), "{r}");
        assert!(r.contains("= help: did you mean `hostname`?"), "{r}");
        assert_eq!(
            d.to_string(),
            "p.toml:2:1: unknown key `hostnme` (did you mean `hostname`?)"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(sanitize("a\x1b[31mb"), "a\\u{1b}[31mb");
        assert_eq!(sanitize("a\nhutch: ok\tb"), "a\\u{a}hutch: ok\\u{9}b");
        assert_eq!(sanitize_lines("a\nb\x1b"), "a\nb\\u{1b}");
    }

    #[test]
    fn long_names_and_lines_lose_their_middle() {
        assert_eq!(name("short"), "short");
        let long = format!("/tmp/{}/end", "x".repeat(100_000));
        let shown = name(&long);
        assert!(shown.chars().count() < NAME_MAX + 40, "{shown}");
        assert!(
            shown.starts_with("/tmp/xxx") && shown.ends_with("xx/end"),
            "{shown}"
        );
        assert!(shown.contains("characters left out"), "{shown}");
        let message = format!("cannot open {long}: No such file (create it)");
        let one = line(&message);
        assert!(one.chars().count() < LINE_MAX + 40);
        assert!(one.ends_with("No such file (create it)"), "{one}");
        assert!(!line("a\nb").contains('\n'));
    }
}
