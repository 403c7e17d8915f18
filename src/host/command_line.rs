//! Where this process's command line lives in memory. hutch's init, a
//! clone of the launcher, overwrites it so that the sandbox's `ps` shows
//! `hutch-init`, not the host's path and arguments.

static COMMAND_LINE: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();

/// Records where the process's command line lives, from the arguments the
/// binary's `main` received, so that finding it costs no /proc read.
///
/// # Safety
/// `argv` must point to `argc` valid NUL-terminated strings, laid out one
/// after the other as the kernel puts them on a new process's stack.
pub unsafe fn record(argc: libc::c_int, argv: *const *const libc::c_char) {
    if argc < 1 || argv.is_null() {
        return;
    }
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "the first and last argument pointers are read under the caller's one guarantee"
    )]
    // SAFETY: the caller guarantees argc valid pointers to C strings.
    let (first, last) = unsafe { (*argv, *argv.add(argc as usize - 1)) };
    if first.is_null() || last.is_null() {
        return;
    }
    // SAFETY: `last` is a valid C string (caller's guarantee).
    let end = last as usize + unsafe { libc::strlen(last) } + 1;
    let _ = COMMAND_LINE.set((first as usize, end));
}

/// Where this process's command line lives; the cloned child has the same
/// addresses. Falls back to fields 48 and 49 of /proc/self/stat.
pub fn area() -> Option<(usize, usize)> {
    if let Some(area) = COMMAND_LINE.get() {
        return Some(*area);
    }
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces; the state (field 3) comes first.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let start = fields.get(48 - 3)?.parse().ok()?;
    let end = fields.get(49 - 3)?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}
