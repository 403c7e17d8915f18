//! The words of the profile reference: what each key means, its default, an
//! example, and constraints the planner checks that a JSON Schema can also
//! express. Which keys exist, their types, values and whether they are
//! required come from the parser itself ([`super::shape`]); the tests check
//! that every key it finds is described here and that nothing here is
//! unknown to it, that every example parses, and that every constraint
//! agrees with the planner. hutch-profile(5) and the JSON Schema
//! (`hutch schema`) are generated from the two together.
//!
//! Text conventions: `code` in backquotes; paragraphs separated by a blank
//! line; no other markup.

/// The documentation of one key (or table) of the profile format.
#[derive(Debug, Clone, Copy)]
pub struct Doc {
    /// Dotted path as [`super::shape::Shape::walk`] spells it:
    /// `seccomp.errno`, `mount[].dst`, `volumes.*.mode`.
    pub path: &'static str,
    /// One sentence: the editor's tooltip, the man page's first line.
    pub summary: &'static str,
    /// More for the man page; may be empty.
    pub details: &'static str,
    /// What applies when the key is absent, in words; empty for tables
    /// and required keys.
    pub default: &'static str,
    /// The default as a TOML value, where there is one (for editors).
    pub default_value: Option<&'static str>,
    /// A TOML value for the key, parsed by the tests; empty for tables.
    pub example: &'static str,
    /// The meaning of each value, for keys with a fixed set of them.
    pub values: &'static [(&'static str, &'static str)],
    /// A JSON Schema fragment (an object) merged into the key's schema:
    /// limits the planner enforces that the schema can state too.
    pub constraint: &'static str,
}

impl Doc {
    const fn new(path: &'static str, summary: &'static str) -> Doc {
        Doc {
            path,
            summary,
            details: "",
            default: "",
            default_value: None,
            example: "",
            values: &[],
            constraint: "",
        }
    }
}

/// Schema fragments shared by several keys, under `definitions` in the
/// JSON Schema (see `jsonschema.rs`, which fills in the variable names).
const PATH: &str = r##"{"$ref": "#/definitions/path"}"##;
const PATH_NOT_ROOT: &str = r##"{"$ref": "#/definitions/path", "not": {"pattern": "^/+$"}}"##;
/// `[protect]` entries: a path, or `!` and a path.
const PROTECT_PATHS: &str = r##"{"items": {"allOf": [{"$ref": "#/definitions/text"}, {"pattern": "^!?(/|~(/|$)|\\$\\{)"}, {"not": {"pattern": "(^!?|/)\\.\\.(/|$)"}}]}}"##;
const PATHS: &str = r##"{"items": {"$ref": "#/definitions/path"}}"##;
/// `[dbus.session]` and `[dbus.system]` take the same keys: their
/// constraints and texts, written once.
const BUS_NAMES: &str = r#"{"items": {"pattern": "^[A-Za-z_-][A-Za-z0-9_-]*(\\.[A-Za-z_-][A-Za-z0-9_-]*)+(\\.\\*)?$", "maxLength": 255}}"#;
const BUS_RULES: &str = r#"{"items": {"pattern": "^[A-Za-z_-][A-Za-z0-9_-]*(\\.[A-Za-z_-][A-Za-z0-9_-]*)+(\\.\\*)?=((\\*|[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)+(\\.\\*)?)(@(/|/\\*|(/[A-Za-z0-9_]+)+(/\\*)?))?|@(/|/\\*|(/[A-Za-z0-9_]+)+(/\\*)?))$"}}"#;
const BUS_RULE_EXAMPLE: &str = r#"["org.freedesktop.Notifications=org.freedesktop.Notifications.*@/org/freedesktop/Notifications"]"#;
const BUS_NAME_DETAILS: &str = "A well-known name, or a prefix ending in `.*` (`org.foo.*` matches org.foo and org.foo.bar, not org.foobar).";
const BUS_RULE_DETAILS: &str = "RULE is `[METHOD][@PATH]`: METHOD `*`, an interface (optionally ending in `.*`) or an interface's method; PATH an object path, optionally ending in `/*`.";
const ENFORCE: &[(&str, &str)] = &[
    ("required", "refuse to run if the kernel cannot apply it"),
    (
        "best-effort",
        "apply what the kernel supports; `--explain`, `-v` and a warning on each run say what was left out",
    ),
    ("off", "do not apply it"),
];

