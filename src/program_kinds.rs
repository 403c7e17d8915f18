//! Kinds of programs that are poor candidates for a sandbox of their own
//! (shells and launchers, compilers, the tools scripts are made of,
//! interpreters, what the system's own scripts run), as plain data: `hutch
//! shim install --all` leaves them out (see `shim::exclude` for which kind
//! in which scope), and `hutch shim install --help` lists them. A bottom
//! module, so that the command line's help can name them without the
//! command line depending on the shims.

/// Why `--all` leaves a program out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    StartsPrograms,
    Builds,
    ScriptTool,
    Interpreter,
    SystemCalls,
}

impl Reason {
    pub fn describe(self) -> &'static str {
        match self {
            Reason::StartsPrograms => {
                "it starts other programs (a shell or launcher): they would all run in its sandbox"
            }
            Reason::Builds => "a compiler or build tool: builds run it thousands of times",
            Reason::ScriptTool => "shell scripts are made of it",
            Reason::Interpreter => {
                "an interpreter: a system-wide shim would sandbox the system's own scripts"
            }
            Reason::SystemCalls => {
                "package managers, maintainer scripts or services run it as root"
            }
        }
    }
}

const STARTS_PROGRAMS: &[&str] = &[
    "sh",
    "bash",
    "rbash",
    "dash",
    "zsh",
    "ksh",
    "ksh93",
    "mksh",
    "lksh",
    "pdksh",
    "csh",
    "tcsh",
    "bsd-csh",
    "fish",
    "yash",
    "posh",
    "elvish",
    "nu",
    "xonsh",
    "osh",
    "oil",
    "rc",
    "es",
    "busybox",
    "toybox",
    "env",
    "sudo",
    "su",
    "doas",
    "pkexec",
    "runuser",
    "login",
    "nohup",
    "nice",
    "ionice",
    "chrt",
    "taskset",
    "timeout",
    "time",
    "xargs",
    "parallel",
    "setsid",
    "setpriv",
    "unshare",
    "nsenter",
    "chroot",
    "systemd-run",
    "flatpak",
    "bwrap",
    "firejail",
    "hutch",
    "xdg-open",
    "x-terminal-emulator",
    "x-www-browser",
    "sensible-browser",
    "sensible-editor",
    "sensible-pager",
    "dbus-launch",
    "dbus-run-session",
    "ssh-agent",
    "gpg-agent",
    "tmux",
    "screen",
    "watch",
    "strace",
    "ltrace",
    "gdb",
    "valgrind",
];

const BUILDS: &[&str] = &[
    "cc",
    "c++",
    "c89",
    "c99",
    "gcc",
    "g++",
    "cpp",
    "clang",
    "clang++",
    "ld",
    "ld.bfd",
    "ld.gold",
    "ld.lld",
    "lld",
    "gold",
    "as",
    "ar",
    "ranlib",
    "nm",
    "objcopy",
    "objdump",
    "strip",
    "make",
    "gmake",
    "bmake",
    "cmake",
    "ninja",
    "meson",
    "scons",
    "bazel",
    "autoconf",
    "automake",
    "libtool",
    "pkg-config",
    "pkgconf",
    "rustc",
    "cargo",
    "rustup",
    "go",
    "gccgo",
    "javac",
    "gfortran",
    "tcc",
    "dpkg-buildpackage",
    "debuild",
    "rpmbuild",
    "makepkg",
];

/// Compilers come with version and target suffixes or prefixes.
const BUILD_PREFIXES: &[&str] = &["gcc-", "g++-", "cpp-", "clang-", "clang++-", "ld."];
const BUILD_SUFFIXES: &[&str] = &["-gcc", "-g++", "-cpp", "-ld", "-as"];

const SCRIPT_TOOLS: &[&str] = &[
    "awk", "gawk", "mawk", "nawk", "sed", "grep", "egrep", "fgrep", "find", "cat", "ls", "cp",
    "mv", "rm", "ln", "mkdir", "rmdir", "touch", "chmod", "chown", "head", "tail", "sort", "uniq",
    "cut", "tr", "wc", "tee", "test", "[", "echo", "printf", "basename", "dirname", "readlink",
    "realpath", "stat", "date", "sleep", "expr", "seq", "mktemp", "install", "xxd", "od", "cmp",
    "comm", "join", "paste", "fold", "fmt", "tac", "true", "false", "yes", "which", "id", "whoami",
    "uname", "hostname", "getent", "kill", "ps",
];

const INTERPRETERS: &[&str] = &[
    "python", "python2", "python3", "pypy", "pypy3", "perl", "ruby", "irb", "node", "nodejs",
    "deno", "bun", "lua", "luajit", "php", "tclsh", "wish", "guile", "java", "jshell", "R",
    "Rscript", "julia", "raku", "rakudo", "gjs", "cjs", "bc", "dc", "m4", "expect", "ocaml", "erl",
    "escript", "elixir", "scala", "groovy", "racket", "sbcl", "clisp",
];

/// Versioned interpreters: `python3.11`, `perl5.36.0`, `lua5.4`, `ruby3.1`.
const INTERPRETER_STEMS: &[&str] = &[
    "python", "pypy", "perl", "ruby", "lua", "php", "tclsh", "wish", "guile", "node",
];

