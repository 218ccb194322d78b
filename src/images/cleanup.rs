//! Image cleanup policy: which images, and which stopped non-ECS containers, one cleanup cycle
//! removes.
//!
//! Owns [`ImageRecords`] (what the agent knows of the images it pulled or used for tasks, saved
//! with its state), [`CleanupPolicy`] (the `ECS_*` cleanup settings) and the pure selection:
//! tracked images not used by any container and older than the minimum age go first, least
//! recently used first; then, with untracked cleanup on, other images old enough, smallest first,
//! in what is left of the same per-cycle budget. Pause images, `amazon/amazon-ecs-agent:latest`
//! and the operator's exclusions are never removed. Under disk pressure (this agent's own trigger,
//! `ECS_IMAGE_CLEANUP_DISK_THRESHOLD`) the minimum age of tracked images is waived, except for an
//! image pulled or used in the last [`PRESSURE_GRACE`].
//!
//! Must not do I/O nor read the clock: `cleaner` lists what Docker has and passes the time.
//! Known limits: when a re-pull moves a tag to a new image, the old image becomes untracked (it is
//! removed only with untracked cleanup on); a pull that lands between the listing and the
//! deletion is not seen (the deletion fails if a container already uses the image).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::reference::{repository, short_form};
use crate::config::{Config, ImagePullBehavior};

/// The agent's own image, never removed (as the official agent does).
const AGENT_IMAGE: &str = "amazon/amazon-ecs-agent:latest";
/// The repository of the official agent's pause images, never removed whatever the tag.
const PAUSE_REPOSITORY: &str = "amazon/amazon-ecs-pause";

/// Under disk pressure, a tracked image pulled or used this recently is still kept: its task
/// may be about to create a container from it.
pub const PRESSURE_GRACE: Duration = Duration::from_secs(5 * 60);

/// What the agent knows of one image it pulled or used for a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Docker's image ID at the last pull, when known.
    pub image_id: Option<String>,
    /// When the agent last pulled it (unix ms).
    pub pulled_at: u64,
    /// When a task last used it (unix ms).
    pub last_used_at: u64,
}

/// The images the agent pulled or used for tasks, by reference (`registry/repo:tag`).
///
/// References are kept in Docker's short form (`busybox` is `busybox:latest`,
/// `docker.io/library/busybox` is `busybox:latest`), so two spellings share a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageRecords {
    images: BTreeMap<String, ImageRecord>,
}

impl ImageRecords {
    /// A pull of `reference` succeeded (a pull is also a use).
    pub fn pulled(&mut self, reference: &str, image_id: Option<String>, now_ms: u64) {
        let record = self.images.entry(short_form(reference)).or_default();
        if image_id.is_some() {
            record.image_id = image_id;
        }
        record.pulled_at = now_ms;
        record.last_used_at = record.last_used_at.max(now_ms);
    }

    /// A task uses `reference` (its container is created); an image the agent did not pull is
    /// recorded as pulled now.
    pub fn used(&mut self, reference: &str, now_ms: u64) {
        let record = self
            .images
            .entry(short_form(reference))
            .or_insert_with(|| ImageRecord {
                pulled_at: now_ms,
                ..ImageRecord::default()
            });
        record.last_used_at = record.last_used_at.max(now_ms);
    }

    /// Drops the record of `reference` (its image was removed).
    pub fn forget(&mut self, reference: &str) {
        self.images.remove(&short_form(reference));
    }

    /// The record of `reference`, if any.
    pub fn get(&self, reference: &str) -> Option<&ImageRecord> {
        self.images.get(&short_form(reference))
    }

    /// Every record, by reference.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ImageRecord)> {
        self.images.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// The cleanup settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// A tracked image is removed only once pulled this long ago (`ECS_IMAGE_MINIMUM_CLEANUP_AGE`).
    pub min_age: Duration,
    /// An untracked image is removed only once created this long ago.
    pub non_ecs_min_age: Duration,
    /// Image deletions (Docker delete calls) per cycle, tracked and untracked together.
    pub per_cycle: u32,
    /// Stopped non-ECS containers removed per cycle (with `untracked`).
    pub non_ecs_containers_per_cycle: u32,
    /// Also remove untracked images and stopped non-ECS containers.
    pub untracked: bool,
    /// Image names never removed (`ECS_EXCLUDE_UNTRACKED_IMAGE`), protecting every name of
    /// their image.
    pub exclude: Vec<String>,
    /// Percent of the Docker data disk in use that triggers an early cycle; 0 turns it off.
    pub disk_threshold_percent: u8,
}

