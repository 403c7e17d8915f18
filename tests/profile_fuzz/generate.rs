//! Inputs for the profile loader and planner: seed profiles composed of
//! several files, profiles generated key by key from `arbitrary` choices,
//! and mutations of real profiles (lines, values, bytes).
//!
//! Every choice is read from an [`Unstructured`], so the same generator
//! runs on random bytes (the stable driver in tests/profile_fuzz.rs) and on
//! a coverage-guided fuzzer's bytes.

use arbitrary::{Result, Unstructured};

/// Seeds that use what a single profile file cannot: `extends` of the
/// fuzzer's own base, an override, composed keys. Files are separated by
/// NUL (see check.rs).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let join = |files: &[&str]| files.join("\0").into_bytes();
    vec![
        (
            "extends-base-with-override",
            join(&[
                "version = 1\nextends = [\"fuzzbase\"]\nremove = [\"/srv\"]\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/a\"\n",
                "version = 1\nhostname = \"local\"\n[[mount]]\ntype = \"dir\"\ndst = \"/a\"\nmode = \"0700\"\n",
                "version = 1\nextends = [\"cli\"]\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/srv\"\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/a\"\n",
            ]),
        ),
        (
            "extends-by-path-and-cycle",
            join(&[
                "version = 1\nextends = [\"fuzzbase.toml\"]\n",
                "",
                "version = 1\nextends = [\"fuzz\"]\n",
            ]),
        ),
        (
            "volumes-and-layers",
            join(&[
                "version = 1\nextends = [\"fuzzbase\"]\n[volumes.data]\nshared = true\nmode = \"ro\"\n[volumes.cache]\ndst = \"~/.cache\"\ntmp = true\n",
                "version = 1\n[volumes.data]\nmode = \"rw\"\n",
                "version = 1\nextends = [\"default\"]\n[volumes.data]\ndst = \"${HOME}/data\"\n",
            ]),
        ),
        (
            "root-writable-image",
            join(&[
                "version = 1\nextends = [\"container\"]\nimage = \"app\"\nwritable = \"volume:state\"\nidentity = \"1000:1000\"\ncwd = \"/srv\"\n",
                "version = 1\nwritable = \"/home/u/changes\"\n",
            ]),
        ),
        (
            "root-directory",
            join(&[
                "version = 1\nroot = \"/usr\"\nwritable = \"tmpfs\"\n[[mount]]\ntype = \"proc\"\ndst = \"/proc\"\n[[mount]]\ntype = \"symlink\"\ntarget = \"../lib\"\ndst = \"/x/y\"\n",
            ]),
        ),
        (
            "confinement",
            join(&[
                "version = 1\nextends = [\"fuzzbase\"]\nterminal = \"inherit\"\ninit = false\n[seccomp]\nallow = [\"@debug\", \"personality\"]\ndeny = [\"@clock\"]\naction = \"errno\"\nerrno = \"EACCES\"\nnested_userns = true\n[landlock]\nfs = \"best-effort\"\nfrom_mounts = false\nread = [\"/usr\"]\nwrite = [\"~/project\"]\ntcp_connect = [443]\ntcp_bind = []\nscope = \"required\"\n[rlimits]\nnofile = 1024\nas = \"4G\"\ncore = 0\nstack = \"unlimited\"\n",
                "version = 1\n[seccomp]\nenforce = \"best-effort\"\ndefault = false\n",
                "version = 1\nextends = [\"base/system\"]\n[namespaces]\nnet = false\nuts = false\n",
            ]),
        ),
        (
            "limits",
            join(&[
                "version = 1\nextends = [\"cli\"]\n[limits]\nmemory = \"512M\"\nswap = \"unlimited\"\ncpu = 1.5\ncpu_weight = 200\npids = 64\nio_weight = 50\n",
                "version = 1\n[limits]\nenforce = \"best-effort\"\n",
            ]),
        ),
        (
            "env-and-files",
            join(&[
                "version = 1\nextends = [\"default\"]\ncommand = [\"/usr/bin/env\", \"-0\"]\n[env]\nclear = true\nkeep = [\"LANG\", \"LC_*\", \"!TERM\"]\nset = { A = \"${HOME}/$$x\", B = \"${UID}:${GID}\" }\n[[mount]]\ntype = \"file\"\ndst = \"/etc/motd\"\ncontent = \"hello\\n\"\nmode = \"0444\"\n[[mount]]\ntype = \"dev-bind\"\nsrc = \"/usr\"\ndst = \"/opt/usr\"\noptional = true\n",
            ]),
        ),
    ]
}

