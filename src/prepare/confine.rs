//! What confines the payload, lowered for the child: resource limits, the
//! Landlock ruleset with its paths as C strings, and the compiled seccomp
//! filter.

use super::{NulError, cstring_path};
use crate::landlock::{PathRule, Ruleset};
use crate::plan::security::{LandlockPlan, RLIMITS, RlimitPlan};

/// One resource limit, soft and hard alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: crate::sys::RlimitResource,
    pub value: libc::rlim_t,
    /// As written in the profile (`nofile`), for messages.
    pub name: &'static str,
}

/// The planned limits hutch knows how to set.
pub fn rlimits(planned: &[RlimitPlan]) -> Vec<Rlimit> {
    planned
        .iter()
        .filter_map(|r| {
            let (name, resource) = *RLIMITS.iter().find(|(n, _)| *n == r.name)?;
            Some(Rlimit {
                resource,
                value: r.value.unwrap_or(libc::RLIM_INFINITY),
                name,
            })
        })
        .collect()
}

/// The planned ruleset with its paths as C strings. Rights stay as
/// planned: the child narrows them on a path that turns out to be a file
/// (`landlock::access::on_file`), the one place that does.
pub fn landlock(l: &LandlockPlan) -> Result<Option<Ruleset>, NulError> {
    if !l.active() {
        return Ok(None);
    }
    Ok(Some(Ruleset {
        handled_fs: l.handled_fs,
        handled_net: l.handled_net,
        scoped: l.scoped,
        fs_rules: l
            .fs_rules
            .iter()
            .map(|r| {
                Ok(PathRule {
                    path: cstring_path("landlock path", &r.path)?,
                    access: r.access,
                    skip_if_missing: r.derived,
                    is_dir: r.is_dir,
                })
            })
            .collect::<Result<_, NulError>>()?,
        net_rules: l
            .net_rules
            .iter()
            .map(|(port, access)| (*port as u64, *access))
            .collect(),
    }))
}