impl CleanupPolicy {
    /// The policy the configuration asks for; `None` when cleanup is off
    /// (`ECS_DISABLE_IMAGE_CLEANUP`, or `ECS_IMAGE_PULL_BEHAVIOR=prefer-cached`).
    pub fn from_config(config: &Config) -> Option<Self> {
        if config.disable_image_cleanup
            || config.image_pull_behavior == ImagePullBehavior::PreferCached
        {
            return None;
        }
        Some(CleanupPolicy {
            min_age: config.image_minimum_cleanup_age,
            non_ecs_min_age: config.non_ecs_image_minimum_cleanup_age,
            per_cycle: config.num_images_delete_per_cycle,
            non_ecs_containers_per_cycle: config.non_ecs_containers_delete_per_cycle,
            untracked: config.untracked_image_cleanup,
            exclude: config.exclude_untracked_images.clone(),
            disk_threshold_percent: config.image_cleanup_disk_threshold,
        })
    }

    /// Whether `image` must stay whatever its age: one of its names is excluded.
    fn protects(&self, image: &DockerImage) -> bool {
        let excluded: BTreeSet<String> = self.exclude.iter().map(|e| short_form(e)).collect();
        image.names().any(|name| {
            let name = short_form(name);
            excluded.contains(&name) || name == AGENT_IMAGE || repository(&name) == PAUSE_REPOSITORY
        })
    }
}

/// An image as Docker lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerImage {
    pub id: String,
    /// `repo:tag` names; `<none>:<none>` entries are ignored.
    pub repo_tags: Vec<String>,
    /// `repo@digest` names; `<none>@<none>` entries are ignored.
    pub repo_digests: Vec<String>,
    /// Bytes.
    pub size: u64,
    /// Unix seconds, as Docker reports it.
    pub created: i64,
}

impl DockerImage {
    fn tags(&self) -> impl Iterator<Item = &str> {
        self.repo_tags
            .iter()
            .map(String::as_str)
            .filter(|t| !t.starts_with("<none>"))
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        let digests = self.repo_digests.iter().map(String::as_str);
        self.tags()
            .chain(digests.filter(|d| !d.starts_with("<none>")))
    }
}

/// A container as Docker lists it, any state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerContainer {
    pub id: String,
    pub image_id: String,
    /// Exited or dead (a created container may be about to start).
    pub stopped: bool,
    /// Carries the `com.amazonaws.ecs.task-arn` label.
    pub ecs_task: bool,
    /// Unix seconds.
    pub created: i64,
}

/// What one cycle looks at.
#[derive(Debug, Clone, Copy)]
pub struct CycleInput<'a> {
    pub images: &'a [DockerImage],
    /// IDs of the images any existing container uses, whatever its state.
    pub in_use: &'a BTreeSet<String>,
    pub records: &'a ImageRecords,
    /// Unix ms.
    pub now_ms: u64,
    /// The Docker data disk is over the threshold.
    pub pressure: bool,
}

/// One Docker image deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// What to delete: one name of the image (it keeps its other names), or its ID.
    pub target: String,
    pub image_id: String,
    /// Tracked references this frees, to forget once done; empty for untracked images.
    pub records: Vec<String>,
}

/// What one cycle removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Image deletions, in order; at most the policy's `per_cycle`.
    pub removals: Vec<Removal>,
    /// Records whose image Docker no longer has: forget them.
    pub stale: Vec<String>,
}

