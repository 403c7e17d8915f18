//! The manual pages, built in for `hutch man`: `cargo install` puts none
//! where `man` finds them. The files in man/ are generated from the CLI
//! definition, the profile format's own types and man/src/ (tests/man.rs
//! keeps them current), and packages install them.

/// Every page, as (file name, roff source).
pub static PAGES: &[(&str, &str)] = &[
    ("hutch.1", include_str!("../man/hutch.1")),
    ("hutch-run.1", include_str!("../man/hutch-run.1")),
    ("hutch-check.1", include_str!("../man/hutch-check.1")),
    ("hutch-doctor.1", include_str!("../man/hutch-doctor.1")),
    ("hutch-profiles.1", include_str!("../man/hutch-profiles.1")),
    ("hutch-ps.1", include_str!("../man/hutch-ps.1")),
    ("hutch-exec.1", include_str!("../man/hutch-exec.1")),
    ("hutch-stop.1", include_str!("../man/hutch-stop.1")),
    ("hutch-volume.1", include_str!("../man/hutch-volume.1")),
    ("hutch-image.1", include_str!("../man/hutch-image.1")),
    ("hutch-shim.1", include_str!("../man/hutch-shim.1")),
    ("hutch-export.1", include_str!("../man/hutch-export.1")),
    ("hutch-learn.1", include_str!("../man/hutch-learn.1")),
    ("hutch-import.1", include_str!("../man/hutch-import.1")),
    ("hutch-schema.1", include_str!("../man/hutch-schema.1")),
    (
        "hutch-completions.1",
        include_str!("../man/hutch-completions.1"),
    ),
    ("hutch-man.1", include_str!("../man/hutch-man.1")),
    ("hutch-profile.5", include_str!("../man/hutch-profile.5")),
];

/// `hutch man [PAGE]`: the page's roff source, or the list of pages.
pub fn run(page: Option<&str>) -> i32 {
    use std::io::Write;
    let text = match page {
        None => PAGES
            .iter()
            .map(|(file, _)| format!("{}\n", display(file)))
            .collect(),
        Some(wanted) => match find(wanted) {
            Some(source) => source.to_string(),
            None => {
                crate::diag::error(format_args!(
                    "no manual page `{}`; `hutch man` lists them",
                    crate::diag::sanitize(wanted)
                ));
                return crate::exit::FAILED;
            }
        },
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}

/// A page by name: `hutch-run`, `hutch-run.1` or `hutch-run(1)`.
pub fn find(wanted: &str) -> Option<&'static str> {
    PAGES
        .iter()
        .find(|(file, _)| {
            *file == wanted
                || display(file) == wanted
                || file
                    .rsplit_once('.')
                    .is_some_and(|(name, _)| name == wanted)
        })
        .map(|(_, source)| *source)
}

/// `hutch-run.1` → `hutch-run(1)`.
fn display(file: &str) -> String {
    match file.rsplit_once('.') {
        Some((name, section)) => format!("{name}({section})"),
        None => file.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_by_any_of_their_names() {
        let page = find("hutch-profile").expect("hutch-profile(5)");
        assert!(page.contains(".TH HUTCH\\-PROFILE 5"), "{}", &page[..80]);
        assert_eq!(find("hutch-profile.5"), Some(page));
        assert_eq!(find("hutch-profile(5)"), Some(page));
        assert!(find("hutch-run").unwrap().contains("hutch run"));
        assert_eq!(find("nope"), None);
        assert_eq!(display("hutch-run.1"), "hutch-run(1)");
    }
}
