//! The payload's environment: cleared by default, a keep list, explicit sets.

use std::collections::BTreeMap;

use crate::diag::Diagnostic;
use crate::host::Host;
use crate::profile::{Profile, ProfileError, vars};

/// Passed through from the caller unless a profile says `!NAME`.
pub const DEFAULT_KEEP: &[&str] = &[
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "USER",
    "LOGNAME",
];

/// Set unless a profile sets them differently.
pub const DEFAULT_SET: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
    ),
    ("HOME", "${HOME}"),
];

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn valid_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('=')
        && !name.contains('\0')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// The names some layer's `[env] set` gives a value.
pub fn explicitly_set(profile: &Profile) -> Vec<String> {
    profile
        .layers
        .iter()
        .filter_map(|l| l.raw.env.as_ref()?.set.as_ref())
        .flat_map(|set| set.keys().cloned())
        .collect()
}

/// `base` (an image's `Env`) is set over hutch's defaults and under the
/// profile's `[env] set`.
pub fn plan_env(
    profile: &Profile,
    host: &Host,
    base: &[(String, String)],
) -> Result<BTreeMap<String, String>, ProfileError> {
    let clear = profile
        .last(|p| p.env.as_ref()?.clear.as_ref())
        .is_none_or(|c| *c.get());
    let mut keep: Vec<String> = DEFAULT_KEEP.iter().map(|s| s.to_string()).collect();
    for layer in &profile.layers {
        for k in layer.raw.env.iter().flat_map(|e| e.keep.iter().flatten()) {
            let item = k.get_ref();
            let (negated, pattern) = match item.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, item.as_str()),
            };
            let bare = pattern.strip_suffix('*').unwrap_or(pattern);
            if bare.contains('*')
                || (!pattern.ends_with('*') && !valid_var_name(pattern))
                || pattern.is_empty()
            {
                return Err(Diagnostic::new(format!(
                    "key `env.keep`: {item:?} is not a variable name or pattern"
                ))
                .at(&layer.file, k.span())
                .help("write NAME, PREFIX* (e.g. \"LC_*\"), or !NAME to stop keeping a name")
                .into());
            }
            if negated {
                keep.retain(|existing| existing != pattern);
            } else if !keep.iter().any(|e| e == pattern) {
                keep.push(pattern.to_string());
            }
        }
    }
    let mut env = BTreeMap::new();
    for (name, value) in host.env_vars() {
        if !clear || keep.iter().any(|p| matches(p, &name)) {
            env.insert(name, value);
        }
    }
    for (name, value) in DEFAULT_SET {
        if let Ok(v) = vars::expand(value, host) {
            env.insert(name.to_string(), v);
        }
    }
    for (name, value) in base {
        env.insert(name.clone(), value.clone());
    }
    for layer in &profile.layers {
        let Some(set) = layer.raw.env.as_ref().and_then(|e| e.set.as_ref()) else {
            continue;
        };
        for (name, value) in set {
            if !valid_var_name(name) {
                return Err(Diagnostic::new(format!(
                    "key `env.set`: {name:?} is not a valid variable name"
                ))
                .at(&layer.file, value.span())
                .help("variable names may not be empty, start with a digit, or contain `=`")
                .into());
            }
            let v = vars::expand(value.get_ref(), host).map_err(|err| {
                let span = super::mounts::value_inner_span(&layer.file.text, value, err.offset());
                ProfileError::from(
                    Diagnostic::new(err.message())
                        .at(&layer.file, span)
                        .help(err.help()),
                )
            })?;
            if v.contains('\0') {
                return Err(Diagnostic::new(format!(
                    "key `env.set.{name}`: value contains a NUL byte"
                ))
                .at(&layer.file, value.span())
                .into());
            }
            env.insert(name.clone(), v);
        }
    }
    Ok(env)
}
