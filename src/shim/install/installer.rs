//! Installing shims, one program at a time.

use super::*;
use crate::safe_fs::Publish;
use crate::shim::desktop;

/// An override to write: its record, the text, and whether it replaces
/// hutch's own earlier one.
struct Write {
    entry: Override,
    text: String,
    replace: bool,
}

pub(in crate::shim) struct Installer<'c> {
    ctx: &'c Ctx<'c>,
    search: &'c SearchPath,
    record: Record,
    state: Dir,
    bin: Dir,
    /// The menu entries of the system (scanned when first needed), and
    /// those already in the override directory.
    menus: Option<(Vec<menus::Entry>, Vec<menus::Entry>)>,
    _lock: Flock<OwnedFd>,
}

impl<'c> Installer<'c> {
    pub fn open(ctx: &'c Ctx<'c>, search: &'c SearchPath) -> Result<Installer<'c>, ShimError> {
        let state_mode = match ctx.scope {
            Scope::User => 0o700,
            Scope::System => 0o755,
        };
        let mut made = Record::new();
        let state = ctx.open_dir(&ctx.state, state_mode, &mut made)?;
        let lock = ctx.lock(&state)?;
        // Read under the lock: another install may have written it.
        let mut record = ctx.read_record()?;
        for dir in made.created_dirs {
            record.created(dir);
        }
        let bin = ctx.open_dir(&ctx.bin, 0o755, &mut record)?;
        ctx.save(&record, &state)?;
        Ok(Installer {
            ctx,
            search,
            record,
            state,
            bin,
            menus: None,
            _lock: lock,
        })
    }

    pub fn run(&mut self, names: &[String], profile: Option<&str>) -> i32 {
        let mut failed = false;
        let mut done = Vec::new();
        for name in names {
            match self.install_one(name, profile) {
                Ok(lines) => {
                    for l in lines {
                        println!("{}", sanitize(&l));
                    }
                    done.push(name.clone());
                }
                Err(e) => {
                    eprintln!("hutch: {}: {}", sanitize(name), sanitize(&e));
                    failed = true;
                }
            }
        }
        if let Err(e) = self.finish() {
            eprintln!("hutch: {}", sanitize(&e.to_string()));
            failed = true;
        }
        self.advise(&done);
        i32::from(failed)
    }

    /// Without any shim, nothing of install's stays: the directories it
    /// made go with the record.
    fn finish(&mut self) -> Result<(), ShimError> {
        if !self.record.shims.is_empty() {
            return Ok(());
        }
        let dirs = std::mem::take(&mut self.record.created_dirs);
        self.ctx.save(&self.record, &self.state)?;
        remove_created(&dirs);
        Ok(())
    }

    fn install_one(&mut self, name: &str, profile: Option<&str>) -> Result<Vec<String>, String> {
        if !valid_program_name(name) {
            return Err(
                "not a program name (one file name, not `hutch`, not starting with `-` or `.`)"
                    .into(),
            );
        }
        let profile_name = profile.unwrap_or(name);
        self.check_profile(profile_name, profile.is_some())?;
        let program = self.ctx.program(name).ok_or_else(|| {
            format!("not installed: no {name} in PATH but hutch's shims (PATH is searched as your shell does)")
        })?;
        let prev = self.record.get(name).cloned();
        let plan = plan_link(
            self.ctx,
            &self.bin,
            name,
            prev.as_ref().and_then(|p| p.link.as_ref()),
        )?;
        let (keep, writes, mut notes) =
            self.plan_menus(name, profile_name, &program, prev.as_ref());
        let mut entry = Shim {
            name: name.to_string(),
            profile: profile.map(str::to_string),
            link: (plan != LinkPlan::HandMade).then(|| Link {
                path: self.bin.path().join(name),
                target: self.ctx.hutch.clone(),
            }),
            desktop: keep
                .into_iter()
                .chain(writes.iter().map(|w| w.entry.clone()))
                .collect(),
        };
        let apps = if writes.is_empty() {
            None
        } else {
            Some(
                self.ctx
                    .open_dir(&self.ctx.applications, 0o755, &mut self.record)
                    .map_err(|e| e.to_string())?,
            )
        };
        // The record first: a hutch killed from here on leaves a record
        // that `remove` can finish from.
        self.record.put(entry.clone());
        self.save()?;
        if let Err(e) = make_link(self.ctx, &self.bin, name, &plan) {
            match prev {
                Some(p) => self.record.put(p),
                None => drop(self.record.take(name)),
            }
            self.save()?;
            return Err(e);
        }
        if let Some(apps) = &apps {
            self.write_overrides(apps, &writes, &mut entry, &mut notes);
        }
        self.drop_stale(prev.as_ref(), &entry, &mut notes);
        self.record.put(entry.clone());
        self.save()?;
        Ok(self.describe(&entry, &plan, &program, notes))
    }

    fn save(&self) -> Result<(), String> {
        self.ctx
            .save(&self.record, &self.state)
            .map_err(|e| e.to_string())
    }

    /// The profile must exist and load: a shim of a profile that fails
    /// would fail every time it is started.
    fn check_profile(&self, profile: &str, given: bool) -> Result<(), String> {
        if self.search.find(profile).is_none() {
            return Err(if given {
                format!("no profile `{profile}` (`hutch profiles` lists them)")
            } else {
                format!(
                    "no profile `{profile}`: write one (`hutch profiles` lists the profiles found, and where), or give one with --profile"
                )
            });
        }
        crate::profile::load(&ProfileRef::Name(profile.to_string()), self.search)
            .map(drop)
            .map_err(|e| {
                format!(
                    "profile `{profile}` does not load:\n{}",
                    e.0.render().trim_end()
                )
            })
    }

    fn describe(
        &self,
        entry: &Shim,
        plan: &LinkPlan,
        program: &Path,
        notes: Vec<String>,
    ) -> Vec<String> {
        let name = &entry.name;
        let shim = self.bin.path().join(name);
        let what = match plan {
            LinkPlan::Create | LinkPlan::Repoint => "installed",
            LinkPlan::Keep => "already installed",
            LinkPlan::HandMade => {
                "already a shim of hutch (not made by `hutch shim`, and left to you)"
            }
        };
        let mut lines = vec![format!(
            "{name}: {what}: {} runs {} in profile {}",
            shim.display(),
            program.display(),
            entry.effective_profile()
        )];
        for o in &entry.desktop {
            lines.push(format!("{name}: menu entry {}: {}", o.id, o.path.display()));
        }
        lines.extend(notes.into_iter().map(|n| format!("{name}: {n}")));
        lines
    }

    /// The menu entries that start `program`: what to keep of the
    /// record's overrides, what to write, and what to say.
    fn plan_menus(
        &mut self,
        name: &str,
        profile: &str,
        program: &Path,
        prev: Option<&Shim>,
    ) -> (Vec<Override>, Vec<Write>, Vec<String>) {
        let (mut keep, mut writes, mut notes) = (Vec::new(), Vec::new(), Vec::new());
        let Some(id) = lookup::executable_id(program) else {
            return (keep, writes, notes);
        };
        let ctx = self.ctx;
        let resolve = |n: &str| ctx.program(n);
        let (sources, own) = self.menus.get_or_insert_with(|| {
            let sources = menus::scan(&ctx.scope.menu_sources(ctx.host), &resolve);
            let own = menus::scan(std::slice::from_ref(&ctx.applications), &resolve);
            (sources, own)
        });
        let apps = Dir::open_configured(&ctx.applications).ok().flatten();
        for e in sources.iter() {
            let Ok(file) = &e.parsed else {
                if e.exec_word.as_deref() == Some(name) {
                    let err = e
                        .parsed
                        .as_ref()
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    notes.push(not_overridden(e, &err, name));
                }
                continue;
            };
            if e.program != Some(id) {
                if e.program.is_none()
                    && e.exec_word.as_deref() == Some(name)
                    && let Err(err) = file.command(&resolve)
                {
                    notes.push(not_overridden(e, &err.to_string(), name));
                }
                continue;
            }
            let spec = desktop::Override {
                hutch: &ctx.hutch,
                name,
                profile,
                source: &e.path,
            };
            let text = match file.rewrite(&spec, &resolve) {
                Ok(t) => t,
                Err(err) => {
                    notes.push(not_overridden(e, &err.to_string(), name));
                    continue;
                }
            };
            let entry = Override {
                id: e.id.clone(),
                path: ctx.applications.join(&e.id),
                source: e.path.clone(),
                sha256: record::digest(text.as_bytes()),
            };
            let ours = prev.and_then(|p| p.desktop.iter().find(|o| o.path == entry.path));
            let there = apps.as_ref().and_then(|a| read_in(a, &e.id, ctx.owner));
            match (there, ours) {
                (None, _) => writes.push(Write { entry, text, replace: false }),
                (Some(bytes), Some(o)) if record::digest(&bytes) == o.sha256 => {
                    if o.sha256 == entry.sha256 {
                        keep.push(entry);
                    } else {
                        writes.push(Write { entry, text, replace: true });
                    }
                }
                (Some(_), _) => notes.push(format!(
                    "menu entry {}: {} is not hutch's override (or changed since hutch wrote it): left as it is; if it starts {name}, it does so without hutch",
                    e.id,
                    entry.path.display()
                )),
            }
        }
        for e in own.iter() {
            let theirs = e
                .parsed
                .as_ref()
                .is_ok_and(|f| f.get(desktop::MAIN, desktop::MARKER).is_none());
            if theirs && e.program == Some(id) && !sources.iter().any(|s| s.id == e.id) {
                notes.push(format!(
                    "menu entry {} ({}) is not hutch's and starts {name} without hutch: left as it is",
                    e.id,
                    e.path.display()
                ));
            }
        }
        (keep, writes, notes)
    }

    fn write_overrides(
        &self,
        apps: &Dir,
        writes: &[Write],
        entry: &mut Shim,
        notes: &mut Vec<String>,
    ) {
        for w in writes {
            let tmp = format!(".{}.hutch-tmp", w.entry.id);
            let how = Publish {
                tmp_dir: apps,
                tmp_name: &tmp,
                replace: w.replace,
                durable: false,
            };
            let done = apps
                .publish(&w.entry.id, w.text.as_bytes(), how)
                .and_then(|()| record::set_mode(apps, &w.entry.id, 0o644));
            if let Err(e) = done {
                notes.push(format!("menu entry {}: not overridden: {e}", w.entry.id));
                entry.desktop.retain(|o| o.path != w.entry.path);
            }
        }
    }

    /// Overrides of an earlier install whose entry is gone or no longer
    /// starts the program.
    fn drop_stale(&self, prev: Option<&Shim>, entry: &Shim, notes: &mut Vec<String>) {
        let stale = dropped_overrides(prev, &entry.desktop);
        if stale.is_empty() {
            return;
        }
        let Ok(Some(apps)) = Dir::open_configured(&self.ctx.applications) else {
            return;
        };
        for o in stale {
            match remove_if_unchanged(&apps, &o.id, &o.sha256, self.ctx.owner) {
                Ok(_) => notes.push(format!(
                    "menu entry {}: override removed (its entry is gone)",
                    o.id
                )),
                Err(e) => notes.push(e),
            }
        }
    }

    /// Says where PATH would not find the shims.
    fn advise(&self, done: &[String]) {
        if done.is_empty() {
            return;
        }
        let bin = self.bin.path();
        if !lookup::path_dirs(&self.ctx.path).any(|d| lookup::same_dir(d, bin)) {
            let how = match self.ctx.scope {
                Scope::User => format!(
                    "add it at the front (`export PATH=\"{}:$PATH\"` in ~/.profile; Debian's ~/.profile does that at login when ~/.local/bin exists)",
                    bin.display()
                ),
                Scope::System => {
                    "users' PATH must have it before /usr/bin (Debian's default does)".into()
                }
            };
            println!(
                "note: {} is not on this PATH, so a program's name does not find its shim: {how}",
                bin.display()
            );
            return;
        }
        for name in done {
            let found = lookup::find(name.as_ref(), &self.ctx.path, self.ctx.own);
            if let (false, Some(p)) = (found.shim_first, found.program) {
                println!(
                    "note: {name}: {} comes before {} in PATH, so `{name}` still starts it without hutch: put {} first in PATH",
                    p.display(),
                    bin.display(),
                    bin.display()
                );
            }
        }
        println!(
            "(a running shell may remember where it found a program: `hash -r` in bash and zsh, or a new shell)"
        );
    }
}

fn not_overridden(e: &menus::Entry, why: &str, name: &str) -> String {
    format!(
        "menu entry {} ({}) not overridden: {why}; it starts {name} without hutch",
        e.id,
        e.path.display()
    )
}
