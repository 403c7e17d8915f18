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
                format!("{}:{}:{}", file.name, line, col)
            }
            None => file.name.clone(),
        })
    }

    /// The full, multi-line rendering: location, source line, caret, help.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", sanitize(&self.message));
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
        out.push_str(&format!("{pad}--> {}:{line}:{col}\n", file.name));
        out.push_str(&format!("{pad} |\n"));
        out.push_str(&format!("{line} | {}\n", sanitize(text)));
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

/// Control characters in user-supplied text must not reach the terminal raw:
/// escape sequences could disguise what a profile does.
pub fn sanitize(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
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
    }
}
