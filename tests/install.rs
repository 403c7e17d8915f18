//! packaging/install.sh, the layout every package uses: what it installs
//! where, that `--list` names exactly that, that the locations can be
//! changed or left out one by one, and that the installed hutch finds the
//! installed profiles and prints the installed schema and completions.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn install(dest: &Path, vars: &[&str]) -> std::process::Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/install.sh"))
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_hutch"))
        .arg(format!("DESTDIR={}", dest.display()))
        .args(vars)
        .output()
        .unwrap()
}

fn listed(vars: &[&str]) -> BTreeSet<String> {
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/install.sh"))
        .arg("--list")
        .args(vars)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn files_below(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(format!("/{}", p.strip_prefix(root).unwrap().display()));
            }
        }
    }
    out
}

#[test]
fn the_layout_of_a_package() {
    let dest = tempfile::tempdir().unwrap();
    let vars = ["PREFIX=/usr"];
    let out = install(dest.path(), &vars);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = files_below(dest.path());
    assert_eq!(files, listed(&vars), "--list names what is installed");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut expected = vec![
        "/usr/bin/hutch".to_string(),
        "/usr/share/hutch/profiles/cli.toml".into(),
        "/usr/share/hutch/profiles/base/system.toml".into(),
        "/usr/share/hutch/hutch-profile.schema.json".into(),
        "/usr/share/man/man5/hutch-profile.5".into(),
        "/usr/share/bash-completion/completions/hutch".into(),
        "/usr/share/zsh/site-functions/_hutch".into(),
        "/usr/share/fish/vendor_completions.d/hutch.fish".into(),
        "/usr/share/doc/hutch/README.md".into(),
        "/usr/share/doc/hutch/CHANGELOG.md".into(),
        "/usr/share/licenses/hutch/LICENSE-MIT".into(),
        "/usr/share/licenses/hutch/LICENSE-APACHE".into(),
        "/etc/apparmor.d/hutch".into(),
    ];
    for (page, _) in hutch::manpages::PAGES {
        let section = page.rsplit('.').next().unwrap();
        expected.push(format!("/usr/share/man/man{section}/{page}"));
    }
    for f in &expected {
        assert!(files.contains(f), "{f} not installed: {files:#?}");
    }
    let bin = dest.path().join("usr/bin/hutch");
    let run = |args: &[&str]| {
        let out = Command::new(&bin)
            .args(args)
            .env(
                "HUTCH_PROFILE_PATH",
                dest.path().join("usr/share/hutch/profiles"),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let installed = |p: &str| std::fs::read_to_string(dest.path().join(p)).unwrap();
    assert!(
        run(&["profiles"]).contains(&format!(
            "{}",
            dest.path()
                .join("usr/share/hutch/profiles/cli.toml")
                .display()
        )),
        "the installed profiles are found"
    );
    assert_eq!(
        run(&["schema"]),
        installed("usr/share/hutch/hutch-profile.schema.json")
    );
    assert_eq!(
        run(&["completions", "bash"]),
        installed("usr/share/bash-completion/completions/hutch")
    );
    assert_eq!(
        run(&["man", "hutch-profile"]),
        installed("usr/share/man/man5/hutch-profile.5")
    );
    assert_eq!(
        installed("etc/apparmor.d/hutch"),
        std::fs::read_to_string(root.join("packaging/apparmor/hutch")).unwrap()
    );
}

#[test]
fn each_location_can_be_moved_or_left_out() {
    let dest = tempfile::tempdir().unwrap();
    let vars = [
        "PREFIX=/opt/h",
        "ZSHCOMPDIR=/usr/share/zsh/vendor-completions",
        "SYSCONFDIR=/opt/etc",
        "LICENSEDIR=",
    ];
    let out = install(dest.path(), &vars);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = files_below(dest.path());
    assert_eq!(files, listed(&vars));
    assert!(files.contains("/opt/h/bin/hutch"));
    assert!(files.contains("/usr/share/zsh/vendor-completions/_hutch"));
    assert!(files.contains("/opt/etc/apparmor.d/hutch"));
    assert!(!files.iter().any(|f| f.contains("licenses")), "{files:#?}");
    let none = listed(&["PREFIX=/usr", "APPARMORDIR="]);
    assert!(!none.iter().any(|f| f.contains("apparmor")), "{none:#?}");
    let bad = install(dest.path(), &["NOT_A_DIR=/x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown variable NOT_A_DIR"));
}
