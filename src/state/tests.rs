use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use proptest::prelude::*;

use super::migrate::V1_FILE;
use super::*;
use crate::engine::{Engine, Input};
use crate::model::{Container, RoleCredentials, Task};

fn meta() -> Metadata {
    Metadata {
        cluster: "prod".into(),
        container_instance_arn: "arn:aws:ecs:us-west-2:1:container-instance/prod/abc".into(),
        ec2_instance_id: "i-1".into(),
        availability_zone: Some("us-west-2a".into()),
    }
}

fn creds(id: &str) -> RoleCredentials {
    RoleCredentials {
        credentials_id: id.into(),
        role_arn: "arn:aws:iam::1:role/r".into(),
        access_key_id: "AKIDSECRETPART".into(),
        secret_access_key: "wJalrXUtnFEMI/SECRET".into(),
        session_token: "SESSIONTOKENSECRET".into(),
        expiration: "2030-01-01T00:00:00Z".into(),
        credential_scope: None,
    }
}

/// Task states as the engine makes them.
fn tasks(n: usize) -> Vec<TaskState> {
    let cfg = crate::engine::test_config(1 << 20, (40000, 40100));
    let mut e = Engine::new(cfg, 3);
    for i in 0..n {
        let task = Task {
            arn: format!("arn:aws:ecs:us-west-2:1:task/prod/{i}"),
            family: "fam".into(),
            version: "1".into(),
            role_credentials: Some(creds("role-id")),
            execution_role_credentials: Some(creds("exec-id")),
            containers: vec![Container {
                name: "web".into(),
                image: "busybox".into(),
                memory: Some(8),
                ..Default::default()
            }],
            ..Default::default()
        };
        e.handle(1, Input::AddTask(Box::new(task)));
    }
    e.saved_tasks()
}

fn save(dir: &Path, tasks: Vec<TaskState>) -> Vec<u8> {
    let bytes = Writer::new(dir.to_owned(), meta())
        .render(tasks, Default::default())
        .unwrap();
    write(dir, &bytes).unwrap();
    bytes
}

#[test]
fn saves_atomically_with_mode_0600_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load(dir.path()).unwrap().state.is_none());
    save(dir.path(), tasks(2));
    let loaded = load(dir.path()).unwrap();
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
    let state = loaded.state.unwrap();
    assert_eq!(state.metadata, meta());
    assert_eq!(state.tasks.len(), 2);
    assert_eq!(
        state.tasks[1].task.arn,
        "arn:aws:ecs:us-west-2:1:task/prod/1"
    );
    let mode = fs::metadata(dir.path().join(FILE))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!dir.path().join(format!(".{FILE}.tmp")).exists());
}

#[test]
fn no_credential_secret_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), tasks(1));
    save(dir.path(), tasks(2));
    for name in [FILE.to_owned(), format!("{FILE}.prev")] {
        let text = fs::read_to_string(dir.path().join(&name)).unwrap();
        for secret in ["AKIDSECRETPART", "wJalrXUtnFEMI", "SESSIONTOKENSECRET"] {
            assert!(!text.contains(secret), "{secret} in {name}");
        }
        assert!(text.contains("role-id"), "the credentials ID is kept");
    }
}

#[test]
fn an_unchanged_state_is_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::new(dir.path().to_owned(), meta());
    let bytes = w.render(tasks(1), Default::default()).unwrap();
    w.written(bytes);
    assert!(w.render(tasks(1), Default::default()).is_none());
    assert!(w.render(tasks(2), Default::default()).is_some());
}

#[test]
fn a_corrupt_file_is_moved_aside_and_the_previous_copy_used() {
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), tasks(1));
    save(dir.path(), tasks(2));
    let path = dir.path().join(FILE);
    let full = fs::read(&path).unwrap();
    fs::write(&path, &full[..full.len() / 2]).unwrap();
    let loaded = load(dir.path()).unwrap();
    assert_eq!(loaded.state.unwrap().tasks.len(), 1, "the previous copy");
    assert!(loaded.notes.iter().any(|n| n.contains("unreadable")));
    assert!(dir.path().join(format!("{FILE}.corrupt")).exists());
    // The next start does not trip over it again.
    assert!(load(dir.path()).unwrap().state.is_some());
}

#[test]
fn nothing_usable_means_a_fresh_start_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(FILE), "{\"version\": 2, \"meta").unwrap();
    let loaded = load(dir.path()).unwrap();
    assert!(loaded.state.is_none());
    assert!(loaded.notes.last().unwrap().contains("without saved tasks"));
}

