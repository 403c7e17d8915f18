//! What became of each line of a firejail profile, and what firejail
//! grants that the imported profile does not.

use std::fmt::Write as _;

use serde::Serialize;

use super::source::{Fate, Origin, Profile};

/// The verdict on one line, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// `include`, `ignore`, `quiet`, a false `?CONDITION:`, a line an
    /// `ignore` dropped: resolved while reading, nothing to translate.
    Composition,
    /// hutch does what firejail does (often by default).
    Translated,
    /// hutch grants less than firejail did.
    Stricter,
    /// Only root can do it (firejail needs its setuid helper); refused.
    RootOnly,
    /// hutch cannot apply this restriction (or grant).
    NotTranslatable,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Composition => "composition",
            Verdict::Translated => "translated",
            Verdict::Stricter => "stricter",
            Verdict::RootOnly => "root-only",
            Verdict::NotTranslatable => "not translatable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    pub why: String,
}

impl Outcome {
    pub fn new(verdict: Verdict, why: impl Into<String>) -> Outcome {
        Outcome {
            verdict,
            why: why.into(),
        }
    }
}

/// One line of the profile and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct LineReport {
    pub file: String,
    pub line: usize,
    pub text: String,
    pub verdict: Verdict,
    pub why: String,
}

/// Something firejail lets the program have that the imported profile does
/// not, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Withheld {
    pub what: String,
    pub why: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub translated: usize,
    pub stricter: usize,
    pub not_translatable: usize,
    pub root_only: usize,
    pub composition: usize,
}

impl Counts {
    pub fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Composition => self.composition += 1,
            Verdict::Translated => self.translated += 1,
            Verdict::Stricter => self.stricter += 1,
            Verdict::RootOnly => self.root_only += 1,
            Verdict::NotTranslatable => self.not_translatable += 1,
        }
    }

    /// Directive lines (composition left out).
    pub fn directives(&self) -> usize {
        self.translated + self.stricter + self.not_translatable + self.root_only
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub profile: String,
    pub files: Vec<String>,
    pub lines: Vec<LineReport>,
    pub withheld: Vec<Withheld>,
    pub counts: Counts,
}

impl Report {
    /// Builds the per-line report from the verdicts of the directives.
    pub fn build(
        profile: &Profile,
        directive_outcomes: &[Outcome],
        withheld: Vec<Withheld>,
    ) -> Report {
        let mut lines = Vec::new();
        let mut counts = Counts::default();
        let mut files: Vec<String> = vec![profile.file.display().to_string()];
        for l in &profile.lines {
            let o = line_outcome(l, directive_outcomes);
            if let Fate::Include(Some(p)) = &l.fate {
                files.push(p.display().to_string());
            }
            counts.add(o.verdict);
            lines.push(LineReport {
                file: l.origin.file.display().to_string(),
                line: l.origin.line,
                text: l.text.clone(),
                verdict: o.verdict,
                why: o.why,
            });
        }
        Report {
            profile: profile.file.display().to_string(),
            files,
            lines,
            withheld,
            counts,
        }
    }

    /// The report as text: every line (`all`) or only those hutch does not
    /// translate, then what is withheld, then the counts.
    pub fn render(&self, all: bool) -> String {
        let mut out = String::new();
        let width = self
            .lines
            .iter()
            .map(|l| short(&l.file, l.line).len())
            .max()
            .unwrap_or(0);
        let shown: Vec<&LineReport> = self
            .lines
            .iter()
            .filter(|l| all || matches!(l.verdict, Verdict::NotTranslatable | Verdict::RootOnly))
            .collect();
        if !shown.is_empty() {
            let _ = writeln!(
                out,
                "{}",
                if all { "Each line:" } else { "Not translated:" }
            );
        }
        for l in shown {
            let _ = writeln!(
                out,
                "  {:width$}  {}\n  {:width$}    → {}: {}",
                short(&l.file, l.line),
                l.text,
                "",
                l.verdict.label(),
                l.why
            );
        }
        if !self.withheld.is_empty() {
            let _ = writeln!(
                out,
                "Withheld (firejail grants these; the hutch profile does not):"
            );
            for w in &self.withheld {
                let _ = writeln!(out, "  - {}: {}", w.what, w.why);
            }
        }
        let c = &self.counts;
        let _ = writeln!(
            out,
            "{} directive lines: {} translated, {} stricter, {} not translatable, {} root-only ({} lines of composition: include, ignore, quiet, conditions)",
            c.directives(),
            c.translated,
            c.stricter,
            c.not_translatable,
            c.root_only,
            c.composition
        );
        crate::diag::sanitize_lines(&out)
    }
}

fn short(file: &str, line: usize) -> String {
    let name = std::path::Path::new(file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.to_string());
    format!("{name}:{line}")
}

/// A line's verdict: composition for what reading resolved, else the worst
/// verdict of its directives.
fn line_outcome(l: &super::source::Line, outcomes: &[Outcome]) -> Outcome {
    let c = |why: String| Outcome::new(Verdict::Composition, why);
    match &l.fate {
        Fate::Active(ids) => ids
            .iter()
            .filter_map(|i| outcomes.get(*i))
            .max_by_key(|o| o.verdict)
            .cloned()
            .unwrap_or_else(|| c("no effect".into())),
        Fate::Include(Some(p)) => c(format!("read {}", p.display())),
        Fate::Include(None) => c("no such file (a missing .local file is skipped)".into()),
        Fate::SkippedByAllowDebuggers => {
            c("skipped: firejail does not read disable-devel.inc after allow-debuggers".into())
        }
        Fate::Ignore => c("drops the later lines that start with these words".into()),
        Fate::Ignored(o) => c(format!("dropped by `ignore` at {}", short_origin(o))),
        Fate::ConditionFalse(name) => c(format!(
            "condition {name} does not hold (firejail.config and the lines before it decide)"
        )),
        Fate::Quiet => c("only silences firejail's messages".into()),
    }
}

fn short_origin(o: &Origin) -> String {
    o.short()
}