/// The images to remove this cycle: tracked ones (least recently used first), then untracked
/// ones when the policy says so (smallest first).
pub fn select(input: &CycleInput, policy: &CleanupPolicy) -> Selection {
    let by_name = name_index(input.images);
    let mut plan = Plan::new(policy.per_cycle);
    let mut stale = Vec::new();
    let mut tracked_ids = BTreeSet::new();
    let mut candidates = Vec::new();
    for (reference, record) in input.records.iter() {
        tracked_ids.extend(record.image_id.iter().cloned());
        let Some(&(image, name)) = by_name.get(&short_form(reference)) else {
            stale.push(reference.to_owned());
            continue;
        };
        tracked_ids.insert(image.id.clone());
        if may_remove(image, input, policy) && tracked_old_enough(record, input, policy) {
            candidates.push((record.last_used_at, reference, image, name));
        }
    }
    candidates.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (_, reference, image, name) in candidates {
        plan.remove_name(image, name, reference);
    }
    if policy.untracked {
        for image in untracked_candidates(input, policy, &tracked_ids) {
            plan.remove_image(image);
        }
    }
    Selection {
        removals: plan.removals,
        stale,
    }
}

/// The stopped containers without an ECS task label to remove this cycle, oldest first; none
/// unless untracked cleanup is on.
pub fn select_containers(containers: &[DockerContainer], policy: &CleanupPolicy) -> Vec<String> {
    if !policy.untracked {
        return Vec::new();
    }
    let mut stopped: Vec<&DockerContainer> = containers
        .iter()
        .filter(|c| c.stopped && !c.ecs_task)
        .collect();
    stopped.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    stopped
        .into_iter()
        .take(policy.non_ecs_containers_per_cycle as usize)
        .map(|c| c.id.clone())
        .collect()
}

/// Every name of every image, in short form, with the image and the name as Docker lists it.
fn name_index(images: &[DockerImage]) -> HashMap<String, (&DockerImage, &str)> {
    images
        .iter()
        .flat_map(|image| {
            image
                .names()
                .map(move |name| (short_form(name), (image, name)))
        })
        .collect()
}

fn may_remove(image: &DockerImage, input: &CycleInput, policy: &CleanupPolicy) -> bool {
    !input.in_use.contains(&image.id) && !policy.protects(image)
}

fn tracked_old_enough(record: &ImageRecord, input: &CycleInput, policy: &CleanupPolicy) -> bool {
    if input.pressure {
        let last = record.pulled_at.max(record.last_used_at);
        age(input.now_ms, last) >= PRESSURE_GRACE
    } else {
        age(input.now_ms, record.pulled_at) >= policy.min_age
    }
}

/// Images no record names, unused, unprotected and old enough, smallest first.
fn untracked_candidates<'a>(
    input: &CycleInput<'a>,
    policy: &CleanupPolicy,
    tracked_ids: &BTreeSet<String>,
) -> Vec<&'a DockerImage> {
    let mut images: Vec<&DockerImage> = input
        .images
        .iter()
        .filter(|i| !tracked_ids.contains(&i.id))
        .filter(|i| may_remove(i, input, policy))
        .filter(|i| {
            let created_ms = u64::try_from(i.created).unwrap_or(0).saturating_mul(1000);
            age(input.now_ms, created_ms) >= policy.non_ecs_min_age
        })
        .collect();
    images.sort_by(|a, b| (a.size, &a.id).cmp(&(b.size, &b.id)));
    images
}

fn age(now_ms: u64, then_ms: u64) -> Duration {
    Duration::from_millis(now_ms.saturating_sub(then_ms))
}

/// The deletions chosen so far, within the budget.
struct Plan {
    budget: usize,
    removals: Vec<Removal>,
    /// Tags each image keeps after the deletions planned so far.
    tags_left: HashMap<String, usize>,
    /// Index of the deletion that frees a name or an image ID already planned.
    planned: HashMap<String, usize>,
}

impl Plan {
    fn new(per_cycle: u32) -> Self {
        Plan {
            budget: per_cycle as usize,
            removals: Vec::new(),
            tags_left: HashMap::new(),
            planned: HashMap::new(),
        }
    }

