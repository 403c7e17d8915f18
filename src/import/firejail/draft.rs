//! The hutch profile being written, and its TOML text. Every entry carries
//! the comment that says which firejail lines it comes from; consecutive
//! entries with the same comment share it.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::profile::schema::MountKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountKind,
    /// A host path (bind types only).
    pub src: Option<PathBuf>,
    pub dst: PathBuf,
    pub optional: bool,
    pub mode: Option<&'static str>,
    pub keep_symlink: bool,
    /// A symlink's target.
    pub target: Option<PathBuf>,
    pub comment: String,
}

impl Mount {
    pub fn new(kind: MountKind, dst: PathBuf, comment: impl Into<String>) -> Mount {
        Mount {
            kind,
            src: None,
            dst,
            optional: false,
            mode: None,
            keep_symlink: false,
            target: None,
            comment: comment.into(),
        }
    }

    pub fn bind(readonly: bool, path: PathBuf, comment: impl Into<String>) -> Mount {
        let kind = if readonly {
            MountKind::RoBind
        } else {
            MountKind::Bind
        };
        Mount {
            src: Some(path.clone()),
            ..Mount::new(kind, path, comment)
        }
    }

    pub fn optional(mut self) -> Mount {
        self.optional = true;
        self
    }

    pub fn mode(mut self, mode: &'static str) -> Mount {
        self.mode = Some(mode);
        self
    }
}

/// An item of `[seccomp] allow` or `deny`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub comment: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seccomp {
    pub deny: Vec<Listed>,
    pub allow: Vec<Listed>,
    /// `action` and `errno`, with their comments.
    pub action: Option<(&'static str, String)>,
    pub errno: Option<(String, String)>,
    pub nested_userns: Option<String>,
}

/// A value set once, with its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valued {
    pub value: String,
    pub comment: String,
}

#[derive(Debug, Clone, Default)]
pub struct Draft {
    /// Comment lines at the top of the file.
    pub header: Vec<String>,
    pub description: String,
    pub hostname: Option<Valued>,
    pub cwd: Option<Valued>,
    pub mounts: Vec<Mount>,
    pub seccomp: Seccomp,
    /// `[env] set`: name, value, comment.
    pub env_set: Vec<(String, String, String)>,
    /// `[env] keep = ["!NAME"]`.
    pub env_drop: Vec<Listed>,
    /// `[rlimits]`: key, value, comment.
    pub rlimits: Vec<(&'static str, u64, String)>,
}

/// A TOML string literal.
pub fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn comment_block(out: &mut String, comment: &str) {
    for line in comment.lines() {
        let _ = writeln!(out, "# {}", crate::diag::sanitize(line).replace('\n', " "));
    }
}

fn list(out: &mut String, key: &str, items: &[Listed]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "{key} = [");
    let mut last = None;
    for it in items {
        if last != Some(&it.comment) {
            for line in it.comment.lines() {
                let _ = writeln!(out, "    # {line}");
            }
            last = Some(&it.comment);
        }
        let _ = writeln!(out, "    {},", quote(&it.name));
    }
    let _ = writeln!(out, "]");
}

impl Draft {
    /// The profile as TOML, `to_hutch` spelling host paths.
    pub fn render(&self, to_hutch: &dyn Fn(&std::path::Path) -> String) -> String {
        let mut out = String::new();
        for h in &self.header {
            let _ = writeln!(out, "# {}", crate::diag::sanitize(h));
        }
        let _ = writeln!(out, "version = 1");
        let _ = writeln!(out, "description = {}", quote(&self.description));
        for (key, v) in [("hostname", &self.hostname), ("cwd", &self.cwd)] {
            if let Some(v) = v {
                out.push('\n');
                comment_block(&mut out, &v.comment);
                let _ = writeln!(out, "{key} = {}", quote(&v.value));
            }
        }
        self.render_env(&mut out);
        self.render_seccomp(&mut out);
        if !self.rlimits.is_empty() {
            let _ = writeln!(out, "\n[rlimits]");
            for (k, v, c) in &self.rlimits {
                comment_block(&mut out, c);
                let _ = writeln!(out, "{k} = {v}");
            }
        }
        let mut last: Option<&str> = None;
        for m in &self.mounts {
            if last != Some(m.comment.as_str()) {
                out.push('\n');
                comment_block(&mut out, &m.comment);
                last = Some(&m.comment);
            }
            let _ = writeln!(out, "[[mount]]");
            let _ = writeln!(out, "type = {}", quote(m.kind.name()));
            if let Some(src) = &m.src {
                let _ = writeln!(out, "src = {}", quote(&to_hutch(src)));
            }
            let _ = writeln!(out, "dst = {}", quote(&to_hutch(&m.dst)));
            if let Some(t) = &m.target {
                let _ = writeln!(out, "target = {}", quote(&to_hutch(t)));
            }
            if let Some(mode) = m.mode {
                let _ = writeln!(out, "mode = {}", quote(mode));
            }
            if m.keep_symlink {
                let _ = writeln!(out, "keep_symlink = true");
            }
            if m.optional {
                let _ = writeln!(out, "optional = true");
            }
        }
        out
    }

    fn render_env(&self, out: &mut String) {
        if self.env_set.is_empty() && self.env_drop.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n[env]");
        let drops: Vec<Listed> = self
            .env_drop
            .iter()
            .map(|l| Listed {
                name: format!("!{}", l.name),
                comment: l.comment.clone(),
            })
            .collect();
        list(out, "keep", &drops);
        if !self.env_set.is_empty() {
            let _ = writeln!(out, "[env.set]");
            for (k, v, c) in &self.env_set {
                comment_block(out, c);
                let _ = writeln!(out, "{} = {}", quote(k), quote(&v.replace('$', "$$")));
            }
        }
    }

    fn render_seccomp(&self, out: &mut String) {
        let s = &self.seccomp;
        if s.deny.is_empty()
            && s.allow.is_empty()
            && s.action.is_none()
            && s.errno.is_none()
            && s.nested_userns.is_none()
        {
            return;
        }
        let _ = writeln!(out, "\n[seccomp]");
        if let Some((a, c)) = &s.action {
            comment_block(out, c);
            let _ = writeln!(out, "action = {}", quote(a));
        }
        if let Some((e, c)) = &s.errno {
            comment_block(out, c);
            let _ = writeln!(out, "errno = {}", quote(e));
        }
        if let Some(c) = &s.nested_userns {
            comment_block(out, c);
            let _ = writeln!(out, "nested_userns = true");
        }
        list(out, "allow", &s.allow);
        list(out, "deny", &s.deny);
    }
}
