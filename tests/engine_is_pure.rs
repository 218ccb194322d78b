//! `src/engine` is sans-I/O: it must not use tokio, bollard, the AWS SDK or std's I/O modules.

use std::fs;
use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "bollard",
    "aws_sdk",
    "aws_config",
    "aws_smithy",
    "hyper",
    "axum",
    "tungstenite",
    "std::fs",
    "std::net",
    "std::process",
    "std::thread::sleep",
    "SystemTime::now",
    "Instant::now",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn engine_imports_no_io_crates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(!files.is_empty(), "src/engine exists");
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                assert!(
                    !code.contains(word),
                    "{}:{}: the engine must stay pure but uses {word}",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}
