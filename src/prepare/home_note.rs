//! `home_note` lowered for init (see `crate::plan::home_note` and
//! `crate::child::home_note`): paths as C strings, the message's fixed
//! parts as bytes, so that init only makes system calls.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use super::{NulError, cstring, cstring_path};
use crate::plan::home_note::{HomeNote, listing};

/// One directory init lists.
#[derive(Debug)]
pub struct HomeDir {
    /// Relative to the home ("." for the home itself).
    pub rel: CString,
    /// How an entry in it is shown: `~/` and the directory, `/`-ended.
    pub shown: Vec<u8>,
    /// The names in it that the plan put there.
    pub expected: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub struct HomeNoteInstr {
    pub home: CString,
    pub dirs: Vec<HomeDir>,
    /// The message before the names, and after them.
    pub intro: Vec<u8>,
    pub outro: Vec<u8>,
}

pub fn lower(note: &HomeNote, profile: &str) -> Result<HomeNoteInstr, NulError> {
    let dirs = listing(note)
        .into_iter()
        .map(|(rel, names)| {
            let mut shown = b"~/".to_vec();
            if !rel.as_os_str().is_empty() {
                shown.extend_from_slice(rel.as_os_str().as_bytes());
                shown.push(b'/');
            }
            let rel = if rel.as_os_str().is_empty() {
                cstring("home directory", b".")?
            } else {
                cstring_path("home directory", &rel)?
            };
            Ok(HomeDir {
                rel,
                shown,
                expected: names.iter().map(|n| n.as_bytes().to_vec()).collect(),
            })
        })
        .collect::<Result<Vec<_>, NulError>>()?;
    Ok(HomeNoteInstr {
        home: cstring_path("home directory", &note.home)?,
        dirs,
        intro: format!(
            "hutch: the home directory {} was temporary (a tmpfs, profile `{profile}`), and what the program wrote there is gone: ",
            note.home.display()
        )
        .into_bytes(),
        outro: b"; to keep files, write them in the working directory (`home_note = false` in the profile silences this note)\n".to_vec(),
    })
}
