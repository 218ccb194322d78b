//! Embeds the git commit hash (or "unknown") so `ecs-agent --version` can print it, and links
//! the release binary with the functions idle work runs first (see `src/app/memory.rs`).
use std::path::Path;
use std::process::Command;

fn main() {
    idle_symbols_first();
    let hash = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ECS_AGENT_GIT_HASH={hash}");
    // Rebuild when HEAD moves: watch HEAD and the branch ref it points to, if they exist.
    let git = Path::new(".git");
    if git.join("HEAD").exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
            if let Some(reference) = head.trim().strip_prefix("ref: ") {
                if git.join(reference).exists() {
                    println!("cargo:rerun-if-changed=.git/{reference}");
                }
            }
        }
        if git.join("packed-refs").exists() {
            println!("cargo:rerun-if-changed=.git/packed-refs");
        }
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}

/// The release binary for x86_64 Linux (linked by rust-lld, Rust's default linker there since
/// 1.90) gets `packaging/idle-symbols.txt` as its symbol order. A symbol the list names but the
/// build lacks is skipped silently: the list only arranges code, never changes it.
/// `ECS_AGENT_NO_SYMBOL_ORDER=1` turns it off (e.g. for a linker without the option).
fn idle_symbols_first() {
    println!("cargo:rerun-if-env-changed=ECS_AGENT_NO_SYMBOL_ORDER");
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/idle-symbols.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || !var("ECS_AGENT_NO_SYMBOL_ORDER").is_empty()
        || !list.exists()
    {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin=ecs-agent=-Wl,--symbol-ordering-file={}",
        list.display()
    );
    println!("cargo:rustc-link-arg-bin=ecs-agent=-Wl,--no-warn-symbol-ordering");
}
