use super::*;

fn resolve(name: &str) -> Option<PathBuf> {
    Some(PathBuf::from(format!("/usr/bin/{name}")))
}

fn to() -> Override<'static> {
    Override {
        hutch: Path::new("/usr/bin/hutch"),
        name: "viewer",
        profile: "viewer",
        source: Path::new("/usr/share/applications/viewer.desktop"),
    }
}

fn text(args: &[Arg]) -> Vec<String> {
    args.iter()
        .map(|a| match a {
            Arg::Text(t) => t.clone(),
            Arg::Code(k) => format!("%{k}"),
            Arg::Mixed(p) => format!("{p:?}"),
        })
        .collect()
}

#[test]
fn exec_lines_split_by_the_specification() {
    let split = |s: &str| split_exec(&unescape_value(s).unwrap()).map(|a| text(&a));
    assert_eq!(split("vim %F").unwrap(), ["vim", "%F"]);
    assert_eq!(
        split(r#"prog "a b" "q\\"uote" "\\$HOME" "back\\\\slash" 100%% x%%y"#).unwrap(),
        [
            "prog",
            "a b",
            "q\"uote",
            "$HOME",
            "back\\slash",
            "100%",
            "x%y"
        ]
    );
    // Deprecated codes are removed, alone or inside a word.
    assert_eq!(
        split("prog %d --n=%n %u %m").unwrap(),
        ["prog", "--n=", "%u"]
    );
    assert_eq!(
        split("prog   spaced\\s\\sout").unwrap(),
        ["prog", "spaced", "out"]
    );
    assert_eq!(
        split_exec("prog \"new\nline\"").map(|a| text(&a)).unwrap(),
        ["prog", "new\nline"]
    );
    assert!(matches!(
        &split_exec("prog --file=%f").unwrap()[1],
        Arg::Mixed(p) if p == &[Piece::Text("--file=".into()), Piece::Code('f')]
    ));
}

#[test]
fn what_desktops_could_read_differently_is_refused() {
    for (exec, err) in [
        ("", ExecError::Empty),
        ("prog \"%f\"", ExecError::CodeInQuotes('f')),
        ("prog \"--x=%U\"", ExecError::CodeInQuotes('U')),
        ("prog 'a b'", ExecError::Unquoted('\'')),
        ("prog a\\\\b", ExecError::Unquoted('\\')),
        ("prog $(id)", ExecError::Unquoted('$')),
        ("prog a;b", ExecError::Unquoted(';')),
        ("prog \"unterminated", ExecError::Unterminated),
        ("prog \"a\\\\nb\"", ExecError::QuoteEscape('n')),
        ("prog \"$x\"", ExecError::UnescapedInQuotes('$')),
        ("prog \"a\"b", ExecError::AfterQuote),
        ("prog %x", ExecError::UnknownCode('x')),
        ("prog %", ExecError::LonePercent),
        ("prog --files=%F", ExecError::NotAlone('F')),
        ("prog a%Ub", ExecError::NotAlone('U')),
    ] {
        let got = unescape_value(exec).and_then(|s| split_exec(&s));
        assert_eq!(got.err(), Some(err), "{exec:?}");
    }
    assert_eq!(
        unescape_value("prog \\x").err(),
        Some(ExecError::ValueEscape('x'))
    );
}

#[test]
fn the_program_is_a_path_or_a_name_never_an_option() {
    let cmd = |s: &str| Command::resolve(split_exec(s).unwrap(), &resolve);
    assert_eq!(
        cmd("evince %U").unwrap().program,
        Path::new("/usr/bin/evince")
    );
    assert_eq!(
        text(&cmd("evince %U").unwrap().argv),
        ["/usr/bin/evince", "%U"]
    );
    assert_eq!(
        cmd("/opt/x/bin/x").unwrap().program,
        Path::new("/opt/x/bin/x")
    );
    for (exec, err) in [
        (
            "--bind / / evince",
            ExecError::ProgramOption("--bind".into()),
        ),
        ("%f", ExecError::ProgramIsCode),
        ("bin/x", ExecError::RelativeProgram("bin/x".into())),
        ("A=1 prog", ExecError::RelativeProgram("A=1".into())),
        ("env -u X prog", ExecError::EnvOptions("-u".into())),
        ("env A=1", ExecError::EnvOptions(String::new())),
        ("env A=1 --x", ExecError::EnvOptions("--x".into())),
    ] {
        assert_eq!(cmd(exec).err(), Some(err), "{exec}");
    }
    assert_eq!(
        Command::resolve(split_exec("missing").unwrap(), &|_| None).err(),
        Some(ExecError::NotFound("missing".into()))
    );
    // env NAME=VALUE... PROGRAM: the program is what follows.
    let c = cmd("env GDK_BACKEND=x11 A_1=b=c viewer %f").unwrap();
    assert_eq!(c.program, Path::new("/usr/bin/viewer"));
    assert_eq!(
        text(&c.argv),
        [
            "/usr/bin/env",
            "GDK_BACKEND=x11",
            "A_1=b=c",
            "/usr/bin/viewer",
            "%f"
        ]
    );
}

#[test]
fn joined_arguments_split_back_to_themselves() {
    let hostile = [
        "plain",
        "with space",
        "quote\"d",
        "single'quote",
        "dollar$HOME",
        "back`tick`",
        "back\\slash",
        "new\nline",
        "tab\there",
        "100%",
        "%f",
        "--profile=cli",
        "",
        "(){};|&<>*?#~",
        "ünïcödé",
    ];
    let mut args: Vec<Arg> = hostile.iter().map(|s| Arg::Text(s.to_string())).collect();
    args.push(Arg::Code('U'));
    args.push(Arg::Mixed(vec![
        Piece::Text("--file=".into()),
        Piece::Code('f'),
    ]));
    let joined = join_exec(&args);
    assert_eq!(split_exec(&joined).unwrap(), args, "{joined}");
    // And through the value's own escapes, as a line of a file.
    let line = escape_value(&joined);
    assert!(!line.contains('\n') && !line.contains('\t'), "{line}");
    assert_eq!(split_exec(&unescape_value(&line).unwrap()).unwrap(), args);
}

const VIEWER: &str = "\
# A comment, kept
[Desktop Entry]
Type=Application
Name=Viewer
Name[de]=Betrachter
Exec=viewer --new-window %U
Exec[de]=/usr/bin/viewer %U
TryExec=viewer
DBusActivatable=true
Actions=new-window;private;remote;
X-Hutch-Shim=forged

[Desktop Action new-window]
Name=New Window
Exec=viewer --new-window

[Desktop Action private]
Name=Private
Exec=env MOZ=1 viewer --private %u

[Desktop Action remote]
Name=Activated over D-Bus only

[X-Other Group]
Exec=anything goes here
";

#[test]
fn the_override_starts_the_program_through_hutch_and_keeps_the_rest() {
    let file = DesktopFile::parse(VIEWER.as_bytes()).unwrap();
    let out = file.rewrite(&to(), &resolve).unwrap();
    let again = DesktopFile::parse(out.as_bytes()).unwrap();
    assert_eq!(
        again.get(MAIN, "Exec"),
        Some("/usr/bin/hutch run --profile viewer -- /usr/bin/viewer --new-window %U")
    );
    assert_eq!(again.get(MAIN, MARKER), Some("viewer"));
    assert_eq!(again.get(MAIN, "DBusActivatable"), None);
    assert_eq!(again.get(MAIN, "Actions"), Some("new-window;private;"));
    assert_eq!(
        again.get("Desktop Action private", "Exec"),
        Some(
            "/usr/bin/hutch run --profile viewer -- /usr/bin/env MOZ=1 /usr/bin/viewer --private %u"
        )
    );
    assert!(!out.contains("[Desktop Action remote]"), "{out}");
    assert!(!out.contains("Exec[de]"), "{out}");
    assert!(!out.contains("forged"), "{out}");
    for kept in [
        "# A comment, kept",
        "Name[de]=Betrachter",
        "TryExec=viewer",
        "[X-Other Group]",
        "Exec=anything goes here",
    ] {
        assert!(out.lines().any(|l| l == kept), "{kept}: {out}");
    }
    assert!(
        out.starts_with("# Written by `hutch shim install`"),
        "{out}"
    );
}

#[test]
fn paths_with_spaces_and_quotes_are_quoted_in_the_override() {
    let file = DesktopFile::parse(
        b"[Desktop Entry]\nType=Application\nName=X\nExec=\"/opt/my apps/x\" \"a \\\\\\\\ b\" %f\n",
    )
    .unwrap();
    let to = Override {
        hutch: Path::new("/home/u/my \"bin\"/hutch"),
        ..to()
    };
    let out = file.rewrite(&to, &resolve).unwrap();
    let exec = DesktopFile::parse(out.as_bytes())
        .unwrap()
        .get(MAIN, "Exec")
        .unwrap()
        .to_string();
    let args = split_exec(&unescape_value(&exec).unwrap()).unwrap();
    assert_eq!(
        text(&args),
        [
            "/home/u/my \"bin\"/hutch",
            "run",
            "--profile",
            "viewer",
            "--",
            "/opt/my apps/x",
            "a \\ b",
            "%f"
        ]
    );
}

#[test]
fn entries_that_are_not_plain_applications_are_refused() {
    let parse = |s: &str| DesktopFile::parse(s.as_bytes());
    let rewrite = |s: &str| parse(s).and_then(|f| f.rewrite(&to(), &resolve));
    let main = "[Desktop Entry]\nType=Application\nName=X\n";
    for (input, err) in [
        ("Name=X\n[Desktop Entry]\n", DesktopError::NoMainGroup),
        ("[Other]\n[Desktop Entry]\n", DesktopError::NoMainGroup),
        (
            "[Desktop Entry]\n[Desktop Entry]\n",
            DesktopError::DuplicateGroup(2, MAIN.into()),
        ),
        (
            &format!("{main}Exec=a\nExec=b\n"),
            DesktopError::DuplicateKey(5, "Exec".into()),
        ),
        (&format!("{main}Exec=a\r\n"), DesktopError::Control(4)),
        (
            &format!("{main}Exec=a\u{1b}[31m\n"),
            DesktopError::Control(4),
        ),
        (&format!("{main}just words\n"), DesktopError::BadLine(4)),
        (
            &format!("{main}Bad Key=1\n"),
            DesktopError::BadKey(4, "Bad Key".into()),
        ),
        (&format!("{main}Name[de=X\n"), DesktopError::BadLine(4)),
        (
            "[Desktop Entry]\nType=Link\nExec=x\n",
            DesktopError::NotApplication("Link".into()),
        ),
        (
            &format!("{main}Hidden=true\nExec=x\n"),
            DesktopError::Hidden,
        ),
        (main, DesktopError::NoExec),
    ] {
        assert_eq!(rewrite(input).err(), Some(err), "{input:?}");
    }
    assert_eq!(
        DesktopFile::parse(b"[Desktop Entry]\n\xff\n").err(),
        Some(DesktopError::NotUtf8)
    );
    assert_eq!(
        rewrite(&format!("{main}Exec=viewer \"%f\"\n")).err(),
        Some(DesktopError::Exec(
            MAIN.into(),
            ExecError::CodeInQuotes('f')
        ))
    );
    // A bad action refuses the whole entry: its menu would start the
    // program without hutch.
    assert_eq!(
        rewrite(&format!(
            "{main}Exec=viewer\n[Desktop Action a]\nExec=viewer \"%u\"\n"
        ))
        .err(),
        Some(DesktopError::Exec(
            "Desktop Action a".into(),
            ExecError::CodeInQuotes('u')
        ))
    );
    // Whitespace around `=` and after a group is what GLib accepts.
    let f = parse("[Desktop Entry]  \nType = Application\nExec =  viewer\n").unwrap();
    assert_eq!(f.get(MAIN, "Exec"), Some("viewer"));
}
