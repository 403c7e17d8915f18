//! From a resolved firejail profile to a hutch profile and a report: every
//! directive in force goes through the table (`table.rs`); paths through
//! `mounts.rs`, the system call filter through `seccomp.rs`.

use std::path::Path;

use super::draft::{Draft, Listed, Valued};
use super::env::Env;
use super::mounts::{self, cite};
use super::paths::Fs;
use super::report::{Outcome, Report, Verdict, Withheld};
use super::seccomp;
use super::source::{self, Profile, ReadError};
use super::table::{self, DEFAULT_GRANTS, Handler, Rule, Switch};
use super::view::View;

/// An imported profile.
pub struct Imported {
    pub profile: Profile,
    pub view: View,
    pub draft: Draft,
    pub report: Report,
}

/// Reads the firejail profile `file` and translates it.
pub fn import(file: &Path, env: &Env, fs: &Fs) -> Result<Imported, ReadError> {
    let profile = source::read(file, env, fs)?;
    let view = View::compute(&profile, env, fs);
    let fsr = mounts::build(&profile, &view, env, fs);
    let mut t = Translator {
        profile: &profile,
        env,
        draft: Draft {
            mounts: fsr.mounts,
            ..Draft::default()
        },
        outcomes: vec![None; profile.directives.len()],
        withheld: fsr.withheld,
    };
    for (id, o) in fsr.outcomes {
        t.outcomes[id] = Some(o);
    }
    t.directives();
    t.seccomp();
    t.default_grants();
    let outcomes: Vec<Outcome> = t
        .outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::new(Verdict::Translated, "no effect")))
        .collect();
    let report = Report::build(&profile, &outcomes, t.withheld);
    let mut draft = t.draft;
    draft.description = format!(
        "Imported from firejail's {} profile",
        profile
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    draft.header = header(&profile, &report, env);
    Ok(Imported {
        profile,
        view,
        draft,
        report,
    })
}

fn header(profile: &Profile, report: &Report, env: &Env) -> Vec<String> {
    let c = &report.counts;
    let mut h = vec![
        format!(
            "Written by `hutch import firejail` from {}",
            profile.file.display()
        ),
        format!(
            "and what it includes: {}.",
            report
                .files
                .iter()
                .skip(1)
                .map(|f| Path::new(f)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "Paths and wildcards were resolved for {} on this machine at import:",
            env.home.display()
        ),
        "import again after installing or removing programs, or when the firejail profile changes."
            .into(),
        "Each group of entries says which firejail lines it comes from;".into(),
        "`hutch import firejail --report` says what became of every line.".into(),
        format!(
            "{} directive lines: {} translated, {} stricter, {} not translatable, {} root-only.",
            c.directives(),
            c.translated,
            c.stricter,
            c.not_translatable,
            c.root_only
        ),
    ];
    if h[1] == "and what it includes: ." {
        h.remove(1);
    }
    h
}

struct Translator<'a> {
    profile: &'a Profile,
    env: &'a Env,
    draft: Draft,
    outcomes: Vec<Option<Outcome>>,
    withheld: Vec<Withheld>,
}

