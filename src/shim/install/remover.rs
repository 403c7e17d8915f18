//! Removing shims: exactly what the record says install made, if it is
//! unchanged.

use super::*;

/// `hutch shim remove`.
pub(in crate::shim) fn remove(args: &ShimRemoveArgs) -> i32 {
    let host = Host::current();
    let ctx = match Ctx::new(&host, Scope::of(args.system)) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let state = match Dir::open_configured(&ctx.state) {
        Ok(Some(d)) => d,
        Ok(None) if args.all => {
            println!("no shims installed by `hutch shim install`");
            return 0;
        }
        Ok(None) => return not_installed(&ctx, &args.names),
        Err(e) => return fail(&e.into()),
    };
    let _lock = match ctx.lock(&state) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let mut record = match ctx.read_record() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let names: Vec<String> = if args.all {
        record.shims.iter().map(|s| s.name.clone()).collect()
    } else {
        args.names.clone()
    };
    if names.is_empty() {
        println!("no shims installed by `hutch shim install`");
    }
    let mut failed = false;
    for name in &names {
        let Some(entry) = record.get(name).cloned() else {
            failed |= not_installed(&ctx, std::slice::from_ref(name)) != 0;
            continue;
        };
        for line in remove_one(&ctx, &entry) {
            println!("{}", sanitize(&line));
        }
        record.take(name);
        if let Err(e) = ctx.save(&record, &state) {
            return fail(&e);
        }
    }
    if record.shims.is_empty() {
        let dirs = std::mem::take(&mut record.created_dirs);
        if let Err(e) = ctx.save(&record, &state) {
            return fail(&e);
        }
        remove_created(&dirs);
    }
    i32::from(failed)
}

fn not_installed(ctx: &Ctx<'_>, names: &[String]) -> i32 {
    for name in names {
        eprintln!(
            "hutch: {}: no shim of it was installed by `hutch shim install{}` (`hutch shim list` shows them)",
            sanitize(name),
            if ctx.scope == Scope::System {
                " --system"
            } else {
                ""
            }
        );
    }
    1
}

/// Removes one shim's symlink and overrides; what it said about each.
fn remove_one(ctx: &Ctx<'_>, entry: &Shim) -> Vec<String> {
    let name = &entry.name;
    let mut lines = Vec::new();
    let apps = Dir::open_configured(&ctx.applications).ok().flatten();
    for o in &entry.desktop {
        let Some(apps) = &apps else {
            continue;
        };
        match remove_if_unchanged(apps, &o.id, &o.sha256, ctx.owner) {
            Ok(true) => lines.push(format!("{name}: menu entry {} removed", o.path.display())),
            Ok(false) => {}
            Err(e) => lines.push(format!("{name}: {e}")),
        }
    }
    match &entry.link {
        Some(link) => lines.push(format!("{name}: {}", remove_link(link))),
        None => lines.push(format!(
            "{name}: the shim was there before `hutch shim install` and stays"
        )),
    }
    lines
}

/// Removes the symlink install made, if it still holds what install put
/// in it.
fn remove_link(link: &Link) -> String {
    let shown = link.path.display();
    let (Some(dir), Some(name)) = (link.path.parent(), link.path.file_name()) else {
        return format!("{shown}: not a shim's path: left as it is");
    };
    let dir = match Dir::open_configured(dir) {
        Ok(Some(d)) => d,
        Ok(None) => return format!("{shown} was removed already"),
        Err(e) => return format!("{e}: {shown} left as it is"),
    };
    match readlinkat(dir.fd(), name) {
        Ok(target) if Path::new(&target) == link.target => {
            match unlinkat(dir.fd(), name, UnlinkatFlags::NoRemoveDir) {
                Ok(()) => format!("{shown} removed"),
                Err(e) => format!("cannot remove {shown}: {}", e.desc()),
            }
        }
        Err(Errno::ENOENT) => format!("{shown} was removed already"),
        _ => format!("{shown} changed since hutch made it: left as it is"),
    }
}
