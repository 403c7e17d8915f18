//! Planning `[devices]`: host device nodes granted one class at a time
//! inside hutch's minimal `/dev`.
//!
//! Each granted node (or directory of nodes) is bound read-only, nosuid,
//! without `nodev`: a read-only mount stops the app from adding, renaming
//! or removing entries, and does not stop it from reading, writing or
//! ioctl-ing a device node (the kernel takes no write access on the mount
//! for special files). Landlock's derived rules give exactly those rights
//! on these paths (read, write, `IOCTL_DEV`). Nothing else of the host's
//! `/dev` appears.
//!
//! With `dri` (the GPU), what Mesa and libdrm read of sysfs to identify
//! the device (`drmGetDevice2`: `/sys/dev/char/MAJ:MIN` → the node's
//! directory, its `device` link and what it holds — `uevent`, `vendor`,
//! `device`, `config` —, and the realpath of its `subsystem` link) is made
//! for each node: the link in `/sys/dev/char`, the GPU's own device
//! directory bound read-only at its path, and an empty directory where the
//! subsystem link points (`/sys/bus/pci`), so that the realpath resolves.
//! The rest of `/sys` (other PCI devices, network addresses, ...) stays
//! out. Programs that enumerate GPUs through libudev (`/run/udev`) find
//! none.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::mounts::{MountOp, PlannedMount, resolve_lexically};
use crate::diag::{Diagnostic, sanitize};
use crate::host::Host;
use crate::profile::schema::Need;
use crate::profile::{Profile, ProfileError};

/// The device classes, and what each grants.
pub const CLASSES: &[(&str, &str)] = &[
    (
        "dri",
        "the GPU: /dev/dri, and read-only the sysfs entries Mesa and libdrm read to identify it",
    ),
    ("snd", "ALSA sound devices: /dev/snd"),
    (
        "video",
        "cameras and capture devices: /dev/video*, /dev/media*",
    ),
    (
        "input",
        "input devices: /dev/input (game controllers; also the events of keyboards and mice)",
    ),
    ("fuse", "FUSE: /dev/fuse"),
    ("kvm", "virtual machines: /dev/kvm"),
];

/// What `[devices]` grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicesPlan {
    pub granted: Vec<Grant>,
    /// Classes a best-effort section left out, and why.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub class: String,
    /// Host paths bound at the same path inside.
    pub nodes: Vec<PathBuf>,
    /// sysfs directories bound read-only (with `dri`).
    pub sysfs: Vec<PathBuf>,
}

/// A class asked for, and the `allow` item that asked.
struct Asked<'a> {
    class: &'static str,
    file: &'a std::sync::Arc<crate::diag::SourceFile>,
    span: std::ops::Range<usize>,
}

impl Asked<'_> {
    fn origin(&self) -> String {
        let (line, col) = self.file.line_col(self.span.start);
        format!("{}:{line}:{col}", self.file.name)
    }
}

/// The classes the layers ask for, in the order asked.
fn requested(profile: &Profile) -> Result<Vec<Asked<'_>>, ProfileError> {
    let mut classes: Vec<Asked<'_>> = Vec::new();
    for layer in &profile.layers {
        let Some(items) = layer.raw.devices.as_ref().and_then(|d| d.allow.as_ref()) else {
            continue;
        };
        for item in items {
            let (negated, name) = match item.get_ref().strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, item.get_ref().as_str()),
            };
            let Some((class, _)) = CLASSES.iter().find(|(c, _)| *c == name) else {
                let names: Vec<&str> = CLASSES.iter().map(|(c, _)| *c).collect();
                return Err(Diagnostic::new(format!(
                    "key `devices.allow`: unknown device class {:?}",
                    item.get_ref()
                ))
                .at(&layer.file, item.span())
                .help(format!(
                    "the classes are {}; `!NAME` takes back one granted by a profile this one extends",
                    names.join(", ")
                ))
                .into());
            };
            classes.retain(|a| a.class != *class);
            if !negated {
                classes.push(Asked {
                    class,
                    file: &layer.file,
                    span: item.span(),
                });
            }
        }
    }
    Ok(classes)
}