/// Every key of the profile format, in the order of the man page.
pub static KEYS: &[Doc] = &[
    Doc {
        details: "Every file must start with it, `.local.toml` overrides included. A file with another version is refused before any of its keys is looked at; see VERSIONS.",
        example: "1",
        constraint: r#"{"const": 1}"#,
        ..Doc::new("version", "The profile format version; this hutch reads 1.")
    },
    Doc {
        details: "Shown by `hutch profiles`.",
        example: r#""Untrusted CLI tool: current directory read-write""#,
        ..Doc::new("description", "What the profile is for, in one line.")
    },
    Doc {
        details: "Each entry is a profile name, looked up in the search path (see FILES; names may contain `/`, as in `base/system`), or a path ending in `.toml`, relative to the file that names it. The bases are applied first, depth first, each once, in the order given; then this file. A cycle is an error, as is a chain of more than 32 profiles (this one included) or more than 256 files read for one profile (overrides included).",
        default: "none",
        example: r#"["base/system"]"#,
        constraint: r#"{"items": {"anyOf": [{"pattern": "\\.toml$"}, {"pattern": "^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", "not": {"pattern": "(^|/)\\.{1,2}(/|$)"}}]}}"#,
        ..Doc::new("extends", "Profiles this one builds on.")
    },
    Doc {
        details: "A command given on the command line replaces it. Looked up in the sandbox's `PATH`.",
        default: "the command given on the command line; with an image, its Entrypoint and Cmd",
        example: r#"["/usr/bin/jq", "."]"#,
        constraint: r#"{"minItems": 1}"#,
        ..Doc::new("command", "The command to run when none is given.")
    },
    Doc {
        details: "Variables are expanded (see VARIABLES); the result must be an absolute path without `..`.",
        default: "the caller's directory if it is bound at the same path, else `/` (with an image: its WorkingDir)",
        example: r#""${CWD}""#,
        constraint: PATH,
        ..Doc::new("cwd", "The working directory inside the sandbox.")
    },
    Doc {
        details: "`\"read-only\"` binds it read-only (writes fail with EROFS); `\"read-write\"` lets the program change it. Either way the payload starts there, whatever `cwd` says. A directory that holds the user's whole world is never bound: the home directory or one above it, `/`, /tmp, /var/tmp, /dev/shm, /run and the runtime directory or one above them, anything in /proc, /sys, /dev or /run, and the socket directories in /tmp (`.X11-unix`, `tmux-*`, `ssh-*`): `\"read-only\"` then leaves it out and the payload starts in `cwd` (`--explain` and `-v` say why), `\"read-write\"` refuses to run. `[protect]` applies to the bind. Unix sockets under it are masked, /dev/null over each (a read-only bind does not stop `connect()` to one): the walk that finds them reads at most 4,096 entries, shallowest first; beyond them only the sockets listed in /proc/net/unix are masked, and `--explain` and `-v` say so.",
        default: "\"none\"",
        default_value: Some("\"none\""),
        example: r#""read-only""#,
        values: &[
            ("none", "the working directory is not bound"),
            (
                "read-only",
                "bound read-only; left out where it holds the user's whole world",
            ),
            (
                "read-write",
                "bound writable; refused where it holds the user's whole world",
            ),
        ],
        ..Doc::new(
            "workdir",
            "Bind the caller's working directory at its own path and start there.",
        )
    },
    Doc {
        details: "Each argument after the program (given after `--` or by the command line, not a profile's `command`) that names an existing host path, absolute or relative to the working directory, is bound at its real path, symlinks resolved: a symlink never widens what is bound, and one that leads into a path `[protect] hide` covers is refused. Options (arguments starting with `-`) are not paths. A directory that holds the user's whole world (see `workdir`) is left out, and `--explain` and `-v` say so; a path already shown at its own path with that access is not bound again. A unix socket is never bound (`-v` says so): only a bind written for it grants it.",
        default: "\"none\"",
        default_value: Some("\"none\""),
        example: r#""read-only""#,
        values: &[
            ("none", "arguments are not bound"),
            ("read-only", "the named paths are bound read-only"),
            (
                "read-write",
                "the named paths are bound writable (programs that change files in place)",
            ),
        ],
        ..Doc::new(
            "file_arguments",
            "Bind exactly the existing paths the command's arguments name.",
        )
    },
    Doc {
        details: "Applies to every bind of the sandbox: the profile's `[[mount]]` entries, `workdir` and binds given on the command line. Each list is unioned over the layers; an entry `!PATH` drops one a lower layer added. Paths missing on the host are skipped; nothing is created for them. The shipped `base/sensitive` fills the lists, and every shipped profile that binds anything of the home extends it.",
        ..Doc::new(
            "protect",
            "What a bind must not show, or must show read-only.",
        )
    },
    Doc {
        details: "Wherever a bind shows one of these host paths (it is the bind's source or below it), an empty, inaccessible tmpfs covers a directory and /dev/null, which cannot be opened, covers anything else. A bind of something inside a hidden path is refused. Variables are expanded (see VARIABLES).",
        example: r#"["${HOME}/.ssh", "${HOME}/.aws", "!${HOME}/.gnupg"]"#,
        constraint: PROTECT_PATHS,
        ..Doc::new(
            "protect.hide",
            "Host paths hidden wherever a bind would show them.",
        )
    },
    Doc {
        details: "Wherever a writable bind shows one of these host paths, it is bound again over itself read-only; a writable bind of something inside one becomes read-only. Read-only binds are left as they are. Variables are expanded (see VARIABLES).",
        example: r#"["${HOME}/.bashrc", "${HOME}/.config/autostart"]"#,
        constraint: PROTECT_PATHS,
        ..Doc::new(
            "protect.read_only",
            "Host paths made read-only wherever a writable bind would show them.",
        )
    },
    Doc {
        details: "Relative paths without `.` or `..`: for every writable bind of a directory, the path below its top is bound read-only over itself where it exists (a symlink is left alone). `!PATH` drops an inherited entry.",
        example: r#"[".git/config", ".git/hooks"]"#,
        constraint: r#"{"items": {"allOf": [{"pattern": "^!?[^/!]"}, {"not": {"pattern": "(^!?|/)\\.\\.?(/|$)"}}, {"not": {"pattern": "//|/$"}}]}}"#,
        ..Doc::new(
            "protect.read_only_in_binds",
            "Paths below the top of every writable bind made read-only (a repository's hooks).",
        )
    },
    Doc {
        details: "Needs the uts namespace. At most 64 letters, digits, `-` and `.`.",
        default: "\"hutch\"",
        default_value: Some("\"hutch\""),
        example: r#""build-box""#,
        constraint: r#"{"pattern": "^[A-Za-z0-9.-]{1,64}$"}"#,
        ..Doc::new("hostname", "The sandbox's hostname.")
    },
    Doc {
        details: "Whatever is chosen inside, the payload is always mapped to the caller's own uid and gid outside: \"self\" keeps them, \"root\" is uid and gid 0 inside, \"UID\" or \"UID:GID\" are those numbers inside (the gid defaults to the uid).",
        default: "\"self\"; with an image, its User (else root)",
        example: r#""root""#,
        ..Doc::new("identity", "Who the payload is inside the sandbox.")
    },
    Doc {
        details: "hutch's init reaps orphans, forwards signals and exits with the payload's status. With `false` the payload itself is PID 1 (and, like any PID 1, ignores signals it has no handler for).",
        default: "true",
        default_value: Some("true"),
        example: "false",
        ..Doc::new(
            "init",
            "Run hutch's init as PID 1, the payload as its child.",
        )
    },
    Doc {
        details: "Applies where the last mount at the home directory is a `tmpfs` (as in `cli` and `base/edits-cwd`): what the program writes there is gone when the sandbox ends. When the payload has exited, hutch's init lists the home (not the mounts in it: volumes, the working directory) and, if anything was written, says so once on stderr, naming up to 10 entries (`~/.gitconfig`, `~/.cache/tool`); nothing is said when nothing was written. Needs `init`.",
        default: "true",
        default_value: Some("true"),
        example: "false",
        ..Doc::new(
            "home_note",
            "Say at exit what was written to a temporary (tmpfs) home and is now gone.",
        )
    },
    Doc {
        details: "Each entry names the `dst` of a `[[mount]]` entry from a profile this one extends (variables expanded); that entry is dropped. Naming nothing inherited is an error.",
        example: r#"["/tmp"]"#,
        constraint: PATHS,
        ..Doc::new(
            "remove",
            "Drop inherited `[[mount]]` entries, by destination.",
        )
    },
    Doc {
        details: "The payload cannot type into the caller's shell in any mode: with the caller's terminal kept, the seccomp filter blocks the TIOCSTI and TIOCLINUX ioctls (so \"inherit\" needs the filter); with \"pty\" the caller's terminal never enters the sandbox. \"pty\" is what `docker run -it` does: `tty` names a /dev/pts entry that exists inside, the terminal is in raw mode while hutch relays it (restored when hutch exits, and after a SIGKILL of hutch by its `hutch-tty` keeper process), window size changes follow, Ctrl-C and Ctrl-Z reach the payload, and a payload stopped by Ctrl-Z stops hutch until `fg`. It needs a `dev` mount at /dev (a private devpts).",
        default: "\"auto\"",
        default_value: Some("\"auto\""),
        example: r#""pty""#,
        values: &[
            (
                "auto",
                "keep the caller's terminal when standard input is one, else as \"none\"",
            ),
            ("inherit", "always keep it: same session, job control works"),
            ("none", "a new session without a controlling terminal"),
            (
                "pty",
                "a pseudo-terminal of its own, relayed by hutch, when standard input and output are terminals; else as \"auto\"",
            ),
        ],
        ..Doc::new(
            "terminal",
            "Whether the payload keeps the caller's terminal, or gets one of its own.",
        )
    },
    Doc {
        details: "Instead of an empty tmpfs. Bound read-only, recursively, nosuid and nodev, unless `writable` gives it a writable layer; the `[[mount]]` entries go on top, so their mount points must exist in it (a writable layer creates them). Set either `root` or `image` in one file; the last layer that sets one decides. Needs the mount namespace.",
        example: r#""/srv/debian""#,
        constraint: PATH,
        ..Doc::new("root", "A host directory to use as the sandbox's `/`.")
    },
    Doc {
        details: "The image's layers are stacked read-only with overlayfs; its Entrypoint, Cmd, Env, WorkingDir and User are defaults that the profile's keys override. `hutch run --image` overrides it.",
        example: r#""busybox""#,
        constraint: r#"{"pattern": "^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,254}$"}"#,
        ..Doc::new(
            "image",
            "An imported image (`hutch image list`) to use as the sandbox's `/`.",
        )
    },
    Doc {
        details: "`false`: read-only. \"tmpfs\": changes in memory, gone at exit. An absolute path (variables allowed): changes kept in its `upper` directory across runs, one sandbox at a time. \"volume:NAME\": the same in a volume (created if missing). Needs `root` or `image`. A tmpfs layer needs Linux 6.6 or later; a directory needs a filesystem with user extended attributes.",
        default: "false with `root`, \"tmpfs\" with `image`",
        example: r#""volume:debian-changes""#,
        ..Doc::new("writable", "The writable layer over `root` or `image`.")
    },
    Doc {
        details: "Each key is a namespace; all are `true` (new, private) by default. Setting one to `false` shares the host's.",
        ..Doc::new("namespaces", "Which namespaces the sandbox gets.")
    },
    Doc {
        details: "`false` only works as root.",
        default: "true",
        default_value: Some("true"),
        example: "true",
        ..Doc::new(
            "namespaces.user",
            "A user namespace (how hutch works without privileges).",
        )
    },
    Doc {
        details: "Needed by `[[mount]]`, `root`, `image` and volumes.",
        default: "true",
        default_value: Some("true"),
        example: "true",
        ..Doc::new(
            "namespaces.mount",
            "A mount namespace: the sandbox's own filesystem tree.",
        )
    },
    Doc {
        default: "true",
        default_value: Some("true"),
        example: "true",
        ..Doc::new(
            "namespaces.pid",
            "A pid namespace: the sandbox sees only its own processes.",
        )
    },
    Doc {
        details: "Needed by `hostname`.",
        default: "true",
        default_value: Some("true"),
        example: "true",
        ..Doc::new(
            "namespaces.uts",
            "A uts namespace: the sandbox's own hostname.",
        )
    },
    Doc {
        default: "true",
        default_value: Some("true"),
        example: "true",
        ..Doc::new(
            "namespaces.ipc",
            "An ipc namespace: no System V IPC or POSIX message queues shared with the host.",
        )
    },
    Doc {
        details: "A new network namespace has only a loopback interface: no network. `false` shares the host's network; say it explicitly.",
        default: "true",
        default_value: Some("true"),
        example: "false",
        ..Doc::new("namespaces.net", "A network namespace.")
    },
    Doc {
        default: "true",
        default_value: Some("true"),
        example: "true",
        ..Doc::new(
            "namespaces.cgroup",
            "A cgroup namespace: /proc/self/cgroup shows the sandbox's own cgroup as `/`.",
        )
    },
    Doc {
        details: "Variables kept by default: TERM COLORTERM NO_COLOR LANG LANGUAGE LC_* TZ USER LOGNAME. Set unless the profile sets them: PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin and HOME.",
        ..Doc::new("env", "The payload's environment.")
    },
    Doc {
        default: "true",
        default_value: Some("true"),
        example: "true",
        ..Doc::new(
            "env.clear",
            "Start from an empty environment (`false`: from the caller's).",
        )
    },
    Doc {
        details: "Added to the default keep list. An entry is a variable name, a prefix pattern ending in `*`, or `!NAME` (or `!PREFIX*`) to drop a name kept by default or by a lower layer.",
        example: r#"["SSH_AUTH_SOCK", "MY_PREFIX_*", "!TZ"]"#,
        constraint: r#"{"items": {"pattern": "^!?([A-Za-z_][A-Za-z0-9_]*\\*?|\\*)$"}}"#,
        ..Doc::new("env.keep", "Variables passed through from the caller.")
    },
    Doc {
        details: "Values may use variables (see VARIABLES).",
        example: r#"{ EDITOR = "vi", DATA = "${HOME}/data" }"#,
        constraint: r##"{"additionalProperties": {"$ref": "#/definitions/text"}}"##,
        ..Doc::new("env.set", "Variables set explicitly.")
    },
    Doc {
        details: "The default filter checks the architecture and denies with EPERM the groups @keyring @bpf @perf @userfaultfd @kexec @module @handle @debug @mount @swap @reboot @syslog @acct @clock @raw-io @personality @userns and @tty-inject, and with ENOSYS @io_uring (io_uring opens, reads, writes, connects and sends without those system calls, so no filter sees them; programs fall back to the plain calls).",
        ..Doc::new("seccomp", "The system call filter.")
    },
    Doc {
        default: "\"required\"",
        default_value: Some("\"required\""),
        example: r#""best-effort""#,
        values: ENFORCE,
        ..Doc::new("seccomp.enforce", "How strictly the filter is required.")
    },
    Doc {
        details: "Turning it off must be written out.",
        default: "true",
        default_value: Some("true"),
        example: "true",
        ..Doc::new("seccomp.default", "Use hutch's default filter.")
    },
    Doc {
        details: "System call names (as in syscalls(2)) or @groups. A name unknown on this machine's architecture is an error. `allow = [\"@io_uring\"]` is the only way to keep io_uring beside a `deny` of a call it can perform; `--explain` and `-v` then name the denied calls io_uring can still perform.",
        example: r#"["ptrace"]"#,
        ..Doc::new(
            "seccomp.allow",
            "System calls or @groups taken out of the filter.",
        )
    },
    Doc {
        details: "A call io_uring can perform (socket, connect, openat, read, write, sendto, ...: the kernel's io_uring operations) also denies @io_uring, unless the same file or a later one allows @io_uring.",
        example: r#"["@keyring", "socket"]"#,
        ..Doc::new(
            "seccomp.deny",
            "System calls or @groups added to the filter.",
        )
    },
    Doc {
        default: "\"errno\"",
        default_value: Some("\"errno\""),
        example: r#""log""#,
        values: &[
            ("errno", "the call fails with `errno`"),
            (
                "log",
                "nothing is blocked; every rule only logs (learning which calls a program makes)",
            ),
            ("kill", "the process is killed"),
        ],
        ..Doc::new("seccomp.action", "What calls in `deny` get.")
    },
    Doc {
        default: "\"EPERM\"",
        default_value: Some("\"EPERM\""),
        example: r#""EACCES""#,
        ..Doc::new(
            "seccomp.errno",
            "The error denied calls return with `action = \"errno\"`.",
        )
    },
    Doc {
        details: "Browsers' own sandboxes need it.",
        default: "false",
        default_value: Some("false"),
        example: "true",
        ..Doc::new(
            "seccomp.nested_userns",
            "Allow creating user namespaces inside the sandbox.",
        )
    },
    Doc {
        details: "Paths in its rules are paths inside the sandbox; a symlink on the way is followed only where it lies on a read-only mount (one on a writable mount could be the payload's, put there to widen a rule when `hutch exec` applies the rules again).",
        ..Doc::new(
            "landlock",
            "Landlock rules: which files and ports the payload may use.",
        )
    },
    Doc {
        default: "\"required\"",
        default_value: Some("\"required\""),
        example: r#""best-effort""#,
        values: ENFORCE,
        ..Doc::new(
            "landlock.fs",
            "How strictly the filesystem rules are required.",
        )
    },
    Doc {
        details: "Read-only binds may be read and executed, writable binds and tmpfs read and written, device nodes used only in /dev, any directory listed; nothing else.",
        default: "true",
        default_value: Some("true"),
        example: "true",
        ..Doc::new(
            "landlock.from_mounts",
            "Derive filesystem rules from the `[[mount]]` entries.",
        )
    },
    Doc {
        example: r#"["/opt/tool"]"#,
        constraint: PATHS,
        ..Doc::new(
            "landlock.read",
            "Extra paths the payload may read and execute.",
        )
    },
    Doc {
        example: r#"["/data/out"]"#,
        constraint: PATHS,
        ..Doc::new(
            "landlock.write",
            "Extra paths the payload may read and write.",
        )
    },
    Doc {
        details: "TCP port rules need Landlock ABI 4 (Linux 6.7); they apply when `tcp_bind` or `tcp_connect` is given.",
        default: "\"required\"",
        default_value: Some("\"required\""),
        example: r#""best-effort""#,
        values: ENFORCE,
        ..Doc::new(
            "landlock.net",
            "How strictly the TCP port rules are required.",
        )
    },
    Doc {
        details: "An empty list forbids binding any.",
        default: "no rule: any port",
        example: "[8080]",
        ..Doc::new("landlock.tcp_bind", "TCP ports the payload may bind.")
    },
    Doc {
        details: "An empty list forbids connecting anywhere over TCP.",
        default: "no rule: any port",
        example: "[443]",
        ..Doc::new(
            "landlock.tcp_connect",
            "TCP ports the payload may connect to.",
        )
    },
    Doc {
        details: "Landlock ABI 6 (Linux 6.12): the payload can neither reach the host's abstract sockets (@X11, D-Bus) nor signal host processes, even with a shared network or pid namespace.",
        default: "\"best-effort\"",
        default_value: Some("\"best-effort\""),
        example: r#""required""#,
        values: ENFORCE,
        ..Doc::new(
            "landlock.scope",
            "Keep abstract unix sockets and signals inside the sandbox.",
        )
    },
    Doc {
        details: "Each sets the soft and the hard limit: a number, a size, or \"unlimited\". See setrlimit(2).",
        ..Doc::new("rlimits", "Resource limits of the payload's processes.")
    },
    Doc {
        example: "1024",
        ..Doc::new("rlimits.nofile", "Open file descriptors (RLIMIT_NOFILE).")
    },
    Doc {
        example: "512",
        ..Doc::new("rlimits.nproc", "Processes of the user (RLIMIT_NPROC).")
    },
    Doc {
        example: r#""4G""#,
        ..Doc::new("rlimits.as", "Address space (RLIMIT_AS).")
    },
    Doc {
        example: "0",
        ..Doc::new("rlimits.core", "Core file size (RLIMIT_CORE).")
    },
    Doc {
        example: "60",
        ..Doc::new("rlimits.cpu", "CPU seconds (RLIMIT_CPU).")
    },
    Doc {
        example: r#""1G""#,
        ..Doc::new("rlimits.fsize", "File size (RLIMIT_FSIZE).")
    },
    Doc {
        example: r#""8M""#,
        ..Doc::new("rlimits.stack", "Stack size (RLIMIT_STACK).")
    },
    Doc {
        example: r#""64K""#,
        ..Doc::new("rlimits.memlock", "Locked memory (RLIMIT_MEMLOCK).")
    },
    Doc {
        details: "hutch asks for a cgroup where the system hands them out: a transient systemd scope over D-Bus, a delegated cgroup v2 subtree, or as root cgroup v2 or v1 directly. `--explain` shows the choice.",
        ..Doc::new(
            "limits",
            "cgroup limits on everything in the sandbox together.",
        )
    },
    Doc {
        default: "\"required\"",
        default_value: Some("\"required\""),
        example: r#""best-effort""#,
        values: ENFORCE,
        ..Doc::new("limits.enforce", "How strictly the limits are required.")
    },
    Doc {
        details: "At least \"1M\". The payload is OOM-killed above it; hutch then exits with 137 and says so.",
        example: r#""512M""#,
        constraint: r#"{"not": {"type": "integer", "maximum": 1048575}}"#,
        ..Doc::new(
            "limits.memory",
            "Memory (memory.max): a size, or \"unlimited\".",
        )
    },
    Doc {
        example: "0",
        ..Doc::new(
            "limits.swap",
            "Swap (memory.swap.max): a size; 0 forbids swapping.",
        )
    },
    Doc {
        details: "From 0.01 to 4096.",
        example: "0.5",
        constraint: r#"{"minimum": 0.01, "maximum": 4096}"#,
        ..Doc::new(
            "limits.cpu",
            "CPU time as a number of CPUs: 0.5 is half of one, 2 two.",
        )
    },
    Doc {
        default: "100",
        default_value: Some("100"),
        example: "200",
        constraint: r#"{"minimum": 1, "maximum": 10000}"#,
        ..Doc::new(
            "limits.cpu_weight",
            "Share of CPU against siblings (cpu.weight), 1 to 10000.",
        )
    },
    Doc {
        details: "At least 2 with hutch's init (init and the payload), else 1.",
        example: "256",
        constraint: r#"{"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]}"#,
        ..Doc::new("limits.pids", "Processes and threads (pids.max).")
    },
    Doc {
        default: "100",
        default_value: Some("100"),
        example: "200",
        constraint: r#"{"minimum": 1, "maximum": 10000}"#,
        ..Doc::new(
            "limits.io_weight",
            "Share of disk I/O against siblings (io.weight), 1 to 10000.",
        )
    },
    Doc {
        details: "Without it, the network is that of `[namespaces] net`: a namespace of its own with loopback only (mode \"none\"), or the host's with `net = false`. Setting both in ways that disagree is an error. In mode \"user\" the sandbox gets a private network namespace with an address, a default route and IPv6 where the host has them, connected to the outside by pasta (the package `passt`) or slirp4netns, which hutch starts beside the sandbox and stops with it. Every automatic port forward of pasta is off: the sandbox reaches the host's loopback only through `host_ports` or `host_loopback`, and the host reaches the sandbox only through `publish`. Single values come from the last file that sets them; lists are concatenated over the files.",
        ..Doc::new("network", "How the sandbox reaches the network.")
    },
    Doc {
        default: "\"none\", or what `[namespaces] net` says",
        default_value: Some("\"none\""),
        example: r#""user""#,
        values: &[
            ("none", "a network namespace of its own with loopback only"),
            (
                "host",
                "the host's network, shared: services on the host's localhost, its abstract unix sockets (X11, D-Bus) and its resolver are reachable; `--explain` and `-v` warn",
            ),
            (
                "user",
                "a network namespace of its own, connected to the outside by pasta or slirp4netns, with a generated /etc/resolv.conf and the egress rules",
            ),
        ],
        ..Doc::new("network.mode", "The network the sandbox gets.")
    },
    Doc {
        default: "\"required\"",
        default_value: Some("\"required\""),
        example: r#""best-effort""#,
        values: &[
            (
                "required",
                "refuse to run when mode \"user\" cannot be set up here (no pasta nor slirp4netns that can honour the profile)",
            ),
            (
                "best-effort",
                "run with mode \"none\" instead, and say so on each run",
            ),
        ],
        ..Doc::new(
            "network.enforce",
            "Whether mode \"user\" may fall back to no network.",
        )
    },
    Doc {
        default: "\"auto\"",
        default_value: Some("\"auto\""),
        example: r#""pasta""#,
        values: &[
            (
                "auto",
                "pasta if installed, else slirp4netns when the profile forwards no single port",
            ),
            ("pasta", "pasta only (the package `passt`)"),
            (
                "slirp4netns",
                "slirp4netns only; it cannot forward single ports (`host_ports`, `publish`)",
            ),
        ],
        ..Doc::new(
            "network.backend",
            "The program that connects a mode \"user\" sandbox.",
        )
    },
    Doc {
        details: "The sandbox's /etc/resolv.conf is generated, read-only, and mounted over the host's: it names the program's DNS forwarder (pasta: 169.254.1.1; slirp4netns: 10.0.2.3), which forwards to the first nameserver of the host's resolv.conf. The host's resolver sockets (nscd, systemd-resolved) are not reachable. With false, the file names no nameserver.",
        default: "true",
        default_value: Some("true"),
        example: "false",
        ..Doc::new(
            "network.dns",
            "DNS through the program's forwarder (mode \"user\").",
        )
    },
    Doc {
        details: "The gateway's address then reaches the host's loopback, every port of it (pasta without `--no-map-gw`; slirp4netns's 10.0.2.2). Prefer `host_ports`.",
        default: "false",
        default_value: Some("false"),
        example: "true",
        ..Doc::new(
            "network.host_loopback",
            "Whether the whole host loopback is reachable (mode \"user\").",
        )
    },
    Doc {
        details: "Each entry is a port number (TCP) or \"PORT/tcp\", \"PORT/udp\": a connection to that port on the sandbox's 127.0.0.1 reaches the same port on the host's loopback (pasta's `-T`/`-U`). A port listed twice is an error. Needs pasta.",
        example: r#"[5432, "53/udp"]"#,
        ..Doc::new(
            "network.host_ports",
            "Host loopback ports the sandbox reaches on its own loopback (mode \"user\").",
        )
    },
    Doc {
        details: "Each entry is `[ADDR:]HOST:SANDBOX[/tcp|/udp]`, like `docker -p`: the host's port HOST, on ADDR (127.0.0.1 unless given; an IPv6 address in brackets), reaches port SANDBOX inside (pasta's `-t`/`-u`). A host port already in use fails the launch with pasta's message. Needs pasta.",
        example: r#"["8080:80", "127.0.0.1:5353:53/udp"]"#,
        // `plan::network::parse_publish`; the IPv6 address is checked loosely.
        constraint: r#"{"items": {"pattern": "^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}:|\\[[0-9A-Fa-f:.]+\\]:)?([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])(/(tcp|udp))?$"}}"#,
        ..Doc::new(
            "network.publish",
            "Host ports forwarded into the sandbox (mode \"user\").",
        )
    },
    Doc {
        default: "\"required\"",
        default_value: Some("\"required\""),
        example: r#""off""#,
        values: &[
            (
                "required",
                "install the egress rules in the sandbox's network namespace (nftables), and refuse to run if the kernel cannot",
            ),
            (
                "off",
                "no rules: the LAN, link-local and cloud metadata addresses are reachable; `allow` and `deny` are then errors",
            ),
        ],
        ..Doc::new(
            "network.filter",
            "Whether the egress rules are installed (mode \"user\").",
        )
    },
    Doc {
        details: "Each entry is `ADDR[/PREFIX][:PORTS][/tcp|/udp]`, an IPv6 address in brackets when ports follow (\"[::]/0:443\"); PORTS is N or N-M, for both TCP and UDP unless a protocol is given. By default the private, shared (CGNAT), link-local and unique-local ranges (10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16, fc00::/7, fe80::/10) and the host's own addresses are refused and everything else is allowed. An entry inside those ranges opens it; with any entry outside them, the list becomes an allow list: what no entry allows is refused. The DNS forwarder's port 53 is always allowed. Rules match addresses, ports and protocols, never host names.",
        example: r#"["0.0.0.0/0:443", "[::]/0:443", "192.168.1.0/24"]"#,
        ..Doc::new(
            "network.allow",
            "Destinations the sandbox may reach (mode \"user\").",
        )
    },
    Doc {
        details: "Same form as `allow`; checked before every `allow` entry.",
        example: r#"["203.0.113.0/24", "0.0.0.0/0:25/tcp"]"#,
        ..Doc::new(
            "network.deny",
            "Destinations refused, before anything is allowed (mode \"user\").",
        )
    },
    Doc {
        details: "Entries apply in order, later ones over earlier ones; inherited entries come first. An entry whose `dst` equals an inherited one replaces it in place; two entries with the same `dst` in one file are an error. All binds are nosuid; all but `dev-bind` are nodev. Which keys an entry takes depends on its `type`.",
        ..Doc::new(
            "mount",
            "The sandbox's filesystem, as an ordered list of `[[mount]]` tables.",
        )
    },
    Doc {
        example: r#""ro-bind""#,
        values: &[
            (
                "ro-bind",
                "bind `src` read-only, recursively: every submount is read-only too",
            ),
            ("bind", "bind `src` writable"),
            ("dev-bind", "bind `src` writable, with device nodes usable"),
            ("tmpfs", "an empty, private tmpfs (`size`, `mode`)"),
            ("proc", "a /proc for the sandbox's own pid namespace"),
            (
                "dev",
                "a minimal /dev: null zero full random urandom tty, a private pts and ptmx, shm, and the fd and std* links",
            ),
            ("dir", "a directory (`mode`)"),
            (
                "symlink",
                "a symlink to `target`, which may not lead out of the sandbox",
            ),
            ("file", "a read-only file with `content` (`mode`)"),
        ],
        ..Doc::new("mount[].type", "What the entry mounts.")
    },
    Doc {
        details: "Required by the bind types. Must exist unless `optional = true`.",
        example: r#""/usr""#,
        constraint: PATH,
        ..Doc::new("mount[].src", "The host path to bind.")
    },
    Doc {
        details: "Resolved inside the sandbox without following symlinks out of it; not `/`.",
        example: r#""/usr""#,
        constraint: PATH_NOT_ROOT,
        ..Doc::new("mount[].dst", "Where the entry appears inside the sandbox.")
    },
    Doc {
        default: "false",
        default_value: Some("false"),
        example: "true",
        ..Doc::new(
            "mount[].optional",
            "Skip the entry, silently, if `src` does not exist.",
        )
    },
    Doc {
        default: "\"0755\" for directories, \"1777\" for tmpfs, \"0444\" for files",
        example: r#""0700""#,
        ..Doc::new(
            "mount[].mode",
            "Permission bits of a `tmpfs`, `dir` or `file`.",
        )
    },
    Doc {
        default: "the kernel's (half of the RAM)",
        example: r#""64M""#,
        ..Doc::new("mount[].size", "The size limit of a `tmpfs`.")
    },
    Doc {
        details: "Required by `symlink`.",
        example: r#""usr/bin""#,
        constraint: r##"{"$ref": "#/definitions/text"}"##,
        ..Doc::new("mount[].target", "Where a `symlink` points.")
    },
    Doc {
        details: "Required by `file`.",
        example: r#""nameserver 127.0.0.1\n""#,
        ..Doc::new("mount[].content", "The content of a `file`.")
    },
    Doc {
        details: "For example /bin on merged-/usr systems, a link to usr/bin.",
        default: "false",
        default_value: Some("false"),
        example: "true",
        ..Doc::new(
            "mount[].keep_symlink",
            "When `src` is a symlink, recreate it instead of binding its target.",
        )
    },
    Doc {
        details: "A volume NAME (1 to 64 letters, digits, `_`, `-`, `.`, starting with a letter or digit) lives in $XDG_DATA_HOME/hutch/volumes/NAME, created empty (mode 0700) on first use and never deleted but by `hutch volume rm`. Volumes are mounted after every `[[mount]]` entry, shallowest first. Each key may come from a different layer; `dst` must be set by one of them; two volumes may not share a `dst`.",
        constraint: r#"{"propertyNames": {"pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}}"#,
        ..Doc::new(
            "volumes",
            "Directories kept by hutch that outlive the sandbox: `[volumes.NAME]` tables.",
        )
    },
    Doc {
        details: "Required (in some layer); not `/`.",
        example: r#""~/.cache/prog""#,
        constraint: PATH_NOT_ROOT,
        ..Doc::new(
            "volumes.*.dst",
            "Where the volume appears inside the sandbox.",
        )
    },
    Doc {
        default: "\"rw\"",
        default_value: Some("\"rw\""),
        example: r#""ro""#,
        values: &[("rw", "read-write"), ("ro", "read-only")],
        ..Doc::new("volumes.*.mode", "How the volume is mounted.")
    },
    Doc {
        details: "hutch holds a lock on the volume for the sandbox's life: exclusive, or shared with `shared = true`, and refuses a second user meanwhile.",
        default: "false",
        default_value: Some("false"),
        example: "true",
        ..Doc::new(
            "volumes.*.shared",
            "Several sandboxes may use the volume at once.",
        )
    },
    Doc {
        details: "Under $XDG_DATA_HOME/hutch/volumes/.tmp/SANDBOX/NAME. Cannot be `shared` or read-only.",
        default: "false",
        default_value: Some("false"),
        example: "true",
        ..Doc::new(
            "volumes.*.tmp",
            "A fresh, empty directory on disk for this sandbox only, deleted when it exits.",
        )
    },
    Doc {
        details: "The app gets a private runtime directory (a tmpfs at `/run/user/UID`, mode 0700, as `XDG_RUNTIME_DIR`) into which hutch binds only the sockets granted here, never the host's runtime directory. `DISPLAY`, `WAYLAND_DISPLAY`, `XAUTHORITY`, `XDG_SESSION_TYPE`, `PULSE_SERVER`, `PULSE_COOKIE` and `DBUS_SESSION_BUS_ADDRESS` are set to the sandbox's values or removed, whatever the profile keeps of the caller's environment; an explicit `[env] set` still wins. `--explain` says what each grant exposes.",
        ..Doc::new(
            "desktop",
            "What a graphical app gets of your session: display, sound, app id.",
        )
    },
    Doc {
        details: "With Wayland, where the compositor offers `wp_security_context_v1` (wlroots 0.17+, sway 1.9+, KWin, Smithay-based compositors; not Mutter, not Weston 10), the app gets a socket of its own registered as a security context (engine `hutch`, this profile's app id, hutch's pid as instance), and the compositor withholds privileged protocols (screen capture, input injection) from it; otherwise the compositor's own socket. A display for a sandbox that shares the host's network namespace needs Landlock ABI 6 (abstract socket scoping).",
        default: "no display",
        example: r#""wayland""#,
        values: &[
            (
                "auto",
                "Wayland where the host has a compositor, else X11 as `x11` says",
            ),
            (
                "wayland",
                "the Wayland compositor only (`$WAYLAND_DISPLAY`)",
            ),
            ("x11", "X11 only, as `x11` says (`$DISPLAY`)"),
        ],
        ..Doc::new("desktop.display", "Which display server the app talks to.")
    },
    Doc {
        details: "Needed when `display` may choose X11. With `host`, the display's socket is bound at /tmp/.X11-unix/XN inside, with a private Xauthority holding only its cookie, under the wildcard family (it matches any hostname, the sandbox's `hutch` too). With `nested`, hutch starts Xephyr (Debian: xserver-xephyr) in a sandbox of its own that gets only the host display and a private directory; Xephyr listens only on a socket there (no TCP, no abstract socket), with a fresh cookie, and the app gets that socket and cookie. A TCP display (`ssh -X`) is refused.",
        example: r#""nested""#,
        values: &[
            (
                "host",
                "the host display's socket: the app sees every window on that display, can read their contents, capture the screen and send them input",
            ),
            (
                "nested",
                "a nested X server (Xephyr) of the app's own, itself in a sandbox, shown as one window on the host display: the app sees only its own windows; no clipboard shared with the host",
            ),
        ],
        ..Doc::new("desktop.x11", "How the app gets X11.")
    },
    Doc {
        details: "PulseAudio's `pulse/native` (with a copy of its cookie) and PipeWire's `pipewire-0`, whichever the host has. Not a security boundary: a client of either can load modules into your sound server and record what it records; PipeWire's socket also reaches its video nodes (cameras, screen-cast streams).",
        default: "false",
        default_value: Some("false"),
        example: "true",
        ..Doc::new("desktop.audio", "The sound server's sockets.")
    },
    Doc {
        details: "Given to the compositor with a Wayland security context (and to portals). It must start with `hutch.`: an app id outside it could claim another application's identity, and compositors such as KWin grant privileged protocols by app id.",
        default: "`hutch.` and the profile's name (`/` as `.`; a file's stem)",
        example: r#""hutch.editor""#,
        constraint: r#"{"pattern": "^hutch\\.[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$", "maxLength": 255}"#,
        ..Doc::new("desktop.app_id", "The app's id.")
    },
    Doc {
        default: "\"required\"",
        default_value: Some("\"required\""),
        example: r#""best-effort""#,
        values: &[
            (
                "required",
                "a granted socket that is missing stops the launch, naming it",
            ),
            (
                "best-effort",
                "what is missing is left out; `--explain` and `-v` say what",
            ),
        ],
        ..Doc::new(
            "desktop.enforce",
            "Whether a missing display or sound server stops the launch.",
        )
    },
    Doc {
        details: "Each class is bound from the host at its own path inside the minimal `/dev` (read-only mounts without `nodev`: its nodes can be read, written and ioctl'd, nothing added), and Landlock's derived rules allow exactly that on them. Lists from all layers add up; `!NAME` takes back a class a lower layer granted.",
        ..Doc::new("devices", "Host devices granted one class at a time.")
    },
    Doc {
        details: "Classes: `dri` (the GPU: /dev/dri, and read-only the sysfs entries Mesa and libdrm read to identify it: its /sys/dev/char links and its own device directory), `snd` (/dev/snd), `video` (/dev/video*, /dev/media*), `input` (/dev/input), `fuse` (/dev/fuse), `kvm` (/dev/kvm).",
        default: "none",
        example: r#"["dri", "snd"]"#,
        constraint: r#"{"items": {"pattern": "^!?(dri|snd|video|input|fuse|kvm)$"}}"#,
        ..Doc::new("devices.allow", "The device classes granted.")
    },
    Doc {
        default: "\"required\"",
        default_value: Some("\"required\""),
        example: r#""best-effort""#,
        values: &[
            (
                "required",
                "a class with no device on this machine stops the launch",
            ),
            (
                "best-effort",
                "such a class is left out; `--explain` and `-v` say so",
            ),
        ],
        ..Doc::new(
            "devices.enforce",
            "Whether a granted class missing on this machine stops the launch.",
        )
    },
    Doc {
        details: "Each bus named here (`[dbus.session]`, `[dbus.system]`) is given only through one xdg-dbus-proxy that hutch starts for the sandbox and stops with it, with a filter made of the table's rules (Flatpak's vocabulary); a bus not named is not given at all, and its address variable is removed. A named bus with no rules lets the app talk to the bus itself and nobody else. Needs the desktop section's private runtime directory (made for `[dbus]` alone too); with the host's network namespace, Landlock ABI 6 (abstract socket scoping), since an abstract-socket bus would be reachable around the proxy. Lists of all layers add up.",
        ..Doc::new(
            "dbus",
            "The D-Bus buses the app reaches, through a filtering proxy.",
        )
    },
    Doc {
        details: "Through the proxy: the session bus (`$DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`), at `$XDG_RUNTIME_DIR/bus` inside.",
        ..Doc::new("dbus.session", "The session bus, filtered.")
    },
    Doc {
        details: BUS_NAME_DETAILS,
        default: "none",
        example: r#"["org.freedesktop.secrets"]"#,
        constraint: BUS_NAMES,
        ..Doc::new(
            "dbus.session.see",
            "Names the app may see on the bus (listed, their owner looked up), and no more.",
        )
    },
    Doc {
        details: "Implies `see`. A well-known name, or a prefix ending in `.*`.",
        default: "none",
        example: r#"["org.freedesktop.Notifications"]"#,
        constraint: BUS_NAMES,
        ..Doc::new(
            "dbus.session.talk",
            "Names the app may call and hear broadcasts from.",
        )
    },
    Doc {
        details: "Implies `talk`. A well-known name, or a prefix ending in `.*`.",
        default: "none",
        example: r#"["org.mpris.MediaPlayer2.hutch.*"]"#,
        constraint: BUS_NAMES,
        ..Doc::new(
            "dbus.session.own",
            "Names the app may own (request, release), and talk to.",
        )
    },
    Doc {
        details: BUS_RULE_DETAILS,
        default: "none",
        example: BUS_RULE_EXAMPLE,
        constraint: BUS_RULES,
        ..Doc::new(
            "dbus.session.call",
            "`NAME=RULE`: the calls the app may make to NAME without `talk`.",
        )
    },
    Doc {
        details: "RULE as for `call`.",
        default: "none",
        example: BUS_RULE_EXAMPLE,
        constraint: BUS_RULES,
        ..Doc::new(
            "dbus.session.broadcast",
            "`NAME=RULE`: the broadcast signals the app hears from NAME without `talk`.",
        )
    },
    Doc {
        details: "Each interface becomes proxy rules that let the app call that interface of org.freedesktop.portal.Desktop at /org/freedesktop/portal/desktop and hear its signals, plus what every portal call needs: closing its Request and Session objects (/org/freedesktop/portal/desktop/request/*, .../session/*) and hearing their Response and Closed signals, and Properties.Get on the portal object (which reads any portal interface's properties: their version, and states such as a power-saver flag). Nothing else of the portal, and without this key the portal's name is not even visible. Names the session bus (the proxy's session socket is given even without `[dbus.session]`). The portal sees the app as a host app, never as a Flatpak app: hutch writes no Flatpak metadata, so xdg-desktop-portal grants it what it grants programs outside any sandbox; the filter here and what the sandbox can see are the protection (a FileChooser answers with host paths the app cannot open unless they are bound). Where the user has a systemd manager, the proxy runs in the app scope `app-hutch-APPID-PID.scope`, from which the portal reads the app id (`[desktop] app_id`; xdg-desktop-portal 1.16 reads only ids of three or more elements, 1.17+ only ids with a .desktop file); `--explain` says who the portal takes the app for. Interfaces: Account, Background, Camera, Clipboard, DynamicLauncher, Email, FileChooser, GameMode, GlobalShortcuts, Inhibit, InputCapture, Location, MemoryMonitor, NetworkMonitor, Notification, OpenURI, PowerProfileMonitor, Print, ProxyResolver, Realtime, RemoteDesktop, ScreenCast, Screenshot, Secret, Settings, Trash, Usb, Wallpaper. Lists of all layers add up.",
        default: "none",
        example: r#"["FileChooser", "OpenURI", "Settings"]"#,
        constraint: r#"{"items": {"enum": ["Account", "Background", "Camera", "Clipboard", "DynamicLauncher", "Email", "FileChooser", "GameMode", "GlobalShortcuts", "Inhibit", "InputCapture", "Location", "MemoryMonitor", "NetworkMonitor", "Notification", "OpenURI", "PowerProfileMonitor", "Print", "ProxyResolver", "Realtime", "RemoteDesktop", "ScreenCast", "Screenshot", "Secret", "Settings", "Trash", "Usb", "Wallpaper"]}}"#,
        ..Doc::new(
            "dbus.portals",
            "The xdg-desktop-portal interfaces the app may call.",
        )
    },
    Doc {
        details: "Through the proxy: the system bus (`$DBUS_SYSTEM_BUS_ADDRESS`, else /run/dbus/system_bus_socket), at /run/dbus/system_bus_socket inside.",
        ..Doc::new("dbus.system", "The system bus, filtered.")
    },
    Doc {
        details: BUS_NAME_DETAILS,
        default: "none",
        example: r#"["org.freedesktop.secrets"]"#,
        constraint: BUS_NAMES,
        ..Doc::new(
            "dbus.system.see",
            "Names the app may see on the bus (listed, their owner looked up), and no more.",
        )
    },
    Doc {
        details: "Implies `see`. A well-known name, or a prefix ending in `.*`.",
        default: "none",
        example: r#"["org.freedesktop.Notifications"]"#,
        constraint: BUS_NAMES,
        ..Doc::new(
            "dbus.system.talk",
            "Names the app may call and hear broadcasts from.",
        )
    },
    Doc {
        details: "Implies `talk`. A well-known name, or a prefix ending in `.*`.",
        default: "none",
        example: r#"["org.mpris.MediaPlayer2.hutch.*"]"#,
        constraint: BUS_NAMES,
        ..Doc::new(
            "dbus.system.own",
            "Names the app may own (request, release), and talk to.",
        )
    },
    Doc {
        details: BUS_RULE_DETAILS,
        default: "none",
        example: BUS_RULE_EXAMPLE,
        constraint: BUS_RULES,
        ..Doc::new(
            "dbus.system.call",
            "`NAME=RULE`: the calls the app may make to NAME without `talk`.",
        )
    },
    Doc {
        details: "RULE as for `call`.",
        default: "none",
        example: BUS_RULE_EXAMPLE,
        constraint: BUS_RULES,
        ..Doc::new(
            "dbus.system.broadcast",
            "`NAME=RULE`: the broadcast signals the app hears from NAME without `talk`.",
        )
    },
];