    /// Frees the tracked `reference`, Docker's `name` of `image`: untags it when the image
    /// keeps another tag, else deletes the image.
    fn remove_name(&mut self, image: &DockerImage, name: &str, reference: &str) {
        if let Some(&i) = self.planned.get(name).or(self.planned.get(&image.id)) {
            self.removals[i].records.push(reference.to_owned());
            return;
        }
        if self.removals.len() >= self.budget {
            return;
        }
        let tags_left = *self
            .tags_left
            .entry(image.id.clone())
            .or_insert_with(|| image.tags().count());
        let is_tag = image.tags().any(|t| t == name);
        let untag = if is_tag { tags_left > 1 } else { tags_left > 0 };
        let target = if untag { name } else { image.id.as_str() };
        if untag && is_tag {
            self.tags_left.insert(image.id.clone(), tags_left - 1);
        }
        self.push(target, image, vec![reference.to_owned()]);
    }

    /// Deletes the untracked `image`: one deletion per tag but the last, then the image; all or
    /// nothing within the budget.
    fn remove_image(&mut self, image: &DockerImage) {
        let tags: Vec<&str> = image.tags().collect();
        let cost = tags.len().max(1);
        if self.removals.len() + cost > self.budget {
            return;
        }
        for tag in tags.iter().skip(1) {
            self.push(tag, image, Vec::new());
        }
        self.push(&image.id, image, Vec::new());
    }

