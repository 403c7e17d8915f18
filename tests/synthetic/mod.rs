//! A fixed, synthetic machine for tests of the pure stages (profile →
//! plan → `--explain`): its filesystem is a tree made here, and its host
//! (caller, environment, kernel) is fixed, so that a plan taken on it does
//! not depend on the machine the tests run on.
//!
//! Shared by tests/explain.rs, tests/profile_fuzz.rs (and through it
//! fuzz/afl/). Only public entry points are used: `Host::fixed` and its
//! `with_*` constructors, `profile::load`, `plan::build`.
#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use hutch::host::Host;
use hutch::host::cgroups::CgroupHost;
use hutch::host::cgroups::{CgroupDir, V2Host};
use hutch::image::{ImageInfo, ImageRunConfig};
use hutch::plan::{self, ImageRequest, Plan, Request};
use hutch::profile::{self, Profile, ProfileError, ProfileRef, SearchPath};

/// The caller on the synthetic machine.
pub const UID: u32 = 1000;
pub const GID: u32 = 1000;
pub const HOME: &str = "/home/u";
pub const CWD: &str = "/home/u/project";
/// The Landlock ABI of the synthetic kernel (every erratum fixed).
pub const LANDLOCK_ABI: u32 = 7;

/// A machine whose root is `root`: merged /usr (bin, sbin, lib, lib64 are
/// symlinks into it; no lib32) with an empty /usr/bin/pasta, /etc (its
/// resolv.conf a symlink into /run), user `u`'s home with a project
/// directory (holding a resolv.conf), the two layers of an image, and `profiles/`, the only
/// directory of the profile search path (empty unless a test writes there).
pub struct Machine {
    root: PathBuf,
    /// Removes `root` when dropped, if this machine made it.
    owned: Option<tempfile::TempDir>,
}

impl Machine {
    /// A machine in a new temporary directory.
    pub fn new() -> Machine {
        let dir = tempfile::Builder::new()
            .prefix("hutch-machine-")
            .tempdir()
            .unwrap();
        let mut m = Machine::at(dir.path());
        m.owned = Some(dir);
        m
    }

