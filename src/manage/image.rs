//! `hutch image import | list | inspect | rm`, and leasing the image a
//! `hutch run` asks for.

use std::io::Write;
use std::path::Path;

use crate::cli::ImageCommand;
use crate::diag::sanitize;
use crate::host::Host;
use crate::image::{ImageError, ImageInfo, ImageLease, ImageStore, ImportOptions};
use crate::plan::rootfs::{Choice, choice};
use crate::profile::{Profile, ProfileError};

/// Runs an image subcommand; returns the exit code (0, or 125 with a
/// one-line message).
pub fn run(command: ImageCommand) -> i32 {
    let result = ImageStore::default_root(&Host::current())
        .and_then(ImageStore::open)
        .and_then(|store| match command {
            ImageCommand::Import {
                source,
                tag,
                max_size,
            } => import(&store, &source, tag.as_deref(), max_size),
            ImageCommand::List { json } => list(&store, json),
            ImageCommand::Inspect { name } => inspect(&store, &name),
            ImageCommand::Rm { names } => remove(&store, &names),
        });
    match result {
        Ok(()) => crate::exit::OK,
        Err(e) => {
            crate::diag::error(&e);
            crate::exit::FAILED
        }
    }
}

fn out(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn short_id(info: &ImageInfo) -> &str {
    let hex = info
        .config_digest
        .strip_prefix("sha256:")
        .unwrap_or(&info.config_digest);
    &hex[..hex.len().min(12)]
}

/// `1.9 MB`-style sizes (powers of 1000, like docker).
fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn import(
    store: &ImageStore,
    source: &Path,
    tag: Option<&str>,
    max_size: Option<u64>,
) -> Result<(), ImageError> {
    let info = store.import_with(source, tag, &ImportOptions { max_size })?;
    out(&format!(
        "imported {} ({}, {} layer{}, {}, {} unpacked)\n",
        sanitize(&info.name),
        short_id(&info),
        info.layers.len(),
        if info.layers.len() == 1 { "" } else { "s" },
        human(info.size),
        info.unpacked_size.map_or_else(|| "?".into(), human)
    ));
    Ok(())
}

fn list(store: &ImageStore, json: bool) -> Result<(), ImageError> {
    let images = store.list()?;
    if json {
        out(&(serde_json::to_string_pretty(&images).expect("serialises") + "\n"));
        return Ok(());
    }
    let rows: Vec<[String; 6]> = images
        .iter()
        .map(|i| {
            [
                sanitize(&i.name),
                short_id(i).to_string(),
                format!("{}/{}", i.os, i.architecture),
                i.layers.len().to_string(),
                human(i.size),
                i.unpacked_size.map_or_else(|| "-".into(), human),
            ]
        })
        .collect();
    let header = [
        "NAME".to_string(),
        "ID".into(),
        "PLATFORM".into(),
        "LAYERS".into(),
        "SIZE".into(),
        "UNPACKED".into(),
    ];
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut text = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    out(&text);
    Ok(())
}

fn inspect(store: &ImageStore, name: &str) -> Result<(), ImageError> {
    let info = store.inspect(name)?;
    out(&(serde_json::to_string_pretty(&info).expect("serialises") + "\n"));
    Ok(())
}

fn remove(store: &ImageStore, names: &[String]) -> Result<(), ImageError> {
    for name in names {
        let full = store.inspect(name)?.name;
        store.remove(&full)?;
        out(&format!("removed {}\n", sanitize(&full)));
    }
    Ok(())
}

/// Why `hutch run` cannot have the image it asks for.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// About an `image = "..."` the profile wrote.
    #[error("{0}")]
    Profile(#[from] ProfileError),
    /// About `--image`, or the store itself.
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// Leases the image `--image` (`cli`) or the profile names, if any; the
/// flag says whether it came from the command line. Held for the sandbox's
/// life, the lease makes `hutch image rm` refuse.
pub fn lease_for(
    cli: Option<&str>,
    profile: &Profile,
    host: &Host,
) -> Result<Option<(ImageLease, bool)>, LeaseError> {
    let chosen = match cli {
        Some(_) => None,
        None => match choice(profile)? {
            Some(Choice::Image(at)) => Some(at),
            _ => return Ok(None),
        },
    };
    let name = match (&chosen, cli) {
        (Some(at), _) => at.get().as_str(),
        (None, Some(name)) => name,
        (None, None) => return Ok(None),
    };
    // Looking for an image creates no store.
    let root = ImageStore::default_root(host)?;
    let acquired = if root.is_dir() {
        ImageStore::open(root)?.acquire(name)
    } else {
        Err(ImageError::NotFound {
            name: name.to_string(),
        })
    };
    match acquired {
        Ok(lease) => Ok(Some((lease, cli.is_some()))),
        Err(e @ ImageError::NotFound { .. }) => match chosen {
            Some(at) => Err(ProfileError::from(
                at.diag(format!("key `image`: {e}"))
                    .label("not in the image store")
                    .help("import it first: `hutch image import FILE|DIR --tag NAME`"),
            )
            .into()),
            None => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1_982_256), "2.0 MB");
        assert_eq!(human(12_345), "12.3 kB");
    }
}
