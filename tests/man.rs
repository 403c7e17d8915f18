//! man/hutch.1 and man/hutch-SUBCOMMAND.1 are generated from the CLI
//! definition; this keeps them current. Regenerate with
//! `HUTCH_BLESS=1 cargo test --test man`.

use clap::CommandFactory;

fn render(cmd: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out).unwrap();
    out
}

#[test]
fn man_pages_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let top = hutch::cli::Cli::command();
    let mut pages = vec![("hutch.1".to_string(), render(top.clone()))];
    for sub in top.get_subcommands() {
        let name = format!("hutch-{}", sub.get_name());
        pages.push((
            format!("{name}.1"),
            render(sub.clone().name(&*name.clone().leak())),
        ));
    }
    let bless = std::env::var_os("HUTCH_BLESS").is_some();
    let mut stale = Vec::new();
    for (file, rendered) in &pages {
        let path = dir.join(file);
        if bless {
            std::fs::write(&path, rendered).unwrap();
        }
        if std::fs::read(&path).unwrap_or_default() != *rendered {
            stale.push(file.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; run `HUTCH_BLESS=1 cargo test --test man`"
    );
}