/// Lines a mutation inserts: one of every kind of key, some wrong.
const LINES: &[&str] = &[
    "version = 1",
    "version = 2",
    "extends = [\"fuzzbase\"]",
    "extends = [\"fuzz\"]",
    "extends = [\"base/system\", \"cli\"]",
    "extends = [\"../x\"]",
    "command = [\"/bin/sh\"]",
    "command = []",
    "command = [\"/bin/sh\", \"a\\u0000b\"]",
    "dst = \"/a\\u0000b\"",
    "src = \"/usr\\u0000\"",
    "target = \"x\\u0000\"",
    "set = { X = \"a\\u0000b\" }",
    "cwd = \"/\\u0000\"",
    "cwd = \"${CWD}\"",
    "cwd = \"relative\"",
    "hostname = \"h\"",
    "identity = \"root\"",
    "identity = \"4294967295:0\"",
    "init = false",
    "remove = [\"/tmp\"]",
    "terminal = \"inherit\"",
    "root = \"/usr\"",
    "root = \"~\"",
    "image = \"app\"",
    "writable = \"tmpfs\"",
    "writable = \"volume:v\"",
    "writable = false",
    "[namespaces]",
    "user = false",
    "mount = false",
    "net = false",
    "uts = false",
    "[[mount]]",
    "type = \"bind\"",
    "type = \"ro-bind\"",
    "type = \"tmpfs\"",
    "type = \"symlink\"",
    "type = \"file\"",
    "type = \"proc\"",
    "type = \"dev\"",
    "type = \"dir\"",
    "src = \"/usr\"",
    "src = \"~\"",
    "src = \"/bin\"",
    "keep_symlink = true",
    "dst = \"/x\"",
    "dst = \"~/.local/share/hutch/volumes\"",
    "dst = \"${XDG_RUNTIME_DIR}/hutch\"",
    "optional = true",
    "mode = \"0700\"",
    "size = \"1M\"",
    "target = \"../../..\"",
    "content = \"\"",
    "[volumes.v]",
    "[volumes.\"bad name\"]",
    "dst = \"/v\"",
    "tmp = true",
    "shared = true",
    "mode = \"ro\"",
    "[env]",
    "keep = [\"*\"]",
    "set = { X = \"${HOME}\" }",
    "[seccomp]",
    "enforce = \"off\"",
    "allow = [\"@mount\"]",
    "deny = [\"read\"]",
    "action = \"kill\"",
    "errno = 4095",
    "[landlock]",
    "fs = \"off\"",
    "from_mounts = false",
    "write = [\"/\"]",
    "tcp_bind = [0, 65535]",
    "[rlimits]",
    "nproc = \"unlimited\"",
    "[limits]",
    "memory = \"1K\"",
    "cpu = 0.001",
    "pids = 1",
    "enforce = \"required\"",
];

/// Strings and numbers a mutation puts in place of a value.
const VALUES: &[&str] = &[
    "\"\"",
    "\"/\"",
    "\"..\"",
    "\"/a/../..\"",
    "\"~\"",
    "\"~/\"",
    "\"${HOME}\"",
    "\"${NOPE}\"",
    "\"${\"",
    "\"$$\"",
    "\"${CWD}/..\"",
    "\"/proc/self/root\"",
    "\"\\u0000\"",
    "\"é/ü\"",
    "0",
    "-1",
    "9223372036854775807",
    "18446744073709551616",
    "1e309",
    "nan",
    "-inf",
    "true",
    "[]",
    "{}",
    "[[]]",
    "\"unlimited\"",
    "\"64Z\"",
];