/// Plans `[devices]`: the grants and their mounts (to go after the `dev`
/// mount, which stays writable until every entry is in place).
pub fn plan(
    profile: &Profile,
    host: &Host,
) -> Result<Option<(DevicesPlan, Vec<PlannedMount>)>, ProfileError> {
    if !profile.layers.iter().any(|l| l.raw.devices.is_some()) {
        return Ok(None);
    }
    let need = profile
        .last(|p| p.devices.as_ref()?.enforce.as_ref())
        .map_or(Need::Required, |a| *a.get());
    let mut plan = DevicesPlan::default();
    let mut ops = Vec::new();
    for asked in requested(profile)? {
        let class = asked.class;
        let from = asked.origin();
        let nodes = host_nodes(host, class);
        if nodes.is_empty() {
            let why = match class {
                "video" => {
                    "device class `video`: there is no /dev/video* or /dev/media* on this machine"
                        .to_string()
                }
                c => format!(
                    "device class `{c}`: {} does not exist on this machine",
                    node_path(c).display()
                ),
            };
            if need == Need::BestEffort {
                plan.skipped.push(why);
                continue;
            }
            return Err(Diagnostic::new(why)
                .at(asked.file, asked.span.clone())
                .help("load its driver, remove the class from `[devices] allow`, or set `[devices] enforce = \"best-effort\"` to run without it")
                .into());
        }
        let mut grant = Grant {
            class: class.to_string(),
            nodes: nodes.clone(),
            sysfs: Vec::new(),
        };
        for node in nodes {
            ops.push(PlannedMount {
                op: MountOp::Bind {
                    src: node.clone(),
                    dst: node,
                    readonly: true,
                    devices: true,
                },
                from: from.clone(),
                lands: None,
            });
        }
        if class == "dri" {
            gpu_sysfs(host, &from, &mut grant, &mut ops);
        }
        plan.granted.push(grant);
    }
    Ok(Some((plan, ops)))
}

fn node_path(class: &str) -> PathBuf {
    PathBuf::from(match class {
        "dri" => "/dev/dri",
        "snd" => "/dev/snd",
        "input" => "/dev/input",
        "fuse" => "/dev/fuse",
        "kvm" => "/dev/kvm",
        _ => "/dev",
    })
}

/// The host paths a class binds (empty: none here).
fn host_nodes(host: &Host, class: &str) -> Vec<PathBuf> {
    if class == "video" {
        let Ok(dir) = std::fs::read_dir(host.fs_path(Path::new("/dev"))) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let number = name
                    .strip_prefix("video")
                    .or_else(|| name.strip_prefix("media"))?;
                (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| Path::new("/dev").join(name))
            })
            .collect();
        found.sort();
        return found;
    }
    let path = node_path(class);
    if std::fs::symlink_metadata(host.fs_path(&path)).is_ok() {
        vec![path]
    } else {
        Vec::new()
    }
}

/// The sysfs entries of each GPU node in /dev/dri (see the module's doc).
fn gpu_sysfs(host: &Host, from: &str, grant: &mut Grant, ops: &mut Vec<PlannedMount>) {
    let Ok(dir) = std::fs::read_dir(host.fs_path(Path::new("/dev/dri"))) else {
        return;
    };
    let mut numbers: Vec<(u32, u32)> = dir
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.file_type()
                .is_char_device()
                .then(|| (libc::major(m.rdev()), libc::minor(m.rdev())))
        })
        .collect();
    numbers.sort_unstable();
    let mut dirs = Vec::new();
    for (major, minor) in numbers {
        let Some(s) = sysfs_of(host, major, minor) else {
            continue;
        };
        let mut add = |op| {
            ops.push(PlannedMount {
                op,
                from: from.to_string(),
                lands: None,
            })
        };
        if !grant.sysfs.contains(&s.device) {
            add(MountOp::Bind {
                src: s.device.clone(),
                dst: s.device.clone(),
                readonly: true,
                devices: false,
            });
            grant.sysfs.push(s.device);
        }
        add(MountOp::Symlink {
            target: s.link_target,
            dst: s.link,
        });
        if !dirs.contains(&s.subsystem) {
            add(MountOp::Dir {
                dst: s.subsystem.clone(),
                mode: 0o755,
            });
            dirs.push(s.subsystem);
        }
    }
}

