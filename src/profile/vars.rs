//! `~` and `${VAR}` expansion in profile paths and values.
//!
//! Only a fixed set of variables exists; anything else is an error, so a typo
//! can never silently turn into an empty path component.

use crate::host::Host;

/// The variables a profile may use.
pub const KNOWN: &[&str] = &[
    "HOME",
    "USER",
    "UID",
    "GID",
    "CWD",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "XDG_DESKTOP_DIR",
    "XDG_DOWNLOAD_DIR",
    "XDG_DOCUMENTS_DIR",
    "XDG_MUSIC_DIR",
    "XDG_PICTURES_DIR",
    "XDG_VIDEOS_DIR",
    "XDG_TEMPLATES_DIR",
    "XDG_PUBLICSHARE_DIR",
    "DISPLAY",
    "WAYLAND_DISPLAY",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarError {
    /// `${NAME}` with a name not in [`KNOWN`]; `offset` is where `$` is.
    Unknown { name: String, offset: usize },
    /// `${` without a closing `}`.
    Unterminated { offset: usize },
    /// A known variable that has no value on this machine.
    Unavailable { name: String, offset: usize },
    /// A known variable whose value, a path, is not UTF-8: a profile's
    /// values are text, and a lossy conversion would name another path.
    /// `value` is the path shown with its bytes escaped.
    NotUtf8 {
        name: String,
        value: String,
        offset: usize,
    },
}

impl VarError {
    pub fn offset(&self) -> usize {
        match self {
            VarError::Unknown { offset, .. }
            | VarError::Unterminated { offset }
            | VarError::Unavailable { offset, .. }
            | VarError::NotUtf8 { offset, .. } => *offset,
        }
    }

    pub fn message(&self) -> String {
        match self {
            VarError::Unknown { name, .. } => format!("unknown variable `${{{name}}}`"),
            VarError::Unterminated { .. } => "`${` without a closing `}`".to_string(),
            VarError::Unavailable { name, .. } => {
                format!("variable `${{{name}}}` has no value here")
            }
            VarError::NotUtf8 { name, value, .. } => {
                format!("variable `${{{name}}}` is {value}, which is not UTF-8")
            }
        }
    }

    pub fn help(&self) -> String {
        match self {
            VarError::Unknown { .. } => format!(
                "known variables: {}; write `$$` for a literal `$`",
                KNOWN.join(", ")
            ),
            VarError::Unterminated { .. } => "write `${NAME}`, or `$$` for a literal `$`".into(),
            VarError::Unavailable { name, .. } => match name.as_str() {
                "HOME" => "set HOME, or give the user a home directory in /etc/passwd".into(),
                "CWD" => "the current directory no longer exists; cd somewhere first".into(),
                _ => format!("set {name} in the environment"),
            },
            VarError::NotUtf8 { name, .. } => match name.as_str() {
                "CWD" => "profiles hold paths as text: run hutch from a directory whose path is \
                          UTF-8, or use a profile that does not bind the current directory"
                    .into(),
                _ => format!(
                    "profiles hold paths as text: point {name} at a directory whose path is UTF-8"
                ),
            },
        }
    }
}

/// A variable's value on this machine.
enum Value {
    Text(String),
    Missing,
    /// A path that is not UTF-8.
    NotUtf8(std::path::PathBuf),
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Value {
        v.map_or(Value::Missing, Value::Text)
    }
}

fn value_of(name: &str, host: &Host) -> Option<Value> {
    let path = |p: Option<&std::path::Path>| match p {
        None => Value::Missing,
        Some(p) => match p.to_str() {
            Some(s) => Value::Text(s.to_string()),
            None => Value::NotUtf8(p.to_path_buf()),
        },
    };
    Some(match name {
        "HOME" => path(host.home()),
        "USER" => host.user_name().into(),
        "UID" => Value::Text(host.uid.to_string()),
        "GID" => Value::Text(host.gid.to_string()),
        "CWD" => path(host.cwd()),
        "XDG_RUNTIME_DIR" => path(Some(&host.runtime_dir())),
        "XDG_CONFIG_HOME" | "XDG_DATA_HOME" | "XDG_CACHE_HOME" | "XDG_STATE_HOME" => {
            path(host.xdg_base(name).as_deref())
        }
        n if n.starts_with("XDG_") && n.ends_with("_DIR") => path(host.xdg_user_dir(n).as_deref()),
        // The caller's display names, as their session set them (the
        // sandbox's own are `[desktop]`'s: `:N` and `wayland-0`).
        "DISPLAY" | "WAYLAND_DISPLAY" => host.env(name).filter(|v| !v.is_empty()).into(),
        _ => return None,
    })
}

/// The value of variable `name`, written at `offset`.
fn lookup(name: &str, host: &Host, offset: usize) -> Result<String, VarError> {
    match value_of(name, host) {
        None => Err(VarError::Unknown {
            name: name.to_string(),
            offset,
        }),
        Some(Value::Missing) => Err(VarError::Unavailable {
            name: name.to_string(),
            offset,
        }),
        Some(Value::NotUtf8(path)) => Err(VarError::NotUtf8 {
            name: name.to_string(),
            value: crate::argv::shell_quote(path.as_os_str()),
            offset,
        }),
        Some(Value::Text(v)) => Ok(v),
    }
}

/// Expands `~` (at the start), `${NAME}` and `$$` in `s`.
pub fn expand(s: &str, host: &Host) -> Result<String, VarError> {
    if !s.contains('$') && !s.starts_with('~') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len() + 32);
    let mut rest = s;
    let mut pos = 0;
    if s == "~" || s.starts_with("~/") {
        out.push_str(&lookup("HOME", host, 0)?);
        rest = &s[1..];
        pos = 1;
    }
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let at = pos + i;
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            pos = at + 2;
            rest = after;
            continue;
        }
        let Some(body) = tail.strip_prefix("${") else {
            return Err(VarError::Unterminated { offset: at });
        };
        let Some(end) = body.find('}') else {
            return Err(VarError::Unterminated { offset: at });
        };
        out.push_str(&lookup(&body[..end], host, at)?);
        pos = at + 2 + end + 1;
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host::fixed(
            1000,
            100,
            &[
                ("HOME", "/home/a"),
                ("USER", "a"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ],
            "/work/p",
        )
    }

    #[test]
    fn expands_known_variables() {
        let h = host();
        assert_eq!(expand("~/x", &h).unwrap(), "/home/a/x");
        assert_eq!(expand("~", &h).unwrap(), "/home/a");
        assert_eq!(expand("${HOME}/.cfg", &h).unwrap(), "/home/a/.cfg");
        assert_eq!(expand("${CWD}", &h).unwrap(), "/work/p");
        assert_eq!(
            expand("/run/user/${UID}/bus", &h).unwrap(),
            "/run/user/1000/bus"
        );
        assert_eq!(
            expand("${XDG_RUNTIME_DIR}/w", &h).unwrap(),
            "/run/user/1000/w"
        );
        assert_eq!(
            expand("${XDG_DOWNLOAD_DIR}", &h).unwrap(),
            "/home/a/Downloads"
        );
        assert_eq!(expand("a$$b", &h).unwrap(), "a$b");
        assert_eq!(expand("/x~y", &h).unwrap(), "/x~y");
    }

    #[test]
    fn unknown_and_malformed_variables_are_errors() {
        let h = host();
        assert_eq!(
            expand("/a/${HOEM}/b", &h),
            Err(VarError::Unknown {
                name: "HOEM".into(),
                offset: 3
            })
        );
        assert_eq!(
            expand("/a/${HOME", &h),
            Err(VarError::Unterminated { offset: 3 })
        );
        assert_eq!(
            expand("$HOME", &h),
            Err(VarError::Unterminated { offset: 0 })
        );
        assert_eq!(
            expand("~/${PATH}", &h),
            Err(VarError::Unknown {
                name: "PATH".into(),
                offset: 2
            })
        );
    }
}