    fn push(&mut self, target: &str, image: &DockerImage, records: Vec<String>) {
        self.planned.insert(target.to_owned(), self.removals.len());
        self.removals.push(Removal {
            target: target.to_owned(),
            image_id: image.id.clone(),
            records,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: u64 = 60_000;
    const HOUR: u64 = 60 * MIN;
    /// "Now" in the tests: some day in 2024, in unix ms.
    const NOW: u64 = 1_720_000_000_000;

    fn image(id: &str, tags: &[&str], size: u64, created_ago_ms: u64) -> DockerImage {
        DockerImage {
            id: id.to_owned(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: Vec::new(),
            size,
            created: ((NOW - created_ago_ms) / 1000) as i64,
        }
    }

    /// (reference, pulled this long ago, used this long ago).
    fn records(entries: &[(&str, u64, u64)]) -> ImageRecords {
        let mut r = ImageRecords::default();
        for (reference, pulled_ago, used_ago) in entries {
            r.pulled(reference, None, NOW - pulled_ago);
            r.used(reference, NOW - used_ago);
        }
        r
    }

    fn policy() -> CleanupPolicy {
        CleanupPolicy {
            min_age: Duration::from_secs(3600),
            non_ecs_min_age: Duration::from_secs(3600),
            per_cycle: 5,
            non_ecs_containers_per_cycle: 5,
            untracked: false,
            exclude: Vec::new(),
            disk_threshold_percent: 90,
        }
    }

    fn run(
        images: &[DockerImage],
        in_use: &[&str],
        records: &ImageRecords,
        policy: &CleanupPolicy,
        pressure: bool,
    ) -> Selection {
        let in_use = in_use.iter().map(|s| s.to_string()).collect();
        let input = CycleInput {
            images,
            in_use: &in_use,
            records,
            now_ms: NOW,
            pressure,
        };
        select(&input, policy)
    }

    fn targets(selection: &Selection) -> Vec<&str> {
        selection
            .removals
            .iter()
            .map(|r| r.target.as_str())
            .collect()
    }

    #[test]
    fn old_unused_tracked_images_go_least_recently_used_first() {
        let images = [
            image("sha256:a", &["a:1"], 10, 9 * HOUR),
            image("sha256:b", &["b:1"], 10, 9 * HOUR),
            image("sha256:c", &["c:1"], 10, 9 * HOUR),
        ];
        let recs = records(&[
            ("a:1", 5 * HOUR, 2 * HOUR),
            ("b:1", 5 * HOUR, 4 * HOUR),
            ("c:1", 5 * HOUR, 3 * HOUR),
        ]);
        let sel = run(&images, &[], &recs, &policy(), false);
        assert_eq!(targets(&sel), ["sha256:b", "sha256:c", "sha256:a"]);
        assert_eq!(sel.removals[0].records, ["b:1"]);
        assert!(sel.stale.is_empty());
    }

    #[test]
    fn images_in_use_excluded_or_built_in_stay() {
        let images = [
            image("sha256:used", &["used:1"], 1, 9 * HOUR),
            image("sha256:excl", &["excl:1"], 1, 9 * HOUR),
            image("sha256:hub", &["busybox:latest"], 1, 9 * HOUR),
            image(
                "sha256:agent",
                &["amazon/amazon-ecs-agent:latest"],
                1,
                9 * HOUR,
            ),
            image(
                "sha256:pause",
                &["amazon/amazon-ecs-pause:0.1.0"],
                1,
                9 * HOUR,
            ),
            image("sha256:two", &["two:1", "two:keep"], 1, 9 * HOUR),
            image("sha256:free", &["free:1"], 1, 9 * HOUR),
        ];
        let all = [
            "used:1",
            "excl:1",
            "busybox",
            "amazon/amazon-ecs-agent:latest",
            "amazon/amazon-ecs-pause:0.1.0",
            "two:1",
            "free:1",
        ];
        let entries: Vec<(&str, u64, u64)> = all.iter().map(|r| (*r, 5 * HOUR, 5 * HOUR)).collect();
        let recs = records(&entries);
        let mut p = policy();
        p.per_cycle = 10;
        // Spelt as operators write them: `docker.io/library/busybox` is `busybox:latest`; an
        // excluded name protects every name of its image.
        p.exclude = vec![
            "excl:1".into(),
            "docker.io/library/busybox".into(),
            "two:keep".into(),
        ];
        for pressure in [false, true] {
            let sel = run(&images, &["sha256:used"], &recs, &p, pressure);
            assert_eq!(targets(&sel), ["sha256:free"], "pressure {pressure}");
        }
    }

    #[test]
    fn young_tracked_images_stay_unless_the_disk_is_under_pressure() {
        let images = [
            image("sha256:old", &["old:1"], 1, 9 * HOUR),
            image("sha256:young", &["young:1"], 1, 9 * HOUR),
            image("sha256:fresh", &["fresh:1"], 1, 9 * HOUR),
            image("sha256:busy", &["busy:1"], 1, 9 * HOUR),
        ];
        let recs = records(&[
            ("old:1", 2 * HOUR, 2 * HOUR),
            ("young:1", 20 * MIN, 20 * MIN),
            // Within the grace: its task may be about to create its container.
            ("fresh:1", 2 * MIN, 2 * MIN),
            // Pulled long ago but used a minute ago.
            ("busy:1", 3 * HOUR, MIN),
        ]);
        let cases: &[(bool, &[&str])] = &[
            (false, &["sha256:busy", "sha256:old"]),
            (true, &["sha256:old", "sha256:young"]),
        ];
        for (pressure, want) in cases {
            let sel = run(&images, &[], &recs, &policy(), *pressure);
            let mut got = targets(&sel);
            got.sort();
            assert_eq!(got, *want, "pressure {pressure}");
        }
    }

    #[test]
    fn the_budget_bounds_tracked_and_untracked_deletions_together() {
        let images: Vec<DockerImage> = (0..8)
            .map(|i| image(&format!("sha256:{i}"), &[&format!("img{i}:1")], i, 9 * HOUR))
            .collect();
        let recs = records(&[
            ("img5:1", 2 * HOUR, 2 * HOUR),
            ("img6:1", 3 * HOUR, 3 * HOUR),
        ]);
        let cases: &[(u32, bool, &[&str])] = &[
            (1, false, &["sha256:6"]),
            (5, false, &["sha256:6", "sha256:5"]),
            (0, true, &[]),
            (4, true, &["sha256:6", "sha256:5", "sha256:0", "sha256:1"]),
        ];
        for (per_cycle, untracked, want) in cases {
            let mut p = policy();
            p.per_cycle = *per_cycle;
            p.untracked = *untracked;
            let sel = run(&images, &[], &recs, &p, false);
            assert_eq!(
                targets(&sel),
                *want,
                "per_cycle {per_cycle}, untracked {untracked}"
            );
        }
    }

    #[test]
    fn untracked_images_go_only_when_enabled_smallest_and_old_enough() {
        let images = [
            image("sha256:big", &["big:1"], 300, 9 * HOUR),
            image("sha256:small", &["small:1"], 100, 9 * HOUR),
            image("sha256:new", &["new:1"], 1, 10 * MIN),
            image("sha256:dangling", &["<none>:<none>"], 200, 9 * HOUR),
            image("sha256:mine", &["mine:1"], 1, 9 * HOUR),
        ];
        let recs = records(&[("mine:1", 10 * MIN, 10 * MIN)]);
        let sel = run(&images, &[], &recs, &policy(), false);
        assert!(sel.removals.is_empty(), "untracked cleanup is off");
        let mut p = policy();
        p.untracked = true;
        // The young tracked image is not untracked for being young.
        let sel = run(&images, &[], &recs, &p, false);
        assert_eq!(
            targets(&sel),
            ["sha256:small", "sha256:dangling", "sha256:big"]
        );
        assert!(sel.removals.iter().all(|r| r.records.is_empty()));
        // Pressure waives the age of tracked images only.
        let sel = run(&images, &[], &recs, &p, true);
        assert_eq!(
            targets(&sel),
            [
                "sha256:mine",
                "sha256:small",
                "sha256:dangling",
                "sha256:big"
            ]
        );
    }

    #[test]
    fn a_tracked_name_is_untagged_while_its_image_keeps_another_tag() {
        let images = [
            image("sha256:shared", &["x:1", "x:2", "other:1"], 1, 9 * HOUR),
            image("sha256:single", &["y:1"], 1, 9 * HOUR),
        ];
        let recs = records(&[
            ("x:1", 5 * HOUR, 5 * HOUR),
            ("x:2", 5 * HOUR, 4 * HOUR),
            ("y:1", 5 * HOUR, 3 * HOUR),
        ]);
        let sel = run(&images, &[], &recs, &policy(), false);
        assert_eq!(targets(&sel), ["x:1", "x:2", "sha256:single"]);
        // Both tracked tags of an image with no other: untag one, then delete the image.
        let images = [image("sha256:pair", &["p:1", "p:2"], 1, 9 * HOUR)];
        let recs = records(&[("p:1", 5 * HOUR, 5 * HOUR), ("p:2", 5 * HOUR, 4 * HOUR)]);
        let sel = run(&images, &[], &recs, &policy(), false);
        assert_eq!(targets(&sel), ["p:1", "sha256:pair"]);
    }

    #[test]
    fn an_untracked_image_with_several_tags_goes_whole_or_not_at_all() {
        let images = [
            image("sha256:multi", &["m:1", "m:2", "m:3"], 1, 9 * HOUR),
            image("sha256:one", &["o:1"], 2, 9 * HOUR),
        ];
        let mut p = policy();
        p.untracked = true;
        let cases: &[(u32, &[&str])] = &[
            (2, &["sha256:one"]),
            (3, &["m:2", "m:3", "sha256:multi"]),
            (4, &["m:2", "m:3", "sha256:multi", "sha256:one"]),
        ];
        for (per_cycle, want) in cases {
            p.per_cycle = *per_cycle;
            let sel = run(&images, &[], &ImageRecords::default(), &p, false);
            assert_eq!(targets(&sel), *want, "per_cycle {per_cycle}");
        }
    }

    #[test]
    fn records_of_images_docker_no_longer_has_are_stale() {
        let images = [image("sha256:a", &["a:1"], 1, 9 * HOUR)];
        let recs = records(&[("a:1", 10 * MIN, 10 * MIN), ("gone:1", 5 * HOUR, 5 * HOUR)]);
        let sel = run(&images, &[], &recs, &policy(), false);
        assert!(sel.removals.is_empty());
        assert_eq!(sel.stale, ["gone:1"]);
    }

    #[test]
    fn a_digest_reference_matches_the_image_repo_digest() {
        let mut img = image("sha256:d", &[], 1, 9 * HOUR);
        img.repo_digests = vec!["reg.example/app@sha256:feed".into()];
        let recs = records(&[("reg.example/app:1.0@sha256:feed", 5 * HOUR, 5 * HOUR)]);
        let sel = run(&[img.clone()], &[], &recs, &policy(), false);
        assert_eq!(targets(&sel), ["sha256:d"]);
        assert_eq!(sel.removals[0].records, ["reg.example/app@sha256:feed"]);
        // With a tag left, only the digest name goes.
        img.repo_tags = vec!["reg.example/app:1.0".into()];
        let sel = run(&[img], &[], &recs, &policy(), false);
        assert_eq!(targets(&sel), ["reg.example/app@sha256:feed"]);
    }

    #[test]
    fn records_track_pulls_and_uses_under_one_spelling() {
        let mut r = ImageRecords::default();
        r.pulled("busybox", Some("sha256:1".into()), 100);
        r.used("docker.io/library/busybox:latest", 300);
        r.used("busybox:latest", 200);
        r.pulled("busybox", None, 400);
        let want = ImageRecord {
            image_id: Some("sha256:1".into()),
            pulled_at: 400,
            last_used_at: 400,
        };
        assert_eq!(r.get("busybox:latest"), Some(&want));
        r.used("other", 500);
        assert_eq!(r.get("other:latest").map(|x| x.pulled_at), Some(500));
        assert_eq!(r.len(), 2);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.starts_with(r#"{"busybox:latest":{"#), "{json}");
        assert_eq!(serde_json::from_str::<ImageRecords>(&json).unwrap(), r);
        r.forget("busybox");
        r.forget("other:latest");
        assert!(r.is_empty());
    }

    #[test]
    fn stopped_non_ecs_containers_go_only_with_untracked_oldest_first() {
        let c = |id: &str, stopped: bool, ecs_task: bool, created: i64| DockerContainer {
            id: id.into(),
            image_id: "sha256:x".into(),
            stopped,
            ecs_task,
            created,
        };
        let containers = [
            c("newer", true, false, 300),
            c("older", true, false, 100),
            c("running", false, false, 50),
            c("task", true, true, 10),
            c("oldest", true, false, 90),
        ];
        assert!(select_containers(&containers, &policy()).is_empty());
        let mut p = policy();
        p.untracked = true;
        p.non_ecs_containers_per_cycle = 2;
        assert_eq!(select_containers(&containers, &p), ["oldest", "older"]);
        p.non_ecs_containers_per_cycle = 0;
        assert!(select_containers(&containers, &p).is_empty());
    }

    #[test]
    fn the_policy_follows_the_configuration() {
        use crate::config::{load, Sources};
        let config = |pairs: &[(&str, &str)]| {
            let env = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            load(&Sources {
                env,
                ..Sources::default()
            })
            .unwrap()
            .config
        };
        let p = CleanupPolicy::from_config(&config(&[])).expect("on by default");
        assert_eq!(p, policy());
        let p = CleanupPolicy::from_config(&config(&[
            ("ECS_IMAGE_MINIMUM_CLEANUP_AGE", "30m"),
            ("NON_ECS_IMAGE_MINIMUM_CLEANUP_AGE", "2h"),
            ("ECS_NUM_IMAGES_DELETE_PER_CYCLE", "7"),
            ("NONECS_NUM_CONTAINERS_DELETE_PER_CYCLE", "3"),
            ("ECS_ENABLE_UNTRACKED_IMAGE_CLEANUP", "true"),
            ("ECS_EXCLUDE_UNTRACKED_IMAGE", "a:1,b:2"),
            ("ECS_IMAGE_CLEANUP_DISK_THRESHOLD", "0"),
        ]))
        .unwrap();
        let want = CleanupPolicy {
            min_age: Duration::from_secs(1800),
            non_ecs_min_age: Duration::from_secs(7200),
            per_cycle: 7,
            non_ecs_containers_per_cycle: 3,
            untracked: true,
            exclude: vec!["a:1".into(), "b:2".into()],
            disk_threshold_percent: 0,
        };
        assert_eq!(p, want);
        let off = [
            ("ECS_DISABLE_IMAGE_CLEANUP", "true"),
            ("ECS_IMAGE_PULL_BEHAVIOR", "prefer-cached"),
        ];
        for pair in off {
            assert_eq!(
                CleanupPolicy::from_config(&config(&[pair])),
                None,
                "{pair:?}"
            );
        }
    }

    /// Up to 6 images over a pool of 8 names (each name on at most one image), some in use,
    /// some tracked, some excluded.
    fn world() -> impl Strategy<
        Value = (
            Vec<DockerImage>,
            Vec<String>,
            ImageRecords,
            CleanupPolicy,
            bool,
        ),
    > {
        let names = prop::collection::vec(prop::option::of(0usize..6), 8);
        let images = prop::collection::vec((0u64..1000, 0u64..4 * HOUR), 6);
        let in_use = prop::collection::vec(any::<bool>(), 6);
        let tracked = prop::collection::vec(prop::option::of((0u64..4 * HOUR, 0u64..4 * HOUR)), 8);
        let excluded = prop::collection::vec(prop::bool::weighted(0.2), 8);
        let knobs = (
            0u32..8,
            any::<bool>(),
            0u64..3 * HOUR,
            0u64..3 * HOUR,
            any::<bool>(),
        );
        (names, images, in_use, tracked, excluded, knobs).prop_map(
            |(names, images, in_use, tracked, excluded, knobs)| {
                let (per_cycle, untracked, min_age, non_ecs_min_age, pressure) = knobs;
                let name = |n: usize| format!("reg.example/n{n}:1");
                let images: Vec<DockerImage> = images
                    .iter()
                    .enumerate()
                    .map(|(i, (size, created_ago))| {
                        let tags: Vec<String> =
                            (0..8).filter(|n| names[*n] == Some(i)).map(name).collect();
                        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                        image(&format!("sha256:{i}"), &tags, *size, *created_ago)
                    })
                    .collect();
                let in_use = (0..6)
                    .filter(|i| in_use[*i])
                    .map(|i| format!("sha256:{i}"))
                    .collect();
                let mut records = ImageRecords::default();
                for (n, t) in tracked.iter().enumerate() {
                    if let Some((pulled_ago, used_ago)) = t {
                        records.pulled(&name(n), None, NOW - pulled_ago);
                        records.used(&name(n), NOW - used_ago);
                    }
                }
                let policy = CleanupPolicy {
                    min_age: Duration::from_millis(min_age),
                    non_ecs_min_age: Duration::from_millis(non_ecs_min_age),
                    per_cycle,
                    untracked,
                    exclude: (0..8).filter(|n| excluded[*n]).map(name).collect(),
                    ..policy()
                };
                (images, in_use, records, policy, pressure)
            },
        )
    }

    proptest! {
        #[test]
        fn selection_respects_use_exclusions_budget_and_age(
            (images, in_use, records, policy, pressure) in world()
        ) {
            let in_use_refs: Vec<&str> = in_use.iter().map(String::as_str).collect();
            let sel = run(&images, &in_use_refs, &records, &policy, pressure);
            prop_assert!(sel.removals.len() <= policy.per_cycle as usize);
            for r in &sel.removals {
                let image = images.iter().find(|i| i.id == r.image_id).unwrap();
                prop_assert!(!in_use.contains(&r.image_id), "in use: {:?}", r);
                prop_assert!(!policy.protects(image), "excluded: {:?}", r);
                prop_assert!(r.target == image.id || image.names().any(|n| n == r.target));
                if !policy.untracked {
                    prop_assert!(!r.records.is_empty(), "untracked without the policy: {:?}", r);
                }
                if !pressure {
                    for reference in &r.records {
                        let pulled = records.get(reference).unwrap().pulled_at;
                        prop_assert!(age(NOW, pulled) >= policy.min_age, "young: {:?}", r);
                    }
                }
                if r.records.is_empty() {
                    let created_ms = image.created as u64 * 1000;
                    prop_assert!(age(NOW, created_ms) >= policy.non_ecs_min_age);
                }
            }
        }
    }
}