impl Translator<'_> {
    fn set(&mut self, id: usize, verdict: Verdict, why: impl Into<String>) {
        self.outcomes[id] = Some(Outcome::new(verdict, why));
    }

    fn directives(&mut self) {
        for id in 0..self.profile.directives.len() {
            if self.outcomes[id].is_some() {
                continue;
            }
            let d = &self.profile.directives[id];
            let (k, arg) = d.split();
            let (k, arg) = (k.to_string(), arg.to_string());
            let Some(entry) = table::lookup(&k, &arg) else {
                self.set(
                    id,
                    Verdict::NotTranslatable,
                    "firejail 0.9.72 does not know this directive (and refuses the profile)",
                );
                continue;
            };
            match entry.rule {
                Rule::Same(why) => self.set(id, Verdict::Translated, why),
                Rule::Stricter(why) => self.set(id, Verdict::Stricter, why),
                Rule::NotTranslatable(why) => self.set(id, Verdict::NotTranslatable, why),
                Rule::RootOnly(why) => self.set(id, Verdict::RootOnly, why),
                Rule::Pending(section, what) => {
                    self.set(
                        id,
                        Verdict::Stricter,
                        format!("withheld: {what}; {}", section.describe()),
                    );
                    let what = format!("{} ({what})", cite(self.profile, id));
                    self.withheld.push(Withheld {
                        what,
                        why: section.describe().into(),
                    });
                }
                Rule::Handle(h) => self.handle(id, h, &k, &arg),
            }
        }
    }

    fn handle(&mut self, id: usize, h: Handler, k: &str, arg: &str) {
        let t = Verdict::Translated;
        match h {
            // Decided together with the whole filter, or by `mounts.rs`.
            Handler::Filesystem
            | Handler::Seccomp
            | Handler::SeccompDrop
            | Handler::SeccompKeep
            | Handler::AllowDebuggers => {}
            Handler::Seccomp32 => self.set(
                id,
                Verdict::Stricter,
                "hutch kills every 32-bit system call on a 64-bit machine; this filter for them is moot",
            ),
            Handler::ErrorAction => self.error_action(id, arg),
            Handler::RestrictNamespaces => {
                let types: Vec<&str> = arg.split(',').filter(|s| !s.is_empty()).collect();
                if types.is_empty() || types.contains(&"user") {
                    self.set(id, t, "hutch's filter denies new user namespaces, and without capabilities the program can make no other kind");
                } else {
                    self.draft.seccomp.nested_userns = Some(cite(self.profile, id));
                    self.set(id, t, "new user namespaces stay allowed, as firejail leaves them; without capabilities the program can make no other kind outside one");
                }
            }
            Handler::MachineId => self.set(
                id,
                Verdict::Stricter,
                "the host's machine-id is hidden (reading it fails) rather than replaced by a new random one at each launch, which hutch cannot do",
            ),
            Handler::Env => self.env_set(id, arg),
            Handler::Rmenv => {
                if crate::plan::env::DEFAULT_KEEP.contains(&arg) {
                    self.draft.env_drop.push(Listed {
                        name: arg.to_string(),
                        comment: cite(self.profile, id),
                    });
                    self.set(id, t, "removed from hutch's keep list");
                } else {
                    self.set(id, t, "hutch does not pass it: the environment is cleared but for a short keep list");
                }
            }
            Handler::Hostname => self.hostname(id, arg),
            Handler::Rlimit => self.rlimit(id, k, arg),
            Handler::PrivateDev => self.private_dev(id),
            Handler::Configurable(s) => self.configurable(id, s),
            Handler::Nice => {
                if arg.trim_start().starts_with('-') {
                    self.set(id, Verdict::RootOnly, "a negative nice value needs CAP_SYS_NICE on the host");
                } else {
                    self.set(id, Verdict::NotTranslatable, "hutch has no nice setting");
                }
            }
            Handler::PrivateCwd => {
                let dir = if arg.is_empty() {
                    "${HOME}".to_string()
                } else {
                    match super::macros::expand(arg, self.env) {
                        Ok(d) if d.starts_with('/') => super::macros::to_hutch(Path::new(&d), self.env),
                        _ => {
                            self.set(id, Verdict::NotTranslatable, "not an absolute directory");
                            return;
                        }
                    }
                };
                self.draft.cwd = Some(Valued {
                    value: dir,
                    comment: cite(self.profile, id),
                });
                self.set(id, t, "the working directory");
            }
        }
    }

    fn configurable(&mut self, id: usize, s: Switch) {
        let c = &self.env.config;
        match s {
            Switch::Tracelog if !c.tracelog => self.set(id, Verdict::Translated, "no effect: `tracelog` is off in firejail.config"),
            Switch::Tracelog => self.set(id, Verdict::NotTranslatable, "hutch does not log attempts to reach hidden paths"),
            Switch::PrivateLib if !c.private_lib => self.set(id, Verdict::Translated, "no effect: `private-lib` is off in firejail.config"),
            Switch::PrivateLib => self.set(id, Verdict::NotTranslatable, "hutch binds /usr whole; it does not build a /usr/lib of the libraries the programs load"),
            Switch::Network => {
                let why = if self.env.network() {
                    table::ROOT_NET_WHY.to_string()
                } else {
                    format!("{}; with `restricted-network yes` in firejail.config, firejail ignores it too for anyone but root", table::ROOT_NET_WHY)
                };
                self.set(id, Verdict::RootOnly, why);
            }
        }
    }

    fn private_dev(&mut self, id: usize) {
        const CLASSES: &[(&str, &str)] = &[
            ("nosound", "sound"),
            ("no3d", "GPU"),
            ("novideo", "video"),
            ("noinput", "input"),
            ("nou2f", "U2F keys"),
            ("nodvd", "DVD"),
            ("notv", "TV"),
        ];
        let on: Vec<&str> = self
            .profile
            .directives
            .iter()
            .map(|d| d.text.as_str())
            .collect();
        let kept: Vec<&str> = CLASSES
            .iter()
            .filter(|(d, _)| !on.contains(d))
            .map(|(_, n)| *n)
            .collect();
        if kept.is_empty() {
            self.set(
                id,
                Verdict::Translated,
                "hutch's /dev is as small as firejail's private one",
            );
        } else {
            self.set(
                id,
                Verdict::Stricter,
                format!(
                    "hutch's /dev is minimal; the devices firejail's private /dev keeps ({}) are withheld: {}",
                    kept.join(", "),
                    table::Section::Desktop.describe()
                ),
            );
        }
    }

    fn error_action(&mut self, id: usize, arg: &str) {
        let c = cite(self.profile, id);
        match arg {
            "kill" => self.draft.seccomp.action = Some(("kill", c)),
            "log" => self.draft.seccomp.action = Some(("log", c)),
            e if crate::bpf::ERRNOS.iter().any(|(n, _)| *n == e) => {
                self.draft.seccomp.errno = Some((e.to_string(), c));
            }
            _ => {
                self.set(id, Verdict::NotTranslatable, "not an errno hutch knows");
                return;
            }
        }
        self.set(id, Verdict::Translated, "what denied calls get");
    }

    fn env_set(&mut self, id: usize, arg: &str) {
        match arg.split_once('=') {
            Some((name, value))
                if !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                self.draft.env_set.push((
                    name.to_string(),
                    value.to_string(),
                    cite(self.profile, id),
                ));
                self.set(id, Verdict::Translated, "set in [env]");
            }
            _ => self.set(id, Verdict::NotTranslatable, "not NAME=VALUE"),
        }
    }

    fn hostname(&mut self, id: usize, arg: &str) {
        let ok = !arg.is_empty()
            && arg.len() <= 64
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !ok {
            self.set(
                id,
                Verdict::NotTranslatable,
                "hutch accepts only letters, digits, `-` and `.` (at most 64)",
            );
            return;
        }
        self.draft.hostname = Some(Valued {
            value: arg.to_string(),
            comment: cite(self.profile, id),
        });
        self.set(
            id,
            Verdict::Translated,
            "the sandbox's hostname (firejail also rewrites /etc/hostname; hutch hides it)",
        );
    }

    fn rlimit(&mut self, id: usize, k: &str, arg: &str) {
        let key = match k {
            "rlimit-nofile" => "nofile",
            "rlimit-nproc" => "nproc",
            "rlimit-fsize" => "fsize",
            "rlimit-as" => "as",
            _ => "cpu",
        };
        let value = crate::profile::schema::Size::parse(arg).filter(|v| *v > 0);
        match value {
            Some(v) => {
                self.draft
                    .rlimits
                    .retain(|(existing, _, _)| *existing != key);
                self.draft.rlimits.push((key, v, cite(self.profile, id)));
                self.set(id, Verdict::Translated, format!("[rlimits] {key}"));
            }
            None => self.set(id, Verdict::NotTranslatable, "not a number hutch reads"),
        }
    }

    /// The filter firejail would load, as hutch's default plus additions.
    fn seccomp(&mut self) {
        let ds = &self.profile.directives;
        let find = |kw: &str| -> Vec<usize> {
            ds.iter()
                .enumerate()
                .filter(|(_, d)| d.split().0 == kw)
                .map(|(i, _)| i)
                .collect()
        };
        let plain = find("seccomp");
        let drops = find("seccomp.drop");
        let keeps = find("seccomp.keep");
        let debuggers = find("allow-debuggers");
        let t = Verdict::Translated;
        if !self.env.config.seccomp {
            for id in plain.iter().chain(&drops).chain(&keeps) {
                self.set(*id, Verdict::Stricter, "no effect in firejail (`seccomp no` in firejail.config); hutch loads its default filter");
            }
        }
        for id in &keeps {
            self.set(*id, Verdict::NotTranslatable, "hutch has no allow-list filter: it denies listed calls, it cannot deny every call but some");
        }
        let list_ids: Vec<usize> = plain
            .iter()
            .copied()
            .filter(|i| !ds[*i].split().1.is_empty())
            .collect();
        let last_list = list_ids.last().copied();
        let filter = if let Some(&drop) = drops.last() {
            for id in &plain {
                self.set(*id, t, "replaced by `seccomp.drop`, as in firejail");
            }
            for id in &drops {
                if *id != drop {
                    self.set(*id, t, "replaced by a later `seccomp.drop`, as in firejail");
                }
            }
            self.set(
                drop,
                Verdict::Stricter,
                "these calls are denied, and hutch's default filter stays",
            );
            Some((seccomp::drop_only(ds[drop].split().1), vec![drop]))
        } else if !plain.is_empty() && self.env.config.seccomp {
            for id in &list_ids {
                if Some(*id) != last_list {
                    self.set(
                        *id,
                        t,
                        "replaced by the later `seccomp` list, as in firejail",
                    );
                }
            }
            let list = last_list.map(|i| ds[i].split().1);
            let f = seccomp::default_plus(list, !debuggers.is_empty());
            let mut from: Vec<usize> = plain
                .iter()
                .copied()
                .filter(|i| ds[*i].split().1.is_empty())
                .take(1)
                .collect();
            from.extend(last_list);
            for id in &from {
                self.set(*id, t, format!(
                    "firejail's default list{}: {} calls hutch's default filter lacks are added{}",
                    if list.is_some() { " with the listed changes" } else { "" },
                    f.deny.len(),
                    if f.unknown.is_empty() { String::new() } else { format!(" ({} names are no system call here)", f.unknown.len()) }
                ));
            }
            Some((f, from))
        } else if !debuggers.is_empty() {
            let mut f = seccomp::Filter::default();
            f.allow
                .extend(["ptrace".to_string(), "process_vm_readv".to_string()]);
            Some((f, vec![]))
        } else {
            None
        };
        if let Some((f, from)) = filter {
            self.emit_filter(&f, &from, &debuggers);
        }
        for id in debuggers {
            self.set(id, t, "ptrace and process_vm_readv allowed, as firejail does (and it skips disable-devel.inc)");
        }
    }

    /// The filter's additions to `[seccomp]`, with the lines they come from.
    fn emit_filter(&mut self, f: &seccomp::Filter, from: &[usize], debuggers: &[usize]) {
        let comment = from
            .iter()
            .map(|i| cite(self.profile, *i))
            .collect::<Vec<_>>()
            .join("\n");
        let comment = if comment.is_empty() {
            "firejail has no filter here".to_string()
        } else {
            format!("{comment}\nfirejail's filter, less what hutch's default filter denies already")
        };
        for n in &f.deny {
            self.draft.seccomp.deny.push(Listed {
                name: n.clone(),
                comment: comment.clone(),
            });
        }
        let allow_comment = if debuggers.is_empty() {
            format!("{comment}\nallowed by firejail (`!name`)")
        } else {
            format!(
                "{}\nallowed by firejail",
                debuggers
                    .iter()
                    .map(|i| cite(self.profile, *i))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        };
        for n in &f.allow {
            self.draft.seccomp.allow.push(Listed {
                name: n.clone(),
                comment: allow_comment.clone(),
            });
        }
    }

    /// What firejail grants unless the profile restricts it.
    fn default_grants(&mut self) {
        let texts: Vec<&str> = self
            .profile
            .directives
            .iter()
            .map(|d| d.text.as_str())
            .collect();
        let keywords: Vec<&str> = self
            .profile
            .directives
            .iter()
            .map(|d| d.split().0)
            .collect();
        for g in DEFAULT_GRANTS {
            let restricted = g
                .unless
                .iter()
                .any(|u| texts.contains(u) || (!u.contains(' ') && keywords.contains(u)));
            if restricted {
                continue;
            }
            let why = match g.section {
                Some(s) => s.describe().to_string(),
                None => g.why.to_string(),
            };
            self.withheld.push(Withheld {
                what: g.what.to_string(),
                why,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::schema::MountKind;
    use std::path::PathBuf;

    struct World {
        _d: tempfile::TempDir,
        env: Env,
        home: PathBuf,
        etc: PathBuf,
    }

    /// A firejail directory holding `files`, and a home holding `home`
    /// (a trailing `/` makes a directory).
    fn world(files: &[(&str, &str)], home_files: &[&str]) -> World {
        let d = tempfile::tempdir().unwrap();
        let etc = d.path().join("firejail");
        let home = d.path().join("user");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        for (name, text) in files {
            std::fs::write(etc.join(name), text).unwrap();
        }
        for f in home_files {
            let p = home.join(f);
            if let Some(dir) = f.strip_suffix('/') {
                std::fs::create_dir_all(home.join(dir)).unwrap();
            } else {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, "x").unwrap();
            }
        }
        let env = Env::new(home.clone(), 1000, "/usr/bin:/bin", &etc);
        World {
            _d: d,
            env,
            home,
            etc,
        }
    }

    fn import_text(w: &World, profile: &str) -> Imported {
        std::fs::write(w.etc.join("t.profile"), profile).unwrap();
        import(&w.etc.join("t.profile"), &w.env, &Fs::new()).unwrap()
    }

    fn bound(i: &Imported) -> Vec<PathBuf> {
        i.draft
            .mounts
            .iter()
            .filter(|m| m.kind.is_bind() && m.src.as_deref() != Some(Path::new("/dev/null")))
            .map(|m| m.dst.clone())
            .collect()
    }

    fn verdict(i: &Imported, text: &str) -> Verdict {
        i.report
            .lines
            .iter()
            .find(|l| l.text == text)
            .unwrap_or_else(|| panic!("no line {text}"))
            .verdict
    }

    #[test]
    fn whitelisted_directories_are_split_around_what_is_hidden() {
        let w = world(&[], &["app/ok", "app/secret", "app/sub/deep", "other/x"]);
        let i = import_text(&w, "whitelist ${HOME}/app\nblacklist ${HOME}/app/secret\n");
        let b = bound(&i);
        assert!(b.contains(&w.home.join("app/ok")), "{b:?}");
        assert!(b.contains(&w.home.join("app/sub")));
        assert!(
            !b.iter()
                .any(|p| p.ends_with("secret") || p == &w.home.join("app"))
        );
        assert!(!b.iter().any(|p| p.starts_with(w.home.join("other"))));
        // The home directory itself is an empty tmpfs.
        assert!(
            i.draft
                .mounts
                .iter()
                .any(|m| m.dst == w.home && m.kind == MountKind::Tmpfs)
        );
        assert_eq!(verdict(&i, "whitelist ${HOME}/app"), Verdict::Translated);
    }

    #[test]
    fn a_denylist_profile_binds_what_it_names_and_the_xdg_directories() {
        let w = world(&[], &[".cfg/a", ".ssh/key", "Downloads/f", "notes.txt"]);
        let i = import_text(
            &w,
            "noblacklist ${HOME}/.cfg\nblacklist ${HOME}/.cfg\nblacklist ${HOME}/.ssh\nread-only ${DOWNLOADS}\n",
        );
        let b = bound(&i);
        assert!(b.contains(&w.home.join(".cfg")), "{b:?}");
        assert!(b.contains(&w.home.join("Downloads")));
        assert!(!b.iter().any(|p| p.starts_with(w.home.join(".ssh"))));
        assert!(!b.contains(&w.home.join("notes.txt")));
        let dl = i
            .draft
            .mounts
            .iter()
            .find(|m| m.dst == w.home.join("Downloads"))
            .unwrap();
        assert_eq!(dl.kind, MountKind::RoBind, "read-only ${{DOWNLOADS}}");
        assert!(
            i.report
                .withheld
                .iter()
                .any(|x| x.what.contains("rest of your home"))
        );
    }

    #[test]
    fn system_files_firejail_hides_are_covered() {
        let w = world(&[], &[]);
        let env = std::fs::canonicalize("/usr/bin/env").unwrap();
        let i = import_text(&w, "blacklist ${PATH}/env\n");
        let cover = i.draft.mounts.iter().find(|m| m.dst == env).unwrap();
        assert_eq!(cover.src.as_deref(), Some(Path::new("/dev/null")));
        assert_eq!(cover.kind, MountKind::RoBind);
        // After everything that shows it.
        let usr = i
            .draft
            .mounts
            .iter()
            .position(|m| m.dst == Path::new("/usr"))
            .unwrap();
        let at = i.draft.mounts.iter().position(|m| m.dst == env).unwrap();
        assert!(at > usr);
    }

    #[test]
    fn private_etc_keeps_only_the_listed_entries() {
        let w = world(&[], &[]);
        let i = import_text(&w, "private-etc hosts,passwd\nmachine-id\n");
        let etc: Vec<&PathBuf> = i
            .draft
            .mounts
            .iter()
            .map(|m| &m.dst)
            .filter(|d| d.starts_with("/etc"))
            .collect();
        assert_eq!(
            etc,
            [
                &PathBuf::from("/etc"),
                &PathBuf::from("/etc/hosts"),
                &PathBuf::from("/etc/passwd")
            ]
        );
        assert_eq!(verdict(&i, "machine-id"), Verdict::Stricter);
    }

    #[test]
    fn verdicts_by_kind() {
        let w = world(&[("inc.inc", "nogroups\n")], &[]);
        let i = import_text(
            &w,
            "include inc.inc\nnetfilter\napparmor\ncaps.drop all\nnet none\ndbus-user filter\ndbus-user.talk org.example.A\nprotocol unix\nmemory-deny-write-execute\nno-such-directive\nhostname box\nseccomp !chroot\nallow-debuggers\ntracelog\n",
        );
        for (line, v) in [
            ("netfilter", Verdict::RootOnly),
            ("apparmor", Verdict::RootOnly),
            ("caps.drop all", Verdict::Translated),
            ("net none", Verdict::Translated),
            ("dbus-user filter", Verdict::Stricter),
            ("dbus-user.talk org.example.A", Verdict::Stricter),
            ("protocol unix", Verdict::NotTranslatable),
            ("memory-deny-write-execute", Verdict::NotTranslatable),
            ("nogroups", Verdict::NotTranslatable),
            ("no-such-directive", Verdict::NotTranslatable),
            ("hostname box", Verdict::Translated),
            ("seccomp !chroot", Verdict::Translated),
            ("tracelog", Verdict::Translated),
            ("include inc.inc", Verdict::Composition),
        ] {
            assert_eq!(verdict(&i, line), v, "{line}");
        }
        let s = &i.draft.seccomp;
        assert!(!s.deny.iter().any(|l| l.name == "chroot"));
        assert!(s.deny.iter().any(|l| l.name == "mbind"));
        assert!(s.allow.iter().any(|l| l.name == "ptrace"));
        assert_eq!(i.draft.hostname.as_ref().unwrap().value, "box");
        assert!(
            i.report
                .withheld
                .iter()
                .any(|x| x.what.contains("dbus-user.talk"))
        );
        assert!(
            i.report
                .withheld
                .iter()
                .any(|x| x.what == "sound (PulseAudio, PipeWire, /dev/snd)")
        );
        assert!(
            !i.report
                .withheld
                .iter()
                .any(|x| x.what == "the host's network")
        );
    }

    #[test]
    fn the_output_passes_hutchs_check() {
        let w = world(&[], &["Downloads/f", ".cfg/x"]);
        let i = import_text(
            &w,
            "noblacklist ${HOME}/.cfg\nprivate-bin sh,ls\nprivate-etc hosts\nwhitelist /usr/share/zoneinfo\nseccomp\nenv FOO=a$b\nrmenv TZ\nrlimit-nofile 100\n",
        );
        let text = i
            .draft
            .render(&|p| super::super::macros::to_hutch(p, &w.env));
        let home = w.home.to_str().unwrap();
        let host = crate::host::Host::fixed(1000, 1000, &[("HOME", home)], "/");
        let plan = crate::import::command::check(&text, "t.toml", &host)
            .unwrap_or_else(|e| panic!("{}\n{text}", e.0.render()));
        assert_eq!(plan.env.get("FOO").map(String::as_str), Some("a$b"));
        assert!(text.contains("# private-bin sh,ls (t.profile:2)"), "{text}");
    }
}
