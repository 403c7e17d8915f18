//! firejail's macros (`macros.c`): `${HOME}`, `~`, `${CFG}` and `${RUNUSER}`
//! at the start of a path, and the XDG user directories `${DOWNLOADS}`,
//! `${MUSIC}`, `${VIDEOS}`, `${PICTURES}`, `${DESKTOP}` and `${DOCUMENTS}`,
//! which firejail only expands when they are the whole argument, from
//! `~/.config/user-dirs.dirs` or else from a list of translated names, and
//! only to a directory that exists. `${PATH}` (every directory of `PATH`)
//! is expanded by the rules that accept it.

use std::path::{Path, PathBuf};

use super::env::Env;

/// The XDG macros: name, key in `user-dirs.dirs`, fallback names tried in
/// the home directory.
pub const XDG_MACROS: &[(&str, &str, &[&str])] = &[
    (
        "${DOWNLOADS}",
        "XDG_DOWNLOAD_DIR",
        &[
            "Downloads",
            "Загрузки",
            "Téléchargement",
            "Scaricati",
            "Descargas",
        ],
    ),
    (
        "${MUSIC}",
        "XDG_MUSIC_DIR",
        &["Music", "Музыка", "Musique", "Musica", "Música", "Musik"],
    ),
    (
        "${VIDEOS}",
        "XDG_VIDEOS_DIR",
        &["Videos", "Видео", "Vidéos", "Video", "Vídeos"],
    ),
    (
        "${PICTURES}",
        "XDG_PICTURES_DIR",
        &[
            "Pictures",
            "Изображения",
            "Photos",
            "Immagini",
            "Imágenes",
            "Imagens",
            "Bilder",
        ],
    ),
    (
        "${DESKTOP}",
        "XDG_DESKTOP_DIR",
        &[
            "Desktop",
            "Рабочий стол",
            "Bureau",
            "Scrivania",
            "Escritorio",
            "Área de trabalho",
            "Schreibtisch",
        ],
    ),
    (
        "${DOCUMENTS}",
        "XDG_DOCUMENTS_DIR",
        &[
            "Documents",
            "Документы",
            "Documenti",
            "Documentos",
            "Dokumente",
        ],
    ),
];

/// Whether `s` is one of the XDG macros.
pub fn is_xdg_macro(s: &str) -> bool {
    XDG_MACROS.iter().any(|(m, _, _)| *m == s)
}

/// The directory an XDG macro stands for, if it can be resolved.
pub fn resolve_xdg(name: &str, env: &Env) -> Option<PathBuf> {
    let (_, key, fallbacks) = XDG_MACROS.iter().find(|(m, _, _)| *m == name)?;
    if let Ok(text) = std::fs::read_to_string(env.home.join(".config/user-dirs.dirs")) {
        // firejail reads the first line starting with `KEY="$HOME/` and
        // takes what is up to the next quote; the directory must exist.
        let prefix = format!("{key}=\"$HOME/");
        for line in text.lines() {
            let line = line.trim_start_matches([' ', '\t']);
            if let Some(rest) = line.strip_prefix(&prefix)
                && let Some(end) = rest.find('"')
            {
                let rel = &rest[..end];
                if rel.is_empty() {
                    return None;
                }
                let dir = env.home.join(rel);
                return std::fs::metadata(&dir).is_ok().then_some(dir);
            }
        }
    }
    fallbacks
        .iter()
        .map(|n| env.home.join(n))
        .find(|p| std::fs::metadata(p).is_ok())
}

/// Why a path argument could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacroError {
    /// `$HOME` (firejail requires `${HOME}` and refuses the profile).
    DollarHome,
}

/// firejail's `expand_macros`: the argument with a leading `${HOME}`, `~`,
/// `${CFG}` or `${RUNUSER}` replaced, or a whole-argument XDG macro
/// resolved; anything else unchanged (an unresolvable XDG macro stays as
/// written).
pub fn expand(arg: &str, env: &Env) -> Result<String, MacroError> {
    if arg.starts_with("$HOME") {
        return Err(MacroError::DollarHome);
    }
    let home = env.home.to_string_lossy();
    if let Some(rest) = arg.strip_prefix("${HOME}") {
        return Ok(format!("{home}{rest}"));
    }
    if let Some(rest) = arg.strip_prefix('~') {
        return Ok(format!("{home}{rest}"));
    }
    if let Some(rest) = arg.strip_prefix("${CFG}") {
        return Ok(format!("{}{rest}", env.sysconfdir.display()));
    }
    if let Some(rest) = arg.strip_prefix("${RUNUSER}") {
        return Ok(format!("{}{rest}", env.runuser().display()));
    }
    if is_xdg_macro(arg)
        && let Some(dir) = resolve_xdg(arg, env)
    {
        return Ok(dir.to_string_lossy().into_owned());
    }
    Ok(arg.to_string())
}