/// Every file in `dir` with its content.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let content = fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), content)
        })
        .collect()
}

#[test]
fn a_newer_schema_version_is_a_terminal_error_that_touches_no_file() {
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), tasks(1));
    save(dir.path(), tasks(2));
    fs::write(
        dir.path().join(FILE),
        r#"{"version": 99, "metadata": {}, "tasks": [], "something_new": 1}"#,
    )
    .unwrap();
    let before = files(dir.path());
    let err = load(dir.path()).unwrap_err();
    assert!(err.is_terminal(), "{err}");
    assert!(
        matches!(
            err,
            StateError::NewerSchema {
                found: 99,
                known: VERSION,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("version 99"), "{text}");
    assert!(
        text.contains(&format!("the {VERSION} this agent reads")),
        "{text}"
    );
    assert_eq!(files(dir.path()), before, "nothing moved or rewritten");
}

#[test]
fn a_newer_previous_copy_behind_a_corrupt_file_is_terminal_too() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(format!("{FILE}.prev")), r#"{"version": 3}"#).unwrap();
    fs::write(dir.path().join(FILE), "{\"vers").unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(err, StateError::NewerSchema { found: 3, .. }),
        "{err:?}"
    );
    assert!(
        dir.path().join(format!("{FILE}.prev")).exists(),
        "left as it is"
    );
}

#[test]
fn an_older_unknown_schema_version_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(FILE),
        r#"{"version": 0, "metadata": {}, "tasks": []}"#,
    )
    .unwrap();
    let loaded = load(dir.path()).unwrap();
    assert!(loaded.state.is_none());
    assert!(loaded.notes[0].contains("unknown schema version 0"));
    assert!(dir.path().join(format!("{FILE}.corrupt")).exists());
}

#[test]
fn a_corrupt_previous_copy_is_set_aside_under_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(FILE), "{\"version\": 2, \"meta").unwrap();
    fs::write(dir.path().join(format!("{FILE}.prev")), "{\"vers").unwrap();
    let loaded = load(dir.path()).unwrap();
    assert!(loaded.state.is_none());
    assert_eq!(
        fs::read(dir.path().join(format!("{FILE}.corrupt"))).unwrap(),
        b"{\"version\": 2, \"meta"
    );
    assert_eq!(
        fs::read(dir.path().join(format!("{FILE}.prev.corrupt"))).unwrap(),
        b"{\"vers"
    );
}

#[test]
fn a_second_corruption_keeps_the_first_set_aside_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    for n in 0..12 {
        fs::write(&path, format!("damage {n}")).unwrap();
        load(dir.path()).unwrap();
    }
    let aside =
        |suffix: &str| fs::read_to_string(dir.path().join(format!("{FILE}.corrupt{suffix}")));
    assert_eq!(aside("").unwrap(), "damage 0", "the first one stays");
    assert_eq!(aside(".1").unwrap(), "damage 1");
    assert_eq!(aside(".8").unwrap(), "damage 8");
    assert_eq!(
        aside(".9").unwrap(),
        "damage 11",
        "past ten, the last is replaced"
    );
    assert!(aside(".10").is_err(), "no more than ten kept");
}

#[test]
fn a_corrupt_file_that_cannot_be_moved_aside_means_a_fresh_start_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    fs::write(&path, "{\"version\": 2, \"meta").unwrap();
    // Every set-aside name is a non-empty directory: the rename fails, even for root.
    let mut names = vec![format!("{FILE}.corrupt")];
    names.extend((1..10).map(|n| format!("{FILE}.corrupt.{n}")));
    for name in &names {
        fs::create_dir(dir.path().join(name)).unwrap();
        fs::write(dir.path().join(name).join("x"), "x").unwrap();
    }
    let loaded = load(dir.path()).unwrap();
    assert!(loaded.state.is_none());
    assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
    assert!(loaded.errors[0].contains("could not be moved aside"));
    assert!(loaded.notes.last().unwrap().contains("without saved tasks"));
    // The next save replaces it and the start after that uses the new document.
    save(dir.path(), tasks(1));
    let again = load(dir.path()).unwrap();
    assert_eq!(again.state.unwrap().tasks.len(), 1);
}

#[test]
fn a_stale_temp_file_does_not_lend_its_mode_to_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    for name in [FILE, "checkpoint"] {
        let tmp = dir.path().join(format!(".{name}.tmp"));
        fs::write(&tmp, "stale").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
    }
    save(dir.path(), tasks(1));
    replace_file(dir.path(), "checkpoint", b"{}").unwrap();
    for name in [FILE, "checkpoint"] {
        let mode = fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}

