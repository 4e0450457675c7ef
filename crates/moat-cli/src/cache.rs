//! `moat cache`: the tool-cache layers, and clearing them.

use anyhow::{anyhow, Result};
use moat::caches;
use serde::Serialize;

use crate::cli::CacheVerb;

#[derive(Serialize)]
struct Layer {
    name: String,
    /// Where tools see it.
    at: String,
    /// Where what sandboxed runs wrote to it is kept.
    store: String,
    bytes: u64,
    files: u64,
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn cache(command: Option<CacheVerb>, json: bool) -> Result<u8> {
    let store = caches::this_store()
        .ok_or_else(|| anyhow!("HOME is not set, so there is no cache store to show"))?;
    match command {
        None => {
            let layers: Vec<Layer> = caches::list(&store)
                .into_iter()
                .map(|l| Layer {
                    name: l.name,
                    at: l.at,
                    store: l.store.display().to_string(),
                    bytes: l.bytes,
                    files: l.files,
                })
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "store": store.display().to_string(), "layers": layers })
                );
                return Ok(0);
            }
            println!("cache store: {}", store.display());
            if layers.is_empty() {
                println!("no layers yet: sandboxed runs have written to no tool cache");
            }
            for l in &layers {
                println!(
                    "{:<8} {:<20} {:>10} in {} files  {}",
                    l.name,
                    l.at,
                    human(l.bytes),
                    l.files,
                    l.store
                );
            }
            Ok(0)
        }
        Some(CacheVerb::Clear { name, all: _ }) => {
            let cleared = caches::clear(&store, name.as_deref())?;
            if cleared.is_empty() {
                println!("moat cache: nothing to clear");
            }
            for n in cleared {
                println!("moat cache: cleared {n}");
            }
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
