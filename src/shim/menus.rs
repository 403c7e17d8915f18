//! The menu entries of installed programs: which `.desktop` files start a
//! shimmed program (by the identity of the program their `Exec` runs, as
//! for shims), read once per `hutch shim install`.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::desktop::{DesktopError, DesktopFile, MAX_BYTES};
use super::lookup::{self, FileId};

/// How deep below an `applications` directory entries are looked for
/// (`kde4/foo.desktop` has the ID `kde4-foo.desktop`).
const MAX_DEPTH: usize = 3;

/// A menu entry found.
pub struct Entry {
    /// Its desktop file ID.
    pub id: String,
    pub path: PathBuf,
    pub parsed: Result<DesktopFile, DesktopError>,
    /// The program its `Exec` starts, when that could be told.
    pub program: Option<FileId>,
    /// The first word of its `Exec` line, to name an entry hutch cannot
    /// rewrite after the program it seems to start.
    pub exec_word: Option<String>,
}

/// The entries of `dirs` (an `applications` directory each, by
/// precedence): for each ID, the first found, as desktops read them.
pub fn scan(dirs: &[PathBuf], resolve: &dyn Fn(&str) -> Option<PathBuf>) -> Vec<Entry> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for dir in dirs {
        let mut files = Vec::new();
        collect(dir, "", 0, &mut files);
        files.sort();
        for (id, path) in files {
            if seen.insert(id.clone()) {
                out.push(read_entry(id, path, resolve));
            }
        }
    }
    out
}

fn collect(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            if depth < MAX_DEPTH {
                collect(&path, &format!("{prefix}{name}-"), depth + 1, out);
            }
        } else if name.ends_with(".desktop") {
            out.push((format!("{prefix}{name}"), path));
        }
    }
}

fn read_entry(id: String, path: PathBuf, resolve: &dyn Fn(&str) -> Option<PathBuf>) -> Entry {
    let mut bytes = Vec::new();
    let read = std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_BYTES as u64 + 1).read_to_end(&mut bytes));
    let exec_word = first_exec_word(&bytes);
    let parsed = match read {
        Ok(_) => DesktopFile::parse(&bytes),
        Err(_) => Err(DesktopError::NotUtf8),
    };
    let program = parsed
        .as_ref()
        .ok()
        .and_then(|f| f.command(resolve).ok())
        .and_then(|c| lookup::executable_id(&c.program));
    Entry {
        id,
        path,
        parsed,
        program,
        exec_word,
    }
}

/// The file name of the first word of the first `Exec=` line, however
/// malformed the rest is.
fn first_exec_word(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("Exec"))?
        .trim_start()
        .strip_prefix('=')?;
    let word = line.split_whitespace().next()?.trim_matches('"');
    Some(word.rsplit('/').next().unwrap_or(word).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_directories_and_the_first_directory_wins() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir_all(a.join("kde4")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let entry =
            |exec: &str| format!("[Desktop Entry]\nType=Application\nName=X\nExec={exec}\n");
        std::fs::write(a.join("kde4/foo.desktop"), entry("/bin/true")).unwrap();
        std::fs::write(a.join("same.desktop"), entry("/bin/true")).unwrap();
        std::fs::write(b.join("same.desktop"), entry("/bin/false")).unwrap();
        std::fs::write(
            b.join("broken.desktop"),
            "[Desktop Entry]\nExec=\"/usr/bin/tool %f\"\n",
        )
        .unwrap();
        std::fs::write(b.join(".hidden.desktop"), entry("/bin/true")).unwrap();
        let found = scan(&[a.clone(), b.clone()], &|_| None);
        let ids: Vec<&str> = found.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["kde4-foo.desktop", "same.desktop", "broken.desktop"]);
        assert_eq!(found[1].path, a.join("same.desktop"));
        assert_eq!(
            found[1].program,
            lookup::executable_id(Path::new("/bin/true"))
        );
        assert!(found[2].parsed.is_ok() && found[2].program.is_none());
        assert_eq!(found[2].exec_word.as_deref(), Some("tool"));
    }
}
