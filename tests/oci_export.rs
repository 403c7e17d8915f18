//! `hutch export oci` as a pure function of the plan: the bundle of every
//! shipped profile, planned on a fixed synthetic machine (its filesystem a
//! tree made here, so nothing depends on this machine's /bin or /lib), is
//! compared with its snapshot in tests/oci-export/ (regenerate with
//! `HUTCH_BLESS=1 cargo test --test oci_export`) and validated against the
//! JSON Schema of the runtime-spec release the export targets (v1.1.0,
//! vendored from opencontainers/runtime-spec at that tag in
//! tests/oci-runtime-spec/v1.1.0/).

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use hutch::export::oci::{self, Export, GapKind, RootContent, RootEntry};
use hutch::host::Host;
use hutch::image::{ImageInfo, ImageRunConfig};
use hutch::plan::{self, ImageRequest, Request};
use hutch::profile::load::{BUILTIN, SearchPath};
use hutch::profile::{self, ProfileRef};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A machine with merged /usr, user `u` (1000:1000) working in
/// /home/u/project, and an image of two layers; and a desktop session for
/// the desktop building blocks: an X display :0 with a cookie, a Wayland
/// compositor (which lists no globals), a PulseAudio socket and /dev/dri.
struct Machine {
    root: tempfile::TempDir,
    _sockets: Vec<std::os::unix::net::UnixListener>,
}

/// Answers the planner's question to the compositor (get_registry, sync)
/// with an empty list of globals, on every connection.
fn fake_compositor(listener: std::os::unix::net::UnixListener) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut requests = [0u8; 24];
            if conn.read_exact(&mut requests).is_err() {
                continue;
            }
            let callback = u32::from_ne_bytes(requests[20..24].try_into().unwrap());
            let mut done = callback.to_ne_bytes().to_vec();
            done.extend_from_slice(&(12u32 << 16).to_ne_bytes());
            done.extend_from_slice(&0u32.to_ne_bytes());
            let _ = conn.write_all(&done);
        }
    });
}