const SYSTEM_CALLS: &[&str] = &[
    "tar",
    "gzip",
    "gunzip",
    "zcat",
    "xz",
    "unxz",
    "xzcat",
    "lzma",
    "zstd",
    "unzstd",
    "bzip2",
    "bunzip2",
    "lz4",
    "cpio",
    "unzip",
    "zip",
    "gpg",
    "gpgv",
    "gpg2",
    "ssh",
    "scp",
    "sftp",
    "rsync",
    "git",
    "curl",
    "wget",
    "openssl",
    "man",
    "less",
    "more",
    "pager",
    "file",
    "diff",
    "patch",
    "dpkg",
    "dpkg-deb",
    "dpkg-query",
    "dpkg-divert",
    "dpkg-trigger",
    "apt",
    "apt-get",
    "apt-cache",
    "apt-key",
    "apt-config",
    "debconf",
    "ucf",
    "update-alternatives",
    "rpm",
    "dnf",
    "yum",
    "zypper",
    "pacman",
    "systemctl",
    "journalctl",
    "udevadm",
    "mount",
    "umount",
    "ip",
    "iptables",
    "nft",
    "cron",
    "crontab",
    "logger",
    "mail",
    "sendmail",
    "ldconfig",
    "update-desktop-database",
    "gtk-update-icon-cache",
    "glib-compile-schemas",
    "update-mime-database",
    "fc-cache",
    "desktop-file-install",
    "gsettings",
    "dconf",
];

/// The kind of program `name` is, among those `--all` may leave out.
pub fn reason(name: &str) -> Option<Reason> {
    if STARTS_PROGRAMS.contains(&name) {
        return Some(Reason::StartsPrograms);
    }
    if BUILDS.contains(&name)
        || BUILD_PREFIXES.iter().any(|p| name.starts_with(p))
        || BUILD_SUFFIXES.iter().any(|s| name.ends_with(s))
    {
        return Some(Reason::Builds);
    }
    if SCRIPT_TOOLS.contains(&name) {
        return Some(Reason::ScriptTool);
    }
    if INTERPRETERS.contains(&name) || versioned_interpreter(name) {
        return Some(Reason::Interpreter);
    }
    if SYSTEM_CALLS.contains(&name) {
        return Some(Reason::SystemCalls);
    }
    None
}

/// `python3.11`, `perl5.36.0`, `lua5.4`, `ruby3.1`, `node18`.
fn versioned_interpreter(name: &str) -> bool {
    INTERPRETER_STEMS.iter().any(|stem| {
        name.strip_prefix(stem).is_some_and(|v| {
            !v.is_empty()
                && v.starts_with(|c: char| c.is_ascii_digit())
                && v.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
    })
}

/// The long help of `hutch shim install`: what `--all` leaves out.
pub fn help() -> String {
    let list = |names: &[&str]| names.join(" ");
    format!(
        "--all leaves out, in both scopes:\n\
         \n\
         - programs that start other programs (every command they run would run in their sandbox): {}\n\
         \n\
         - compilers and build tools (a build runs them thousands of times, and they need the whole tree): {}, and the names starting with {} or ending in {}\n\
         \n\
         - the tools shell scripts are made of: {}\n\
         \n\
         and with --system also (root's PATH starts with /usr/local/bin, so a system-wide shim would sandbox package-manager hooks, maintainer scripts and services):\n\
         \n\
         - interpreters: {}, and their versioned names (python3.11, perl5.36)\n\
         \n\
         - programs the system's own scripts run: {}\n\
         \n\
         Name a program to shim it anyway.",
        list(STARTS_PROGRAMS),
        list(BUILDS),
        list(BUILD_PREFIXES),
        list(BUILD_SUFFIXES),
        list(SCRIPT_TOOLS),
        list(INTERPRETERS),
        list(SYSTEM_CALLS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_scopes() {
        for (name, reason) in [
            ("sh", Reason::StartsPrograms),
            ("sudo", Reason::StartsPrograms),
            ("gcc-12", Reason::Builds),
            ("x86_64-linux-gnu-gcc", Reason::Builds),
            ("make", Reason::Builds),
            ("sed", Reason::ScriptTool),
            ("python3", Reason::Interpreter),
            ("python3.11", Reason::Interpreter),
            ("perl5.36.0", Reason::Interpreter),
            ("tar", Reason::SystemCalls),
            ("git", Reason::SystemCalls),
        ] {
            assert_eq!(super::reason(name), Some(reason), "{name}");
        }
        for free in [
            "jq",
            "ffmpeg",
            "evince",
            "python3-config",
            "perlbug",
            "pythonista",
        ] {
            assert_eq!(super::reason(free), None, "{free}");
        }
    }

    #[test]
    fn the_help_names_every_program_left_out() {
        let help = help();
        for list in [
            STARTS_PROGRAMS,
            BUILDS,
            SCRIPT_TOOLS,
            INTERPRETERS,
            SYSTEM_CALLS,
        ] {
            for name in list {
                assert!(
                    help.split([' ', '\n', ',', ':']).any(|w| w == *name),
                    "{name}"
                );
            }
        }
    }
}