/// Where sysfs describes the character device `major:minor`.
#[derive(Debug, PartialEq, Eq)]
struct Sysfs {
    /// `/sys/dev/char/MAJ:MIN`.
    link: PathBuf,
    /// What that link says (relative to /sys/dev/char).
    link_target: PathBuf,
    /// The device's directory (what the node's `device` link names).
    device: PathBuf,
    /// What the device's `subsystem` link names (`/sys/bus/pci`).
    subsystem: PathBuf,
}

fn sysfs_of(host: &Host, major: u32, minor: u32) -> Option<Sysfs> {
    let link = PathBuf::from(format!("/sys/dev/char/{major}:{minor}"));
    let read = |p: &Path| std::fs::read_link(host.fs_path(p)).ok();
    let link_target = read(&link)?;
    let node = resolve_lexically(&link.parent()?.join(&link_target))?;
    let device = resolve_lexically(&node.join(read(&node.join("device"))?))?;
    let subsystem = resolve_lexically(&device.join(read(&device.join("subsystem"))?))?;
    // Only what lies in sysfs's device tree and bus list.
    (device.starts_with("/sys/devices/") && subsystem.starts_with("/sys/bus/")).then_some(Sysfs {
        link,
        link_target,
        device,
        subsystem,
    })
}

/// `--explain`'s lines for `[devices]`.
pub fn explain(d: &DevicesPlan) -> String {
    let mut o = String::from(
        "devices     read-only mounts with device nodes usable; Landlock: read, write, ioctl\n",
    );
    for g in &d.granted {
        let nodes: Vec<String> = g.nodes.iter().map(|n| n.display().to_string()).collect();
        o.push_str(&format!(
            "  {:<9} {}\n",
            sanitize(&g.class),
            sanitize(&nodes.join(" "))
        ));
        for s in &g.sysfs {
            o.push_str(&format!(
                "  {:<9} sysfs {} (read-only)\n",
                "",
                sanitize(&s.display().to_string())
            ));
        }
    }
    for s in &d.skipped {
        o.push_str(&format!("  skipped   {}\n", sanitize(s)));
    }
    o
}