impl Machine {
    fn new() -> Machine {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in [
            "usr/bin",
            "usr/sbin",
            "usr/lib",
            "usr/lib64",
            "etc",
            "home/u/project",
            "home/u/project/.git/hooks",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        // A repository: base/sensitive binds its configuration (a file)
        // and hooks (a directory) read-only wherever the project is bound.
        std::fs::write(r.join("home/u/project/.git/config"), "[core]\n").unwrap();
        // The program `[network] mode = "user"` starts (never here).
        std::fs::write(r.join("usr/bin/pasta"), "").unwrap();
        std::fs::set_permissions(
            r.join("usr/bin/pasta"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        for (link, target) in [
            ("bin", "usr/bin"),
            ("sbin", "usr/sbin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
        ] {
            symlink(target, r.join(link)).unwrap();
        }
        for (layer, file, text) in [
            ("layers/1/etc", "passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("layers/2/srv", "README", "hello\n"),
        ] {
            std::fs::create_dir_all(r.join(layer)).unwrap();
            std::fs::write(r.join(layer).join(file), text).unwrap();
        }
        for d in ["tmp/.X11-unix", "run/user/1000/pulse", "dev/dri"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        // One wildcard MIT-MAGIC-COOKIE-1 entry for display 0.
        std::fs::write(
            r.join("home/u/.Xauthority"),
            hutch::xauth::encode_wild("0", &[7; 16]),
        )
        .unwrap();
        let bind = |p: &str| std::os::unix::net::UnixListener::bind(r.join(p)).unwrap();
        let wayland = bind("run/user/1000/wayland-0");
        fake_compositor(wayland.try_clone().unwrap());
        let sockets = vec![
            bind("tmp/.X11-unix/X0"),
            bind("run/user/1000/pulse/native"),
            bind("run/user/1000/bus"),
            wayland,
        ];
        // The programs `x11 = "nested"` and `[dbus]` start (never here).
        for program in ["usr/bin/Xephyr", "usr/bin/xdg-dbus-proxy"] {
            std::fs::write(r.join(program), "").unwrap();
            std::fs::set_permissions(
                r.join(program),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
        }
        Machine {
            root,
            _sockets: sockets,
        }
    }

    fn host(&self) -> Host {
        let fixed = Host::fixed(
            1000,
            1000,
            &[
                ("HOME", "/home/u"),
                ("USER", "u"),
                ("LANG", "C.UTF-8"),
                ("TERM", "xterm"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
                ("DISPLAY", ":0"),
                ("WAYLAND_DISPLAY", "wayland-0"),
                // Only the built-in profiles.
                ("HUTCH_PROFILE_PATH", "/nonexistent/hutch-profiles"),
            ],
            "/home/u/project",
        )
        .with_fs_root(self.root.path());
        hutch::export::target_host(fixed)
    }

    fn image(&self) -> ImageRequest {
        let layers: Vec<PathBuf> = ["layers/1", "layers/2"]
            .iter()
            .map(|l| self.root.path().join(l))
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
            from_cli: true,
        }
    }

    /// The export of a shipped profile: `container` with the image, the
    /// others with a command.
    fn export(&self, name: &str) -> Export {
        let host = self.host();
        let profile = profile::load(&ProfileRef::Name(name.into()), &SearchPath::standard(&host))
            .map_err(|e| e.0.render())
            .unwrap();
        let request = if name == "container" {
            Request {
                command: Vec::new(),
                command_optional: false,
                image: Some(self.image()),
            }
        } else {
            Request {
                command: vec!["/bin/sh".into(), "-c".into(), "echo hello".into()],
                command_optional: false,
                image: None,
            }
        };
        let plan = plan::build(&profile, &host, &request)
            .map_err(|e| e.0.render())
            .unwrap();
        oci::export(&plan, &host).unwrap()
    }
}

fn snapshot_path(profile: &str) -> PathBuf {
    manifest_dir()
        .join("tests/oci-export")
        .join(format!("{}.config.json", profile.replace('/', "-")))
}

#[test]
fn every_shipped_profile_matches_its_snapshot() {
    let machine = Machine::new();
    let bless = std::env::var_os("HUTCH_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, _) in BUILTIN {
        let json = hutch::export::bundle::pretty(&machine.export(name).config);
        let path = snapshot_path(name);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &json).unwrap();
        }
        if std::fs::read_to_string(&path).unwrap_or_default() != json {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; check the difference, then run `HUTCH_BLESS=1 cargo test --test oci_export`"
    );
}

/// The runtime-spec's config schema, compiled once.
fn schema() -> (boon::Schemas, boon::SchemaIndex) {
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let path = manifest_dir().join("tests/oci-runtime-spec/v1.1.0/config-schema.json");
    let index = compiler
        .compile(path.to_str().unwrap(), &mut schemas)
        .unwrap_or_else(|e| panic!("{e:#}"));
    (schemas, index)
}

#[test]
fn every_shipped_profile_is_valid_against_the_runtime_spec_schema() {
    let machine = Machine::new();
    let (schemas, index) = schema();
    for (name, _) in BUILTIN {
        let config = serde_json::to_value(machine.export(name).config).unwrap();
        if let Err(e) = schemas.validate(&config, index) {
            panic!("profile {name}: {e:#}");
        }
    }
}

#[test]
fn the_schema_check_is_not_vacuous() {
    let machine = Machine::new();
    let (schemas, index) = schema();
    let good = serde_json::to_value(machine.export("cli").config).unwrap();
    assert!(schemas.validate(&good, index).is_ok());
    let broken: [(&str, serde_json::Value); 4] = [
        ("/process/user/uid", serde_json::json!(-1)),
        (
            "/linux/seccomp/defaultAction",
            serde_json::json!("SCMP_ACT_MAYBE"),
        ),
        ("/mounts/0/destination", serde_json::json!(7)),
        ("/linux/namespaces/0/type", serde_json::json!("time-travel")),
    ];
    for (pointer, value) in broken {
        let mut bad = good.clone();
        *bad.pointer_mut(pointer).unwrap() = value;
        assert!(
            schemas.validate(&bad, index).is_err(),
            "{pointer} broken but valid"
        );
    }
}

#[test]
fn what_the_bundle_cannot_express_is_listed_and_annotated() {
    let machine = Machine::new();
    let cli = machine.export("cli");
    let lost: Vec<&str> = cli
        .gaps
        .iter()
        .filter(|g| g.kind == GapKind::Lost)
        .map(|g| g.key.as_str())
        .collect();
    assert_eq!(lost, ["landlock", "init"]);
    let a = &cli.config.annotations;
    for g in &cli.gaps {
        let kind = if g.kind == GapKind::Lost {
            "lost"
        } else {
            "differs"
        };
        assert_eq!(a.get(&format!("org.hutch.{kind}.{}", g.key)), Some(&g.what));
    }
    // The Landlock rules travel in an annotation.
    let ll: serde_json::Value = serde_json::from_str(&a["org.hutch.landlock"]).unwrap();
    assert!(
        ll["fs_rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"] == "/home/u/project"),
        "{ll}"
    );
}

#[test]
fn the_root_is_empty_or_the_image_and_entries_are_made_on_it() {
    let machine = Machine::new();
    let cli = machine.export("cli");
    assert_eq!(cli.root, RootContent::Empty);
    assert!(cli.config.root.readonly);
    // The synthetic machine's merged-/usr links, recreated on the root.
    assert_eq!(
        cli.entries,
        ["bin", "sbin", "lib", "lib64"]
            .map(|l| RootEntry::Symlink {
                path: Path::new("/").join(l),
                target: Path::new("usr").join(l),
            })
            .to_vec()
    );
    let container = machine.export("container");
    let RootContent::Layers(layers) = &container.root else {
        panic!("{:?}", container.root);
    };
    assert!(layers[0].ends_with("layers/1") && layers[1].ends_with("layers/2"));
    assert!(
        !container.config.root.readonly,
        "the image's tmpfs layer is writable"
    );
    assert!(
        container
            .gaps
            .iter()
            .any(|g| g.key == "root.writable" && g.kind == GapKind::Lost)
    );
    assert_eq!(
        container.entries,
        [RootEntry::Dir {
            path: "/srv/app".into(),
            mode: 0o755
        }]
    );
    assert_eq!(container.config.process.cwd, "/srv/app");
    assert_eq!(
        container.config.process.args,
        ["/bin/sh", "-c", "echo hello"]
    );
    assert_eq!(container.config.process.user.uid, 0);
    assert_eq!(container.config.linux.uid_mappings[0].host_id, 1000);
}

// ---- The command: `hutch export oci` as the unprivileged test user ----------

#[test]
fn export_writes_a_bundle_and_says_what_it_lacks() {
    let s = common::Scratch::new();
    // The volume store below the working directory (`cli` refuses one that
    // holds the home, so XDG_DATA_HOME puts it there).
    let data = s.path().join("data");
    let out = s
        .hutch(&["export", "oci", "--profile", "cli", "--", "true"])
        .env("XDG_DATA_HOME", &data)
        .output()
        .unwrap();
    assert_eq!(common::ok(&out).trim(), "cli-oci", "the default directory");
    let err = common::stderr(&out);
    assert!(
        err.contains("hutch: not in the bundle: landlock: "),
        "{err}"
    );
    assert!(
        err.contains("hutch: differs in the bundle: seccomp.x32: "),
        "{err}"
    );
    let b = s.path().join("cli-oci");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["args"], serde_json::json!(["true"]));
    assert_eq!(config["process"]["cwd"], s.path().display().to_string());
    let seccomp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("seccomp.json")).unwrap()).unwrap();
    assert_eq!(seccomp, config["linux"]["seccomp"]);
    assert!(b.join("rootfs").is_dir());
    // The volume store, below the bound working directory, is hidden, though
    // it did not exist: the export made it, so that it is masked.
    let store = data.join("hutch/volumes");
    assert!(store.is_dir());
    let masks: Vec<&serde_json::Value> = config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] == store.display().to_string())
        .collect();
    assert_eq!(masks.len(), 1, "{:#}", config["mounts"]);
    assert_eq!(masks[0]["type"], "tmpfs");
    // A second export into the same directory is refused, and changes nothing.
    let again = s
        .hutch(&[
            "export",
            "oci",
            "--profile",
            "default",
            "-o",
            "cli-oci",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    common::fails_with(&again, 125, "cli-oci exists and is not an empty directory");
    assert_eq!(
        common::stderr(&again)
            .lines()
            .filter(|l| !l.starts_with("hutch: not in") && !l.starts_with("hutch: differs"))
            .count(),
        1
    );
    let unchanged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(unchanged, config);
}

#[test]
fn strict_refuses_what_would_be_lost_and_writes_nothing() {
    let s = common::Scratch::new();
    let out = s
        .hutch(&[
            "export",
            "oci",
            "--strict",
            "--profile",
            "cli",
            "-o",
            "b",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    common::fails_with(
        &out,
        125,
        "hutch: --strict: the bundle would lose landlock, init (listed above); nothing was written",
    );
    assert!(!s.path().join("b").exists());
    // A profile that gives up what OCI cannot carry passes.
    let p = s.write(
        "portable.toml",
        "version = 1\nextends = [\"cli\"]\ninit = false\n[landlock]\nfs = \"off\"\nscope = \"off\"\n",
    );
    let out = s
        .hutch(&[
            "export",
            "oci",
            "--strict",
            "--profile",
            p.to_str().unwrap(),
            "-o",
            "b",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    common::ok(&out);
    assert!(s.path().join("b/config.json").is_file());
}

#[test]
fn failures_are_one_line_with_status_125() {
    let s = common::Scratch::new();
    let out = s
        .hutch(&["export", "oci", "--image", "nosuch"])
        .output()
        .unwrap();
    common::fails_with(&out, 125, "hutch: ");
    assert_eq!(
        common::stderr(&out).lines().count(),
        1,
        "{}",
        common::stderr(&out)
    );
    let out = s
        .hutch(&["export", "oci", "--profile", "cli"])
        .output()
        .unwrap();
    common::fails_with(&out, 125, "no command to run");
    let out = s
        .hutch(&["export", "oci", "--profile", "nosuch", "--", "true"])
        .output()
        .unwrap();
    common::fails_with(&out, 125, "nosuch");
    assert!(!s.path().join("nosuch-oci").exists() && !s.path().join("cli-oci").exists());
}
