//! man/hutch.1 is generated from the CLI definition; this keeps it current.
//! Regenerate with `HUTCH_BLESS=1 cargo test --test man`.

use clap::CommandFactory;

#[test]
fn man_page_is_current() {
    let mut rendered = Vec::new();
    clap_mangen::Man::new(hutch::cli::Cli::command())
        .render(&mut rendered)
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man/hutch.1");
    if std::env::var_os("HUTCH_BLESS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let on_disk = std::fs::read(&path).unwrap_or_default();
    assert!(
        on_disk == rendered,
        "man/hutch.1 is out of date: run `HUTCH_BLESS=1 cargo test --test man`"
    );
}