/// `-v`'s line for `[devices]`.
pub fn summary(d: &DevicesPlan) -> String {
    let classes: Vec<&str> = d.granted.iter().map(|g| g.class.as_str()).collect();
    let mut out = format!(
        "hutch: devices: {}",
        if classes.is_empty() {
            "none".to_string()
        } else {
            sanitize(&classes.join(", "))
        }
    );
    for s in &d.skipped {
        out.push_str(&format!("\nhutch: skipped (best-effort): {}", sanitize(s)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn plan_with(allow: &str, enforce: &str) -> Result<crate::plan::Plan, String> {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("dev/snd")).unwrap();
        std::fs::write(r.join("dev/video0"), "").unwrap();
        std::fs::write(r.join("dev/media1"), "").unwrap();
        std::fs::create_dir_all(r.join("profiles")).unwrap();
        std::fs::write(
            r.join("profiles/p.toml"),
            format!("version = 1\n[[mount]]\ntype = \"dev\"\ndst = \"/dev\"\n[devices]\nallow = {allow}\n{enforce}"),
        )
        .unwrap();
        let dirs = r.join("profiles").display().to_string();
        let host = Host::fixed(1000, 1000, &[("HUTCH_PROFILE_PATH", &dirs)], "/").with_fs_root(r);
        let profile = crate::profile::load(
            &crate::profile::ProfileRef::Name("p".into()),
            &crate::profile::SearchPath::standard(&host),
        )
        .map_err(|e| e.to_string())?;
        let request = crate::plan::Request {
            command: vec!["x".into()],
            command_optional: false,
            image: None,
        };
        crate::plan::build(&profile, &host, &request).map_err(|e| e.to_string())
    }

    #[test]
    fn classes_become_read_only_device_binds_after_dev() {
        let plan = plan_with("[\"snd\", \"video\"]", "").unwrap();
        let binds: Vec<(String, bool, bool)> = plan
            .mounts
            .iter()
            .filter_map(|m| match &m.op {
                MountOp::Bind {
                    dst,
                    readonly,
                    devices,
                    ..
                } => Some((dst.display().to_string(), *readonly, *devices)),
                _ => None,
            })
            .collect();
        assert_eq!(
            binds,
            [
                ("/dev/snd".into(), true, true),
                ("/dev/media1".into(), true, true),
                ("/dev/video0".into(), true, true),
            ]
        );
        assert!(
            matches!(plan.mounts[0].op, MountOp::Dev { .. }),
            "after the dev mount"
        );
        // Landlock: read, write and ioctl on them, nothing more.
        let ll = &plan.security.landlock;
        let snd = ll
            .fs_rules
            .iter()
            .find(|r| r.path == Path::new("/dev/snd"))
            .unwrap();
        use crate::landlock::access;
        assert_eq!(
            snd.access,
            access::READ | access::WRITE_FILE | access::IOCTL_DEV
        );
    }

    #[test]
    fn missing_classes_are_errors_or_skips_and_can_be_taken_back() {
        let err = plan_with("[\"kvm\"]", "").unwrap_err();
        assert!(
            err.contains("device class `kvm`: /dev/kvm does not exist"),
            "{err}"
        );
        let plan = plan_with("[\"kvm\", \"snd\"]", "enforce = \"best-effort\"\n").unwrap();
        let d = plan.devices.unwrap();
        assert_eq!(d.granted.len(), 1);
        assert_eq!(d.skipped.len(), 1);
        let plan = plan_with("[\"snd\", \"kvm\", \"!kvm\"]", "").unwrap();
        assert_eq!(plan.devices.unwrap().granted[0].class, "snd");
    }

    #[test]
    fn sysfs_of_a_gpu_node_is_its_device_and_subsystem() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let card = r.join("sys/devices/pci0000:00/0000:00:02.0/drm/card0");
        std::fs::create_dir_all(&card).unwrap();
        std::fs::create_dir_all(r.join("sys/bus/pci")).unwrap();
        std::fs::create_dir_all(r.join("sys/dev/char")).unwrap();
        symlink(
            "../../devices/pci0000:00/0000:00:02.0/drm/card0",
            r.join("sys/dev/char/226:0"),
        )
        .unwrap();
        symlink("../../../0000:00:02.0", card.join("device")).unwrap();
        symlink(
            "../../../bus/pci",
            r.join("sys/devices/pci0000:00/0000:00:02.0/subsystem"),
        )
        .unwrap();
        let host = Host::fixed(1000, 1000, &[], "/").with_fs_root(r);
        assert_eq!(
            sysfs_of(&host, 226, 0),
            Some(Sysfs {
                link: "/sys/dev/char/226:0".into(),
                link_target: "../../devices/pci0000:00/0000:00:02.0/drm/card0".into(),
                device: "/sys/devices/pci0000:00/0000:00:02.0".into(),
                subsystem: "/sys/bus/pci".into(),
            })
        );
        assert_eq!(sysfs_of(&host, 226, 1), None);
        // A link leading out of the device tree is not followed.
        symlink("../../../../etc", r.join("sys/dev/char/226:2")).unwrap();
        assert_eq!(sysfs_of(&host, 226, 2), None);
    }
}