/// `expand`, then `${PATH}` at the start replaced by each `PATH` directory
/// (as `blacklist` and `noblacklist` do).
pub fn expand_with_path(arg: &str, env: &Env) -> Result<Vec<String>, MacroError> {
    let expanded = expand(arg, env)?;
    if let Some(rest) = expanded.strip_prefix("${PATH}") {
        return Ok(env
            .path_dirs
            .iter()
            .map(|d| format!("{}{rest}", d.display()))
            .collect());
    }
    Ok(vec![expanded])
}

/// How an absolute host path is written in a hutch profile: `${HOME}/...`
/// for the user's home, `/run/user/${UID}/...` for the runtime directory,
/// `$` doubled elsewhere.
pub fn to_hutch(path: &Path, env: &Env) -> String {
    let escape = |s: &str| s.replace('$', "$$");
    if let Ok(rel) = path.strip_prefix(&env.home) {
        let rel = rel.to_string_lossy();
        return if rel.is_empty() {
            "${HOME}".into()
        } else {
            format!("${{HOME}}/{}", escape(&rel))
        };
    }
    if let Ok(rel) = path.strip_prefix(env.runuser()) {
        let rel = rel.to_string_lossy();
        return if rel.is_empty() {
            "/run/user/${UID}".into()
        } else {
            format!("/run/user/${{UID}}/{}", escape(&rel))
        };
    }
    escape(&path.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(home: &Path) -> Env {
        Env::new(
            home.to_path_buf(),
            1000,
            "/usr/bin:/bin",
            Path::new("/nonexistent"),
        )
    }

    #[test]
    fn leading_macros() {
        let e = env(Path::new("/home/u"));
        assert_eq!(expand("${HOME}/.ssh", &e).unwrap(), "/home/u/.ssh");
        assert_eq!(expand("~/.ssh", &e).unwrap(), "/home/u/.ssh");
        assert_eq!(expand("${RUNUSER}/bus", &e).unwrap(), "/run/user/1000/bus");
        assert_eq!(expand("${CFG}/x", &e).unwrap(), "/nonexistent/x");
        assert_eq!(expand("/etc/${HOME}", &e).unwrap(), "/etc/${HOME}");
        assert_eq!(expand("$HOME/x", &e), Err(MacroError::DollarHome));
        assert_eq!(
            expand_with_path("${PATH}/gcc*", &e).unwrap(),
            ["/usr/bin/gcc*", "/bin/gcc*"]
        );
    }

    #[test]
    fn xdg_macros_need_an_existing_directory() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path());
        // Unresolvable: stays as written.
        assert_eq!(expand("${DOWNLOADS}", &e).unwrap(), "${DOWNLOADS}");
        std::fs::create_dir(d.path().join("Downloads")).unwrap();
        assert_eq!(
            expand("${DOWNLOADS}", &e).unwrap(),
            d.path().join("Downloads").display().to_string()
        );
        // user-dirs.dirs wins, and only whole-argument macros expand.
        std::fs::create_dir_all(d.path().join(".config")).unwrap();
        std::fs::create_dir(d.path().join("Dl")).unwrap();
        std::fs::write(
            d.path().join(".config/user-dirs.dirs"),
            "XDG_DOWNLOAD_DIR=\"$HOME/Dl\"\n",
        )
        .unwrap();
        assert_eq!(
            expand("${DOWNLOADS}", &e).unwrap(),
            d.path().join("Dl").display().to_string()
        );
        assert_eq!(expand("${DOWNLOADS}/x", &e).unwrap(), "${DOWNLOADS}/x");
    }

    #[test]
    fn hutch_spelling() {
        let e = env(Path::new("/home/u"));
        assert_eq!(to_hutch(Path::new("/home/u/.x"), &e), "${HOME}/.x");
        assert_eq!(to_hutch(Path::new("/home/u"), &e), "${HOME}");
        assert_eq!(
            to_hutch(Path::new("/run/user/1000/a"), &e),
            "/run/user/${UID}/a"
        );
        assert_eq!(to_hutch(Path::new("/opt/a$b"), &e), "/opt/a$$b");
    }
}
