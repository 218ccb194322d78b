//! The Docker names and labels the agent gives task containers, as the official agent does.
//!
//! Pure string building: the random part of a container name is passed in (the engine owns
//! randomness), so names are reproducible in tests. Known limit: the name is not checked against
//! Docker's 255-character-ish practical limits; ECS keeps family and container names short enough.

/// Every label the agent sets on a task container starts with this.
pub const LABEL_PREFIX: &str = "com.amazonaws.ecs.";
/// Label: the task ARN.
pub const LABEL_TASK_ARN: &str = "com.amazonaws.ecs.task-arn";
/// Label: the container's ECS name (not its Docker name).
pub const LABEL_CONTAINER_NAME: &str = "com.amazonaws.ecs.container-name";
/// Label: the task definition family.
pub const LABEL_TASK_DEFINITION_FAMILY: &str = "com.amazonaws.ecs.task-definition-family";
/// Label: the task definition revision.
pub const LABEL_TASK_DEFINITION_VERSION: &str = "com.amazonaws.ecs.task-definition-version";
/// Label: the cluster the instance is registered in.
pub const LABEL_CLUSTER: &str = "com.amazonaws.ecs.cluster";

/// Docker names of task containers start with this.
pub const CONTAINER_NAME_PREFIX: &str = "ecs-";
/// Length of the hexadecimal suffix that makes a Docker container name unique.
pub const NAME_SUFFIX_LEN: usize = 20;

/// The Docker name of a task container: `ecs-<family>-<version>-<container>-<suffix>`.
///
/// `container` keeps only `[A-Za-z0-9-]`, as the official agent does. The official agent uses
/// `family` and `version` verbatim (ECS only accepts `[A-Za-z0-9_-]` in a family); here they keep
/// the characters Docker accepts in a name (`[A-Za-z0-9_.-]`), which changes nothing for any
/// family ECS accepts and keeps a hand-written `local run` family from breaking the create call.
/// `suffix` is normally [`name_suffix`] of fresh random bytes.
pub fn docker_container_name(family: &str, version: &str, container: &str, suffix: &str) -> String {
    format!(
        "{CONTAINER_NAME_PREFIX}{}-{}-{}-{suffix}",
        keep(family, docker_name_char),
        keep(version, docker_name_char),
        keep(container, |c| c.is_ascii_alphanumeric() || c == '-'),
    )
}

/// The 20 lowercase hex characters ending a Docker container name, from 10 random bytes.
pub fn name_suffix(random: [u8; 10]) -> String {
    random.iter().map(|b| format!("{b:02x}")).collect()
}

fn docker_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn keep(text: &str, allowed: impl Fn(char) -> bool) -> String {
    text.chars().filter(|&c| allowed(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUFFIX: &str = "0123456789abcdef0123";

    #[test]
    fn formats_family_version_container_and_suffix() {
        assert_eq!(
            docker_container_name("web", "12", "app", SUFFIX),
            "ecs-web-12-app-0123456789abcdef0123"
        );
    }

    #[test]
    fn container_name_keeps_only_letters_digits_and_hyphens() {
        assert_eq!(
            docker_container_name("f", "1", "my_app.v2 (x)-é", SUFFIX),
            "ecs-f-1-myappv2x--0123456789abcdef0123"
        );
    }

    #[test]
    fn family_keeps_underscores_as_the_official_agent_does() {
        assert_eq!(
            docker_container_name("my_family-2", "3", "c", SUFFIX),
            "ecs-my_family-2-3-c-0123456789abcdef0123"
        );
    }

    #[test]
    fn family_drops_characters_docker_refuses_in_a_name() {
        assert_eq!(
            docker_container_name("a/b c:d", "7", "c", SUFFIX),
            "ecs-abcd-7-c-0123456789abcdef0123"
        );
    }

    #[test]
    fn suffix_is_twenty_lowercase_hex_chars() {
        let suffix = name_suffix([0, 1, 0xab, 0xff, 0x10, 9, 8, 7, 6, 0xc5]);
        assert_eq!(suffix, "0001abff1009080706c5");
        assert_eq!(suffix.len(), NAME_SUFFIX_LEN);
    }

    #[test]
    fn labels_share_the_ecs_prefix() {
        for label in [
            LABEL_TASK_ARN,
            LABEL_CONTAINER_NAME,
            LABEL_TASK_DEFINITION_FAMILY,
            LABEL_TASK_DEFINITION_VERSION,
            LABEL_CLUSTER,
        ] {
            assert!(label.starts_with(LABEL_PREFIX), "{label}");
        }
    }
}
