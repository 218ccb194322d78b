//! Image references as Docker lists them: the short form that lets two spellings of one image
//! (`busybox`, `docker.io/library/busybox:latest`) compare equal. Pure string handling.
//!
//! Known limit: no validation; a malformed reference gets a best-effort short form.

/// Registry prefixes Docker leaves out of the names it lists (Docker Hub).
const DOCKER_HUB_PREFIXES: &[&str] = &["docker.io/", "index.docker.io/", "registry-1.docker.io/"];

/// An image reference in Docker's short form: Docker Hub's registry and `library/` left out,
/// `:latest` when there is neither tag nor digest, and no tag beside a digest.
pub fn short_form(reference: &str) -> String {
    let reference = reference.trim();
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    let name = DOCKER_HUB_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    let name = name
        .strip_prefix("library/")
        .filter(|n| !n.contains('/'))
        .unwrap_or(name);
    match (digest, tag_start(name)) {
        (Some(digest), Some(i)) => format!("{}@{digest}", &name[..i]),
        (Some(digest), None) => format!("{name}@{digest}"),
        (None, Some(_)) => name.to_owned(),
        (None, None) => format!("{name}:latest"),
    }
}

/// Where the `:tag` of `name` (without digest) starts, if it has one.
fn tag_start(name: &str) -> Option<usize> {
    let last = name.rfind('/').map_or(0, |i| i + 1);
    name[last..].rfind(':').map(|i| last + i)
}

/// The repository of a short-form reference: without tag or digest.
pub fn repository(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    tag_start(name).map_or(name, |i| &name[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_take_docker_short_form() {
        let cases = [
            ("busybox", "busybox:latest"),
            ("busybox:1.36", "busybox:1.36"),
            ("docker.io/library/busybox", "busybox:latest"),
            ("index.docker.io/library/busybox:1", "busybox:1"),
            (
                "docker.io/amazon/amazon-ecs-agent",
                "amazon/amazon-ecs-agent:latest",
            ),
            ("library/busybox", "busybox:latest"),
            ("127.0.0.1:5005/busybox", "127.0.0.1:5005/busybox:latest"),
            ("127.0.0.1:5005/busybox:2", "127.0.0.1:5005/busybox:2"),
            ("reg.example/library/x", "reg.example/library/x:latest"),
            ("reg.example/app:1@sha256:ab", "reg.example/app@sha256:ab"),
            (" busybox ", "busybox:latest"),
        ];
        for (given, want) in cases {
            assert_eq!(short_form(given), want, "{given}");
        }
        assert_eq!(repository("reg.example:5000/app:1"), "reg.example:5000/app");
        assert_eq!(
            repository("reg.example:5000/app@sha256:ab"),
            "reg.example:5000/app"
        );
    }
}