/// One input: a generated profile, a mutated seed or real profile (from
/// `good`, which plan, or `bases`, which also holds the bad profiles), or
/// several of those as the files of one input.
pub fn input(u: &mut Unstructured, good: &[Vec<u8>], bases: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut bytes = match u.choose_index(10)? {
        0..=2 => generated(u)?,
        3..=5 => u.choose(good)?.clone(),
        6 | 7 => u.choose(bases)?.clone(),
        8 => {
            let files: Vec<Vec<u8>> = (0..u.int_in_range(2..=3)?)
                .map(|_| u.choose(good).cloned())
                .collect::<Result<_>>()?;
            files.join(&0u8)
        }
        _ => u.arbitrary::<Vec<u8>>()?,
    };
    for _ in 0..u.int_in_range(0..=3)? {
        mutate(u, &mut bytes)?;
    }
    Ok(bytes)
}

/// A profile written key by key from [`LINES`], with values from
/// [`VALUES`] now and then.
fn generated(u: &mut Unstructured) -> Result<Vec<u8>> {
    let mut text = String::from("version = 1\n");
    for _ in 0..u.int_in_range(0..=24)? {
        let line = *u.choose(LINES)?;
        if u.ratio(1, 4)?
            && let Some((key, _)) = line.split_once(" = ")
        {
            text += &format!("{key} = {}\n", u.choose(VALUES)?);
        } else {
            text += line;
            text.push('\n');
        }
    }
    Ok(text.into_bytes())
}

/// One change: to a line, a value, or the bytes.
fn mutate(u: &mut Unstructured, bytes: &mut Vec<u8>) -> Result<()> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let mut lines: Vec<String> = text.split('\n').map(String::from).collect();
    let at = u.choose_index(lines.len())?;
    match u.choose_index(14)? {
        0..=2 => lines.insert(at, u.choose(LINES)?.to_string()),
        3 | 4 => {
            lines.remove(at);
        }
        5 => {
            let copy = lines[at].clone();
            lines.insert(u.choose_index(lines.len())?, copy);
        }
        6 => {
            let other = u.choose_index(lines.len())?;
            lines.swap(at, other);
        }
        7..=9 => {
            if let Some((key, _)) = lines[at].split_once(" = ") {
                lines[at] = format!("{key} = {}", u.choose(VALUES)?);
            }
        }
        10 => {
            // A value as its own line-long repetition: long strings, long
            // arrays, deep nesting.
            let n = u.int_in_range(1..=20_000)?;
            lines[at] = match u.choose_index(3)? {
                0 => format!("description = \"{}\"", "x".repeat(n)),
                1 => format!("remove = [{}]", vec!["\"/a\""; n.min(5000)].join(",")),
                _ => format!("command = {}{}", "[".repeat(n), "]".repeat(n)),
            };
        }
        _ => {
            *bytes = lines.join("\n").into_bytes();
            return byte_mutation(u, bytes);
        }
    }
    *bytes = lines.join("\n").into_bytes();
    Ok(())
}

fn byte_mutation(u: &mut Unstructured, bytes: &mut Vec<u8>) -> Result<()> {
    if bytes.is_empty() {
        bytes.push(u.arbitrary()?);
        return Ok(());
    }
    let at = u.choose_index(bytes.len())?;
    match u.choose_index(4)? {
        0 => bytes[at] = u.arbitrary()?,
        1 => bytes.insert(at, *u.choose(b"[]{}\"'=.,#\n\\$~/\0")?),
        2 => {
            bytes.remove(at);
        }
        _ => {
            let end = (at + u.int_in_range(1..=64)?).min(bytes.len());
            let chunk = bytes[at..end].to_vec();
            let to = u.choose_index(bytes.len())?;
            bytes.splice(to..to, chunk);
        }
    }
    Ok(())
}