/// A value type with a `Deserialize` of its own ([`super::shape::Shape::Custom`]).
#[derive(Debug, Clone, Copy)]
pub struct TypeDoc {
    /// The Rust type's name.
    pub name: &'static str,
    /// How the man page calls it.
    pub title: &'static str,
    /// What it accepts, in words.
    pub accepts: &'static str,
    /// Its JSON Schema (an object).
    pub schema: &'static str,
}

/// `Size::parse`: digits, then optionally a binary suffix, any case (as a
/// JSON string's content: backslashes doubled).
macro_rules! size_pattern {
    () => {
        r"^\\s*[0-9]+\\s*([kKmMgGtT]([iI]?[bB])?|[bB])?\\s*$"
    };
}

/// Every type with a `Deserialize` of its own.
pub static TYPES: &[TypeDoc] = &[
    TypeDoc {
        name: "Size",
        title: "size",
        accepts: "a number of bytes, or a string of digits with a binary suffix K, M, G, T (KB, KiB, ... in any case): \"64M\" is 64 MiB",
        schema: concat!(
            r#"{"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": ""#,
            size_pattern!(),
            r#""}]}"#
        ),
    },
    TypeDoc {
        name: "Limit",
        title: "limit",
        accepts: "a number, a size (\"64M\"), or \"unlimited\"",
        schema: concat!(
            r#"{"anyOf": [{"type": "integer", "minimum": 0}, {"const": "unlimited"}, {"type": "string", "pattern": ""#,
            size_pattern!(),
            r#""}]}"#
        ),
    },
    TypeDoc {
        name: "Mode",
        title: "mode",
        accepts: "an octal string of permission bits up to \"7777\", optionally with a leading 0 or 0o: \"0755\", \"1777\"",
        schema: r#"{"type": "string", "pattern": "^(0o)?(0[0-7]{1,4}|[0-7]{1,4})$"}"#,
    },
    TypeDoc {
        name: "Cpus",
        title: "number of CPUs",
        accepts: "a number, with or without a fraction: 0.5, 2",
        schema: r#"{"type": "number"}"#,
    },
    TypeDoc {
        name: "Identity",
        title: "identity",
        accepts: "\"self\", \"root\", \"UID\" or \"UID:GID\" (numbers), or a uid as an integer",
        schema: r#"{"anyOf": [{"enum": ["self", "root"]}, {"type": "string", "pattern": "^[0-9]{1,10}(:[0-9]{1,10})?$"}, {"type": "integer", "minimum": 0, "maximum": 4294967295}]}"#,
    },
    TypeDoc {
        name: "Writable",
        title: "writable layer",
        accepts: "false, \"tmpfs\", \"volume:NAME\", or an absolute path (variables allowed)",
        schema: r##"{"anyOf": [{"const": false}, {"const": "tmpfs"}, {"type": "string", "pattern": "^volume:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}, {"$ref": "#/definitions/path"}]}"##,
    },
    TypeDoc {
        name: "HostPort",
        title: "host port",
        accepts: "a port number from 1 to 65535 (TCP), or a string \"PORT/tcp\" or \"PORT/udp\"",
        schema: r#"{"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"type": "string", "pattern": "^[0-9]{1,5}/(tcp|udp)$"}]}"#,
    },
    TypeDoc {
        name: "ErrnoValue",
        title: "errno",
        accepts: "an errno name (\"EPERM\", \"EACCES\", \"ENOSYS\", ...) or a number from 1 to 4095",
        // The names are filled in from the parser's table (jsonschema.rs).
        schema: r#"{"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 1, "maximum": 4095}]}"#,
    },
];

