//! Image cleanup against the real dockerd: tracked images old and unused go, used, excluded and
//! young ones stay (young ones go under disk pressure), the per-cycle bound holds, untracked
//! images and stopped non-ECS containers go only with untracked cleanup on, and the disk check
//! reads Docker's data disk.
//!
//! Each test makes its own tiny images (`docker import` of a one-file tar) and containers under
//! unique names and removes them at the end, even when it fails. Cleanup cycles see every image
//! on the daemon, so the tests run one at a time, exclude by name every image they did not make
//! when untracked cleanup is on, and refuse to start when a stopped non-ECS container that is
//! not theirs could be removed.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    TagImageOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use ecs_agent::images::cleaner::{CycleReport, ImageCleaner};
use ecs_agent::images::cleanup::{CleanupPolicy, ImageRecords};
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use support::env;

const HOUR_MS: u64 = 3_600_000;
const TASK_ARN_LABEL: &str = "com.amazonaws.ecs.task-arn";

/// Cycles see the whole daemon: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Nothing untracked is old enough, nothing removed early: each test turns on what it tests.
fn policy() -> CleanupPolicy {
    CleanupPolicy {
        min_age: Duration::from_secs(3600),
        non_ecs_min_age: Duration::from_secs(100 * 365 * 24 * 3600),
        per_cycle: 5,
        non_ecs_containers_per_cycle: 0,
        untracked: false,
        exclude: Vec::new(),
        disk_threshold_percent: 0,
    }
}

fn cleaner(
    docker: &Docker,
    policy: CleanupPolicy,
    records: &Arc<Mutex<ImageRecords>>,
) -> ImageCleaner {
    ImageCleaner::new(docker.clone(), policy, Arc::clone(records))
}

/// `ecs-agent-cleanup-test/<uuid>`: a repository no other test uses.
fn repository() -> String {
    format!("ecs-agent-cleanup-test/{}", uuid::Uuid::new_v4())
}