#[test]
fn image_records_survive_a_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut images = crate::images::cleanup::ImageRecords::default();
    images.pulled("busybox", Some("sha256:aaa".into()), 1_000);
    images.pulled("public.ecr.aws/x/y:1", None, 2_000);
    images.used("busybox", 3_000);
    let w = Writer::new(dir.path().to_owned(), meta());
    let bytes = w.render(tasks(1), images.clone()).unwrap();
    write(dir.path(), &bytes).unwrap();
    let state = load(dir.path()).unwrap().state.unwrap();
    assert_eq!(state.images.len(), 2);
    assert_eq!(state.images, images);
    let busybox = state.images.get("busybox:latest").unwrap();
    assert_eq!(busybox.image_id.as_deref(), Some("sha256:aaa"));
    assert_eq!((busybox.pulled_at, busybox.last_used_at), (1_000, 3_000));
}

#[test]
fn the_version_1_registration_file_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state/v1");
    fs::copy(fixture.join(V1_FILE), dir.path().join(V1_FILE)).unwrap();
    let state = load(dir.path()).unwrap().state.unwrap();
    assert_eq!(state.version, VERSION);
    assert_eq!(state.metadata.cluster, "prod");
    assert_eq!(state.metadata.ec2_instance_id, "i-0123456789abcdef0");
    assert_eq!(
        state.metadata.container_instance_arn,
        "arn:aws:ecs:us-west-2:123456789012:container-instance/prod/5a3bd1b5c0f84a0b9c8d2c1e7f0a1b2c"
    );
    assert!(state.tasks.is_empty());
    // Once the current version is written, the old file is gone.
    save(dir.path(), tasks(1));
    assert!(!dir.path().join(V1_FILE).exists());
    assert_eq!(load(dir.path()).unwrap().state.unwrap().tasks.len(), 1);
}

#[test]
fn resume_follows_the_official_rules() {
    let m = meta();
    assert_eq!(resume(None, "prod", "i-1"), Ok(Resume::Fresh));
    assert_eq!(
        resume(Some(&m), "prod", "i-1"),
        Ok(Resume::Reregister(m.container_instance_arn.clone()))
    );
    assert_eq!(
        resume(Some(&m), "prod", "i-2"),
        Ok(Resume::Fresh),
        "another instance's state"
    );
    assert!(resume(Some(&m), "other", "i-1")
        .unwrap_err()
        .contains("cluster"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever happens to the current file (cut short anywhere, a byte flipped), loading
    /// never fails and gives either the document that was written last or the one before —
    /// unless the damage leaves a valid document of a newer schema version, which is refused
    /// as a downgrade would be.
    #[test]
    fn damage_to_the_current_file_falls_back_to_the_previous_copy(
        cut in 0usize..4000, flip in any::<Option<(usize, u8)>>()
    ) {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), tasks(1));
        let last = save(dir.path(), tasks(2));
        let path = dir.path().join(FILE);
        let mut bytes = last.clone();
        bytes.truncate(cut.min(bytes.len()));
        if let Some((at, x)) = flip {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] ^= x;
            }
        }
        fs::write(&path, &bytes).unwrap();
        let loaded = match load(dir.path()) {
            // The damage made the version a newer one: indistinguishable from a downgrade.
            Err(StateError::NewerSchema { found, .. }) => {
                let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                prop_assert_eq!(doc["version"].as_u64(), Some(found));
                return Ok(());
            }
            other => other.unwrap(),
        };
        let state = loaded.state.expect("the previous copy at least");
        prop_assert!(matches!(state.tasks.len(), 1 | 2));
        if state.tasks.len() == 2 {
            prop_assert_eq!(state.metadata, meta());
        }
    }
}

#[test]
fn the_acs_sequence_number_is_saved_with_the_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let w = Writer::new(dir.path().to_owned(), meta());
    let none = w.render(tasks(1), Default::default()).unwrap();
    write(dir.path(), &none).unwrap();
    assert_eq!(load(dir.path()).unwrap().state.unwrap().acs_seq_num, None);
    w.seq.store(42, std::sync::atomic::Ordering::SeqCst);
    let bytes = w.render(tasks(1), Default::default()).unwrap();
    assert_ne!(bytes, none, "a new sequence number is a change to save");
    write(dir.path(), &bytes).unwrap();
    assert_eq!(
        load(dir.path()).unwrap().state.unwrap().acs_seq_num,
        Some(42)
    );
}