/// The documentation of a key, by its dotted path.
pub fn doc(path: &str) -> Option<&'static Doc> {
    KEYS.iter().find(|d| d.path == path)
}

/// The documentation of a custom type, by its Rust name.
pub fn type_doc(name: &str) -> Option<&'static TypeDoc> {
    TYPES.iter().find(|t| t.name == name)
}

/// A whole profile that sets the key of `doc` to its example, with what the
/// key needs around it (its table, a `[[mount]]` entry of a type that takes
/// it). `None` for tables.
pub fn example_profile(doc: &Doc) -> Option<String> {
    if doc.example.is_empty() {
        return None;
    }
    let mut text = String::new();
    if doc.path != "version" {
        text.push_str("version = 1\n");
    }
    if let Some(key) = doc.path.strip_prefix("mount[].") {
        let kind = match key {
            "type" => serde::Deserialize::deserialize(serde::de::value::StrDeserializer::<
                serde::de::value::Error,
            >::new(
                doc.example.trim_matches('"')
            ))
            .ok()?,
            _ => mount_kind_taking(key)?,
        };
        let mut entry = vec![
            ("type", format!("\"{}\"", kind.name())),
            ("dst", "\"/x\"".to_string()),
        ];
        entry.extend(mount_needs(kind).iter().map(|(k, v)| (*k, v.to_string())));
        match entry.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = doc.example.to_string(),
            None => entry.push((key, doc.example.to_string())),
        }
        text.push_str("[[mount]]\n");
        for (k, v) in entry {
            text.push_str(&format!("{k} = {v}\n"));
        }
        return Some(text);
    }
    if let Some(key) = doc.path.strip_prefix("volumes.*.") {
        text.push_str("[volumes.example]\n");
        if key != "dst" {
            text.push_str("dst = \"/example\"\n");
        }
        text.push_str(&format!("{key} = {}\n", doc.example));
        return Some(text);
    }
    match doc.path.rsplit_once('.') {
        Some((table, key)) => text.push_str(&format!("[{table}]\n{key} = {}\n", doc.example)),
        None => text.push_str(&format!("{} = {}\n", doc.path, doc.example)),
    }
    Some(text)
}