/// A tar archive holding one small file with `content`.
fn tiny_tar(content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let field =
        |h: &mut [u8; 512], at: usize, value: &[u8]| h[at..at + value.len()].copy_from_slice(value);
    field(&mut header, 0, b"marker");
    field(&mut header, 100, b"0000644\0");
    field(&mut header, 108, b"0000000\0");
    field(&mut header, 116, b"0000000\0");
    field(
        &mut header,
        124,
        format!("{:011o}\0", content.len()).as_bytes(),
    );
    field(&mut header, 136, b"00000000000\0");
    field(&mut header, 156, b"0");
    field(&mut header, 257, b"ustar\0");
    field(&mut header, 263, b"00");
    field(&mut header, 148, b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    field(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    tar
}

/// What a test made, removed at its end whatever happened.
#[derive(Default)]
struct Made {
    images: Mutex<Vec<String>>,
    containers: Mutex<Vec<String>>,
}

impl Made {
    /// Imports a new tiny image as `repo:tag`; returns its ID.
    async fn image(&self, docker: &Docker, repo: &str, tag: &str) -> String {
        let options = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .build();
        let tar = tiny_tar(uuid::Uuid::new_v4().to_string().as_bytes());
        let body = bollard::body_full(tar.into());
        let mut stream = docker.create_image(Some(options), Some(body), None);
        while let Some(item) = stream.next().await {
            item.unwrap_or_else(|e| panic!("import {repo}:{tag}: {e}"));
        }
        let id = docker
            .inspect_image(&format!("{repo}:{tag}"))
            .await
            .unwrap_or_else(|e| panic!("inspect {repo}:{tag}: {e}"))
            .id
            .expect("an image ID");
        self.images.lock().unwrap().push(id.clone());
        id
    }

    /// Creates (and with `run`, runs to its exit) a container from the busybox test image.
    async fn container(
        &self,
        docker: &Docker,
        labels: HashMap<String, String>,
        run: bool,
    ) -> String {
        let body = ContainerCreateBody {
            image: Some(env::image()),
            cmd: Some(vec!["true".to_owned()]),
            labels: Some(labels),
            ..Default::default()
        };
        let name = env::unique_name("ecs-agent-cleanup-test");
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let id = docker
            .create_container(Some(options), body)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"))
            .id;
        self.containers.lock().unwrap().push(id.clone());
        if run {
            docker.start_container(&id, None).await.unwrap();
            let wait = WaitContainerOptionsBuilder::default()
                .condition("not-running")
                .build();
            let _ = docker
                .wait_container(&id, Some(wait))
                .try_collect::<Vec<_>>()
                .await;
        }
        id
    }

    /// A container created (not started) from `image`: the image is in use.
    async fn user_of(&self, docker: &Docker, image: &str) -> String {
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(vec!["none".to_owned()]),
            ..Default::default()
        };
        let id = docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .unwrap_or_else(|e| panic!("create a container from {image}: {e}"))
            .id;
        self.containers.lock().unwrap().push(id.clone());
        id
    }

    async fn remove_all(&self, docker: &Docker) {
        let containers = std::mem::take(&mut *self.containers.lock().unwrap());
        for id in containers {
            let rm = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            let _ = docker.remove_container(&id, Some(rm)).await;
        }
        let images = std::mem::take(&mut *self.images.lock().unwrap());
        for id in images {
            let rm = RemoveImageOptionsBuilder::default().force(true).build();
            let _ = docker.remove_image(&id, Some(rm), None).await;
        }
    }
}

/// Runs `test` alone, then removes what it made, even when it panicked.
async fn isolated<F>(test: impl FnOnce(Docker, Arc<Made>) -> F)
where
    F: std::future::Future<Output = ()>,
{
    let _serial = SERIAL.lock().await;
    let docker = env::docker().await;
    let made = Arc::new(Made::default());
    let outcome = AssertUnwindSafe(test(docker.clone(), Arc::clone(&made)))
        .catch_unwind()
        .await;
    made.remove_all(&docker).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn exists(docker: &Docker, image: &str) -> bool {
    docker.inspect_image(image).await.is_ok()
}

/// Records `references` as pulled `ago_ms` ago, the later ones used more recently.
fn tracked(references: &[&str], ago_ms: u64) -> Arc<Mutex<ImageRecords>> {
    let now = now_ms();
    let mut records = ImageRecords::default();
    for (i, reference) in references.iter().enumerate() {
        records.pulled(reference, None, now - ago_ms);
        records.used(reference, now - ago_ms + i as u64 * 1000);
    }
    Arc::new(Mutex::new(records))
}

/// Every image name on the daemon that is not one of `mine` (image IDs).
async fn names_except(docker: &Docker, mine: &[&str]) -> Vec<String> {
    let options = ListImagesOptionsBuilder::default().build();
    let images = docker.list_images(Some(options)).await.unwrap();
    images
        .into_iter()
        .filter(|i| !mine.contains(&i.id.as_str()))
        .flat_map(|i| i.repo_tags.into_iter().chain(i.repo_digests))
        .filter(|n| !n.starts_with("<none>"))
        .collect()
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

#[tokio::test]
async fn an_old_unused_image_goes_while_used_and_excluded_ones_stay() {
    isolated(|docker, made| async move {
        let (old, used, excluded) = (repository(), repository(), repository());
        let old_id = made.image(&docker, &old, "1").await;
        made.image(&docker, &used, "1").await;
        made.image(&docker, &excluded, "1").await;
        made.user_of(&docker, &format!("{used}:1")).await;
        // A record of an image Docker does not have is forgotten.
        let gone = repository();
        let refs = [&old, &used, &excluded, &gone].map(|r| format!("{r}:1"));
        let records = tracked(&refs.each_ref().map(String::as_str), 2 * HOUR_MS);
        let policy = CleanupPolicy {
            exclude: vec![format!("{excluded}:1")],
            ..policy()
        };
        let report = cleaner(&docker, policy, &records)
            .run_cycle(now_ms(), false)
            .await;
        assert_eq!(report.removed_images, [old_id], "{report:?}");
        assert_eq!(
            sorted(&report.forgotten),
            sorted(&[format!("{old}:1"), format!("{gone}:1")])
        );
        assert_eq!(report.errors, 0);
        assert!(!exists(&docker, &format!("{old}:1")).await);
        assert!(exists(&docker, &format!("{used}:1")).await);
        assert!(exists(&docker, &format!("{excluded}:1")).await);
        let left: Vec<String> = records
            .lock()
            .unwrap()
            .iter()
            .map(|(r, _)| r.to_owned())
            .collect();
        assert_eq!(
            sorted(&left),
            sorted(&[format!("{used}:1"), format!("{excluded}:1")])
        );
    })
    .await;
}

#[tokio::test]
async fn no_cycle_removes_more_than_its_budget_least_recently_used_first() {
    isolated(|docker, made| async move {
        let mut refs = Vec::new();
        for _ in 0..4 {
            let repo = repository();
            made.image(&docker, &repo, "1").await;
            refs.push(format!("{repo}:1"));
        }
        let records = tracked(
            &refs.iter().map(String::as_str).collect::<Vec<_>>(),
            2 * HOUR_MS,
        );
        let policy = CleanupPolicy {
            per_cycle: 2,
            ..policy()
        };
        let cleaner = cleaner(&docker, policy, &records);
        let first = cleaner.run_cycle(now_ms(), false).await;
        assert_eq!(first.removed_images.len(), 2, "{first:?}");
        assert!(!exists(&docker, &refs[0]).await && !exists(&docker, &refs[1]).await);
        assert!(exists(&docker, &refs[2]).await && exists(&docker, &refs[3]).await);
        let second = cleaner.run_cycle(now_ms(), false).await;
        assert_eq!(second.removed_images.len(), 2, "{second:?}");
        assert!(!exists(&docker, &refs[2]).await && !exists(&docker, &refs[3]).await);
        assert!(records.lock().unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_young_image_stays_without_pressure_and_goes_with_it() {
    isolated(|docker, made| async move {
        let repo = repository();
        let id = made.image(&docker, &repo, "1").await;
        let reference = format!("{repo}:1");
        let records = tracked(&[&reference], 10 * 60 * 1000);
        let cleaner = cleaner(&docker, policy(), &records);
        let calm = cleaner.run_cycle(now_ms(), false).await;
        assert_eq!(calm, CycleReport::default());
        assert!(exists(&docker, &reference).await);
        let pressed = cleaner.run_cycle(now_ms(), true).await;
        assert_eq!(pressed.removed_images, [id], "{pressed:?}");
        assert!(!exists(&docker, &reference).await);
    })
    .await;
}

#[tokio::test]
async fn a_tracked_tag_of_an_image_with_another_tag_is_only_untagged() {
    isolated(|docker, made| async move {
        let repo = repository();
        made.image(&docker, &repo, "1").await;
        let tag = TagImageOptionsBuilder::default()
            .repo(&repo)
            .tag("2")
            .build();
        docker
            .tag_image(&format!("{repo}:1"), Some(tag))
            .await
            .unwrap();
        let records = tracked(&[&format!("{repo}:1")], 2 * HOUR_MS);
        let report = cleaner(&docker, policy(), &records)
            .run_cycle(now_ms(), false)
            .await;
        assert_eq!(report.removed_images, [format!("{repo}:1")], "{report:?}");
        assert!(!exists(&docker, &format!("{repo}:1")).await);
        assert!(exists(&docker, &format!("{repo}:2")).await);
    })
    .await;
}

#[tokio::test]
async fn untracked_images_go_only_when_untracked_cleanup_is_on_and_they_are_old_enough() {
    isolated(|docker, made| async move {
        let (a, b) = (repository(), repository());
        let a_id = made.image(&docker, &a, "1").await;
        let b_id = made.image(&docker, &b, "1").await;
        // Every other image is excluded by name; ours, a few bytes, are the smallest there are.
        let exclude = names_except(&docker, &[&a_id, &b_id]).await;
        let records = Arc::new(Mutex::new(ImageRecords::default()));
        let run = |policy: CleanupPolicy| {
            let cleaner = cleaner(&docker, policy, &records);
            async move { cleaner.run_cycle(now_ms(), false).await }
        };
        let off = run(CleanupPolicy {
            per_cycle: 2,
            non_ecs_min_age: Duration::ZERO,
            exclude: exclude.clone(),
            ..policy()
        })
        .await;
        assert!(off.removed_images.is_empty(), "{off:?}");
        let young = run(CleanupPolicy {
            per_cycle: 2,
            untracked: true,
            non_ecs_min_age: Duration::from_secs(3600),
            exclude: exclude.clone(),
            ..policy()
        })
        .await;
        assert!(young.removed_images.is_empty(), "{young:?}");
        assert!(exists(&docker, &a_id).await && exists(&docker, &b_id).await);
        let on = run(CleanupPolicy {
            per_cycle: 2,
            untracked: true,
            non_ecs_min_age: Duration::ZERO,
            exclude,
            ..policy()
        })
        .await;
        assert_eq!(
            sorted(&on.removed_images),
            sorted(&[a_id.clone(), b_id.clone()]),
            "{on:?}"
        );
        assert!(!exists(&docker, &a_id).await && !exists(&docker, &b_id).await);
    })
    .await;
}

/// IDs of stopped containers without an ECS task label.
async fn stopped_non_ecs(docker: &Docker) -> BTreeSet<String> {
    let options = ListContainersOptionsBuilder::default().all(true).build();
    let list = docker.list_containers(Some(options)).await.unwrap();
    list.into_iter()
        .filter(|c| {
            matches!(
                c.state,
                Some(ContainerSummaryStateEnum::EXITED | ContainerSummaryStateEnum::DEAD)
            )
        })
        .filter(|c| {
            !c.labels
                .as_ref()
                .is_some_and(|l| l.contains_key(TASK_ARN_LABEL))
        })
        .filter_map(|c| c.id)
        .collect()
}

#[tokio::test]
async fn stopped_non_ecs_containers_go_only_when_untracked_cleanup_is_on() {
    isolated(|docker, made| async move {
        let plain = made.container(&docker, HashMap::new(), true).await;
        let task = HashMap::from([(
            TASK_ARN_LABEL.to_owned(),
            "arn:aws:ecs:test:1:task/x".to_owned(),
        )]);
        let ecs = made.container(&docker, task, true).await;
        let others: Vec<String> = stopped_non_ecs(&docker)
            .await
            .into_iter()
            .filter(|id| *id != plain)
            .collect();
        assert!(
            others.is_empty(),
            "stopped non-ECS containers that are not this test's would be removed: {others:?}"
        );
        let records = Arc::new(Mutex::new(ImageRecords::default()));
        // No image deletion at all: only containers are under test.
        let base = CleanupPolicy {
            per_cycle: 0,
            non_ecs_containers_per_cycle: 5,
            ..policy()
        };
        let off = cleaner(&docker, base.clone(), &records)
            .run_cycle(now_ms(), false)
            .await;
        assert!(off.removed_containers.is_empty(), "{off:?}");
        let on = CleanupPolicy {
            untracked: true,
            ..base
        };
        let report = cleaner(&docker, on, &records)
            .run_cycle(now_ms(), false)
            .await;
        assert_eq!(report.removed_containers, [plain.as_str()], "{report:?}");
        assert!(report.removed_images.is_empty());
        assert!(docker.inspect_container(&plain, None).await.is_err());
        assert!(docker.inspect_container(&ecs, None).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn disk_pressure_compares_the_docker_data_disk_with_the_threshold() {
    isolated(|docker, _made| async move {
        let records = Arc::new(Mutex::new(ImageRecords::default()));
        let at = |percent: u8| {
            let policy = CleanupPolicy {
                disk_threshold_percent: percent,
                ..policy()
            };
            cleaner(&docker, policy, &records)
        };
        assert!(at(1).disk_pressure().await, "some of the disk is in use");
        assert!(!at(0).disk_pressure().await, "0 turns the check off");
        let root = docker.info().await.unwrap().docker_root_dir.unwrap();
        let full = nix::sys::statvfs::statvfs(root.as_str())
            .unwrap()
            .blocks_available()
            == 0;
        assert_eq!(at(100).disk_pressure().await, full);
    })
    .await;
}
