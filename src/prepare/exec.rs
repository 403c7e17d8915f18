//! The payload's command line and environment, ready for execve(2).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use super::{NulError, cstring};
use crate::plan::Plan;

/// What the child executes: argv and envp as NULL-terminated pointer
/// arrays into strings that live as long as the [`Exec`].
#[derive(Debug)]
pub struct Exec {
    /// Paths to try in order (PATH lookup inside the sandbox).
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub argv_ptrs: Vec<*const libc::c_char>,
    pub env: Vec<CString>,
    pub envp: Vec<*const libc::c_char>,
}

/// The plan's command and environment, with the program looked up in
/// the sandbox's `PATH` (the candidates the child tries in order).
pub fn lower(plan: &Plan) -> Result<Exec, NulError> {
    let argv: Vec<CString> = plan
        .argv
        .iter()
        .map(|a| cstring("command argument", a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = plan
        .env
        .iter()
        .map(|(k, v)| cstring("environment variable", format!("{k}={v}").as_bytes()))
        .collect::<Result<_, _>>()?;
    let program = plan.argv.first().map_or(&[][..], |a| a.as_bytes());
    let candidates = if program.contains(&b'/') {
        vec![cstring("command", program)?]
    } else {
        let path = plan
            .env
            .get("PATH")
            .map(String::as_str)
            .unwrap_or("/usr/local/bin:/usr/bin:/bin");
        // Empty or relative PATH entries would search the working directory:
        // not something to do implicitly in a sandbox.
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| {
                let mut candidate = d.trim_end_matches('/').as_bytes().to_vec();
                candidate.push(b'/');
                candidate.extend_from_slice(program);
                cstring("command", &candidate)
            })
            .collect::<Result<_, _>>()?
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    Ok(Exec {
        candidates,
        argv,
        argv_ptrs,
        env,
        envp,
    })
}