/// The keys a mount type cannot do without besides `type` and `dst` (the
/// planner's rule, in `plan/mounts.rs`), with a sample value.
pub fn mount_needs(kind: super::schema::MountKind) -> &'static [(&'static str, &'static str)] {
    use super::schema::MountKind;
    match kind {
        MountKind::RoBind | MountKind::Bind | MountKind::DevBind => &[("src", "\"/usr\"")],
        MountKind::Symlink => &[("target", "\"usr\"")],
        MountKind::File => &[("content", "\"\"")],
        MountKind::Tmpfs | MountKind::Proc | MountKind::Dev | MountKind::Dir => &[],
    }
}

/// A mount type that takes `key` (any type takes `type`, `dst`, `optional`).
fn mount_kind_taking(key: &str) -> Option<super::schema::MountKind> {
    use super::schema::MountKind;
    let all = [
        MountKind::RoBind,
        MountKind::Bind,
        MountKind::DevBind,
        MountKind::Tmpfs,
        MountKind::Proc,
        MountKind::Dev,
        MountKind::Dir,
        MountKind::Symlink,
        MountKind::File,
    ];
    all.into_iter().find(|k| {
        matches!(key, "type" | "dst" | "optional" | "src") && k.is_bind()
            || k.allowed_keys().contains(&key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::SourceFile;
    use crate::profile::shape::{self, Shape};

    #[test]
    fn every_key_the_parser_accepts_is_documented_and_nothing_else() {
        let walked: Vec<String> = shape::profile()
            .walk()
            .into_iter()
            .map(|(p, _, _)| p)
            .collect();
        let missing: Vec<&String> = walked.iter().filter(|p| doc(p).is_none()).collect();
        assert!(
            missing.is_empty(),
            "keys the parser accepts without documentation in src/profile/reference.rs: {missing:?}"
        );
        let unknown: Vec<&str> = KEYS
            .iter()
            .map(|d| d.path)
            .filter(|p| !walked.iter().any(|w| w == p))
            .collect();
        assert!(
            unknown.is_empty(),
            "documented keys the parser does not accept: {unknown:?}"
        );
        let mut seen = std::collections::HashSet::new();
        for d in KEYS {
            assert!(seen.insert(d.path), "{} documented twice", d.path);
        }
    }

    #[test]
    fn every_custom_type_is_described() {
        let mut used = Vec::new();
        for (path, s, _) in shape::profile().walk() {
            let mut s = s;
            while let Shape::Array(inner) | Shape::Map(inner) = s {
                s = inner;
            }
            if let Shape::Custom(name) = s {
                assert!(
                    type_doc(name).is_some(),
                    "{path}: type {name} has no TypeDoc"
                );
                used.push(*name);
            }
        }
        for t in TYPES {
            assert!(
                used.contains(&t.name),
                "TypeDoc {} is not used by any key",
                t.name
            );
            let v: serde_json::Value = serde_json::from_str(t.schema)
                .unwrap_or_else(|e| panic!("{}: schema is not JSON: {e}", t.name));
            assert!(v.is_object(), "{}", t.name);
        }
    }

    #[test]
    fn documented_values_are_the_parsers() {
        for (path, s, _) in shape::profile().walk() {
            let d = doc(&path).unwrap();
            match s {
                Shape::Enum(values) => {
                    let documented: Vec<&str> = d.values.iter().map(|(v, _)| *v).collect();
                    assert_eq!(&documented, values, "{path}: document each value, in order");
                }
                _ => assert!(d.values.is_empty(), "{path} has no fixed set of values"),
            }
        }
    }

    #[test]
    fn every_example_parses() {
        let profile = shape::profile();
        let walked = profile.walk();
        for d in KEYS {
            let Some(text) = example_profile(d) else {
                let (_, s, _) = walked.iter().find(|(p, _, _)| p == d.path).unwrap();
                let is_table = match s {
                    Shape::Table(_) => true,
                    Shape::Array(inner) | Shape::Map(inner) => matches!(**inner, Shape::Table(_)),
                    _ => false,
                };
                assert!(is_table, "{}: give an example", d.path);
                continue;
            };
            let file = SourceFile::new(format!("example:{}", d.path), None, text.clone());
            crate::profile::parse(&file)
                .unwrap_or_else(|e| panic!("{}:\n{text}\n{}", d.path, e.0.render()));
        }
    }

    #[test]
    fn constraints_are_json_objects() {
        for d in KEYS {
            if !d.constraint.is_empty() {
                let v: serde_json::Value = serde_json::from_str(d.constraint)
                    .unwrap_or_else(|e| panic!("{}: {e}", d.path));
                assert!(v.is_object(), "{}", d.path);
            }
            if let Some(v) = d.default_value {
                assert!(
                    crate::profile::jsonschema::toml_value(v).is_some(),
                    "{}: default {v} is not a TOML value",
                    d.path
                );
            }
        }
    }
}
