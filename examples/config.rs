//! Several threads edit one TOML config file, keeping its comments and
//! formatting: each edit is a txfile transaction that parses the current
//! document with `toml_edit`, changes one value and writes it back.
//!
//! ```text
//! cargo run --example config
//! ```

use camino::Utf8PathBuf;
use toml_edit::{DocumentMut, value};

const INITIAL: &str = r#"# Service configuration. Edited by several workers at once.

[server]
host = "127.0.0.1"   # loopback only
port = 8080

[stats]
# One counter per worker, bumped on every edit.
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = Utf8PathBuf::try_from(dir.path().join("service.toml"))?;
    std::fs::write(&path, INITIAL)?;
    let config = txfile::TxFile::open(&path)?;

    let workers = 4;
    let edits = 25;
    std::thread::scope(|s| {
        for worker in 0..workers {
            let config = config.clone();
            s.spawn(move || {
                for _ in 0..edits {
                    config
                        .update(|old| {
                            let text = std::str::from_utf8(old.unwrap_or_default())?;
                            let mut doc: DocumentMut = text.parse()?;
                            let key = format!("worker{worker}");
                            let stats = doc["stats"].as_table_mut().ok_or("no [stats] table")?;
                            let n = stats.get(&key).and_then(|v| v.as_integer()).unwrap_or(0);
                            stats.insert(&key, value(n + 1));
                            let port = doc["server"]["port"].as_integer().unwrap_or(0);
                            doc["server"]["port"] = value(port + 1);
                            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                                doc.to_string().into_bytes(),
                            )
                        })
                        .expect("edit config");
                }
            });
        }
    });

    let text = String::from_utf8(config.read()?.unwrap_or_default())?;
    print!("{text}");
    let doc: DocumentMut = text.parse()?;
    let port = doc["server"]["port"].as_integer().unwrap_or(0);
    assert_eq!(port, 8080 + i64::from(workers * edits), "every edit kept");
    assert!(text.contains("# loopback only"), "comments kept");
    println!(
        "\n{} edits by {workers} threads, none lost, comments intact.",
        workers * edits
    );
    Ok(())
}