    /// A machine in `root`, made there if it is not yet (idempotent: a
    /// fuzzer's forked children share one).
    pub fn at(root: &Path) -> Machine {
        for d in [
            "usr/bin",
            "usr/sbin",
            "usr/lib",
            "usr/lib64",
            "etc",
            "home/u/project",
            "home/u/project/.git/hooks",
            "home/u/.ssh",
            "profiles",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for (link, target) in [
            ("bin", "usr/bin"),
            ("sbin", "usr/sbin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
        ] {
            if std::fs::symlink_metadata(root.join(link)).is_err() {
                symlink(target, root.join(link)).unwrap();
            }
        }
        // pasta, so that `[network] mode = "user"` plans (never run here).
        let pasta = root.join("usr/bin/pasta");
        if !pasta.exists() {
            std::fs::write(&pasta, "").unwrap();
            std::fs::set_permissions(&pasta, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        // A repository in the project: `[protect]` makes its config and
        // hooks read-only under a writable bind.
        std::fs::write(root.join("home/u/project/.git/config"), "[core]\n").unwrap();
        // /etc/resolv.conf as systemd-resolved makes it: a symlink into
        // /run (a destination there lands in /run: tests/explain).
        if std::fs::symlink_metadata(root.join("etc/resolv.conf")).is_err() {
            symlink(
                "../run/systemd/resolve/stub-resolv.conf",
                root.join("etc/resolv.conf"),
            )
            .unwrap();
        }
        std::fs::write(root.join("home/u/project/resolv.conf"), "nameserver ::1\n").unwrap();
        for (layer, file, text) in [
            ("layers/1/etc", "passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("layers/2/srv", "README", "hello\n"),
        ] {
            std::fs::create_dir_all(root.join(layer)).unwrap();
            std::fs::write(root.join(layer).join(file), text).unwrap();
        }
        Machine {
            root: root.to_path_buf(),
            owned: None,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the profile search path.
    pub fn profiles(&self) -> PathBuf {
        self.root.join("profiles")
    }

    /// The caller: uid 1000 in /home/u/project, a fixed environment, the
    /// machine's tree as the filesystem bind sources are looked up in, a
    /// kernel with Landlock ABI 7 and every erratum fixed, standard input
    /// not a terminal, and a cgroup v2 hierarchy with a delegated subtree
    /// (cpu, memory, pids; no io; no D-Bus), so that nothing is probed.
    pub fn host(&self) -> Host {
        let profiles = self.profiles();
        Host::fixed(
            UID,
            GID,
            &[
                ("HOME", HOME),
                ("USER", "u"),
                ("LANG", "C.UTF-8"),
                ("TERM", "xterm"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
                ("HUTCH_PROFILE_PATH", profiles.to_str().unwrap()),
            ],
            CWD,
        )
        .with_fs_root(&self.root)
        .with_landlock_abi(LANDLOCK_ABI)
        .with_stdin_tty(false)
        .with_cgroups(cgroups())
    }

    /// An image `app:latest` of the machine's two layers, as `--image`
    /// (`from_cli`) or as a profile's `image = ` would lease it.
    pub fn image(&self, from_cli: bool) -> ImageRequest {
        let layers = ["layers/1", "layers/2"]
            .iter()
            .map(|l| self.root.join(l))
            .collect();
        ImageRequest {
            info: ImageInfo {
                name: "app:latest".into(),
                manifest_digest: None,
                config_digest: format!("sha256:{}", "ab".repeat(32)),
                architecture: "amd64".into(),
                os: "linux".into(),
                variant: None,
                created: None,
                imported_at: 0,
                size: 0,
                unpacked_size: None,
                layer_digests: Vec::new(),
                layers,
                config: ImageRunConfig {
                    entrypoint: vec!["/bin/sh".into(), "-c".into()],
                    cmd: vec!["echo hello".into()],
                    env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()],
                    working_dir: Some("/srv/app".into()),
                    user: None,
                },
            },
            from_cli,
        }
    }

    /// Loads a profile by name or path, as `hutch run --profile` does.
    pub fn load(&self, host: &Host, r: &ProfileRef) -> Result<Profile, ProfileError> {
        profile::load(r, &SearchPath::standard(host))
    }

    /// The plan of `hutch run --profile NAME [--image app:latest] -- /bin/sh
    /// -c 'echo hello'`.
    pub fn plan(&self, name: &str, image: bool) -> Result<Plan, ProfileError> {
        let host = self.host();
        let profile = self.load(&host, &ProfileRef::Name(name.into()))?;
        let request = if image {
            Request {
                command: Vec::new(),
                command_optional: false,
                image: Some(self.image(true)),
            }
        } else {
            Request {
                command: vec!["/bin/sh".into(), "-c".into(), "echo hello".into()],
                command_optional: false,
                image: None,
            }
        };
        plan::build(&profile, &host, &request)
    }
}

/// cgroup v2, unified, hutch started in a delegated subtree of the user's
/// (cpu, memory and pids; io not delegated); no D-Bus, so no systemd scope.
fn cgroups() -> CgroupHost {
    let controllers: Vec<String> = ["cpu", "memory", "pids"].map(String::from).to_vec();
    let delegated = CgroupDir {
        path: "/user.slice/user-1000.slice/user@1000.service/app.slice".into(),
        controllers: controllers.clone(),
        subtree: controllers,
        writable: true,
    };
    CgroupHost {
        uid: UID,
        v2: Some(V2Host {
            mount: "/sys/fs/cgroup".into(),
            unified: true,
            own: format!("{}/shell.scope", delegated.path),
            parent: Some(delegated.clone()),
            top: delegated,
            user_manager: None,
        }),
        v2_missing: None,
        v1: Vec::new(),
        bus: None,
        bus_missing: Some("DBUS_SESSION_BUS_ADDRESS is not set (synthetic machine)".into()),
    }
}
