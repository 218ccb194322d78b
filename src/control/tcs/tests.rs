use proptest::prelude::*;
use serde_json::json;

use super::*;

const ARN: &str =
    "arn:aws:ecs:us-east-1:123456789012:container-instance/test/0123456789abcdef0123456789abcdef";
const NOW: Timestamp = Timestamp::from_millis(1_795_695_065_260);

fn ulong(sum: i64) -> ULongStatsSet {
    ULongStatsSet {
        max: sum,
        min: 0,
        sample_count: 2,
        sum,
        ..Default::default()
    }
}

fn task_metric(i: usize) -> TaskMetric {
    TaskMetric {
        cluster_arn: Some("arn:aws:ecs:us-east-1:123456789012:cluster/test".into()),
        container_metrics: vec![ContainerMetric {
            container_name: Some("sleeper".into()),
            cpu_stats_set: Some(CwStatsSet {
                max: Some(1.5),
                min: Some(0.0),
                sample_count: Some(2),
                sum: Some(2.0),
            }),
            memory_stats_set: Some(CwStatsSet::default()),
            network_stats_set: Some(NetworkStatsSet {
                rx_bytes: Some(ulong(100)),
                rx_bytes_per_second: Some(UDoubleCwStatsSet {
                    max: 5.0,
                    min: 0.25,
                    sample_count: 2,
                    sum: 5.25,
                }),
                ..Default::default()
            }),
            restart_stats_set: Some(RestartStatsSet {
                restart_count: Some(0),
            }),
            storage_stats_set: Some(StorageStatsSet {
                read_size_bytes: Some(ulong(4096)),
                write_size_bytes: Some(ulong(0)),
            }),
            ..Default::default()
        }],
        task_arn: Some(format!("arn:aws:ecs:us-east-1:123456789012:task/test/{i}")),
        task_definition_family: Some("bbsleep".into()),
        task_definition_version: Some("1".into()),
        ..Default::default()
    }
}

fn cycle(tasks: usize) -> MetricsCycle {
    MetricsCycle {
        cluster: "test".into(),
        container_instance: ARN.into(),
        message_id: "m-1".into(),
        timestamp: NOW,
        instance_metrics: Some(InstanceMetrics {
            storage: Some(InstanceStorageMetrics {
                data_filesystem: Some(12.5),
                root_filesystem: Some(40.0),
            }),
            ..Default::default()
        }),
        task_metrics: (0..tasks).map(task_metric).collect(),
    }
}

fn metadata(r: &PublishMetricsRequest) -> &MetricsMetadata {
    r.metadata.as_ref().unwrap()
}

#[test]
fn every_inbound_message_round_trips() {
    let text = |s: &str| TextMessage {
        message: Some(s.into()),
    };
    let all = [
        Inbound::Heartbeat(HeartbeatMessage {
            healthy: Some(true),
        }),
        Inbound::AckPublishMetric(text("ok")),
        Inbound::AckPublishHealth(TextMessage::default()),
        Inbound::AckPublishInstanceStatus(text("ok")),
        Inbound::StopTelemetrySession(text("bye")),
        Inbound::Exception {
            kind: "ResourceValidationException".into(),
            message: "bad".into(),
        },
        Inbound::Unknown {
            kind: "Future".into(),
        },
    ];
    for msg in all {
        let frame = encode_inbound(&msg);
        assert_eq!(decode(&frame).as_ref(), Ok(&msg), "{frame}");
    }
}

#[test]
fn every_outbound_message_round_trips() {
    let health = health_requests(HealthCycle {
        cluster: "test".into(),
        container_instance: ARN.into(),
        message_id: "h".into(),
        timestamp: NOW,
        tasks: vec![TaskHealth {
            task_arn: Some("t".into()),
            containers: vec![ContainerHealth {
                container_name: Some("c".into()),
                health_status: Some("HEALTHY".into()),
                status_since: Some(Timestamp::from_millis(1_795_695_000_000)),
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    let all = [
        Outbound::PublishMetrics(metrics_requests(cycle(3)).remove(0)),
        Outbound::PublishMetrics(metrics_requests(cycle(0)).remove(0)),
        Outbound::PublishHealth(health[0].clone()),
        Outbound::PublishInstanceStatus(instance_status("OK")),
    ];
    for msg in all {
        let frame = encode(&msg);
        assert_eq!(decode_outbound(&frame).as_ref(), Ok(&msg), "{frame}");
    }
}

fn instance_status(status: &str) -> PublishInstanceStatusRequest {
    PublishInstanceStatusRequest {
        metadata: Some(InstanceStatusMetadata {
            cluster: Some("test".into()),
            container_instance: Some(ARN.into()),
            request_id: Some("r-1".into()),
        }),
        statuses: vec![InstanceStatus {
            last_status_change: Some(Timestamp::from_millis(1_795_695_045_000)),
            last_updated: Some(Timestamp::from_millis(1_795_695_065_001)),
            status: Some(status.into()),
            status_reason: None,
            kind: Some("ContainerRuntime".into()),
        }],
        timestamp: Some(NOW),
    }
}

#[test]
fn idle_metrics_are_written_as_the_go_agent_writes_them() {
    let requests = metrics_requests(MetricsCycle {
        instance_metrics: None,
        message_id: "00000000-0000-0000-0000-000000000001".into(),
        ..cycle(0)
    });
    assert_eq!(requests.len(), 1);
    assert_eq!(
        encode(&Outbound::PublishMetrics(requests[0].clone())),
        format!(
            r#"{{"type":"PublishMetricsRequest","message":{{"metadata":{{"cluster":"test","containerInstance":"{ARN}","fin":true,"idle":true,"messageId":"00000000-0000-0000-0000-000000000001"}},"timestamp":1795695065.26}}}}"#
        )
    );
}

#[test]
fn instance_status_members_come_in_go_order() {
    let frame = encode(&Outbound::PublishInstanceStatus(instance_status(
        "INITIALIZING",
    )));
    assert_eq!(
        frame,
        format!(
            r#"{{"type":"PublishInstanceStatusRequest","message":{{"metadata":{{"cluster":"test","containerInstance":"{ARN}","requestId":"r-1"}},"statuses":[{{"lastStatusChange":1795695045,"lastUpdated":1795695065.001,"status":"INITIALIZING","type":"ContainerRuntime"}}],"timestamp":1795695065.26}}}}"#
        )
    );
}

#[test]
fn stats_print_like_go() {
    let json = serde_json::to_string(&task_metric(0).container_metrics[0]).unwrap();
    assert!(
        json.contains(r#""cpuStatsSet":{"max":1.5,"min":0,"sampleCount":2,"sum":2}"#),
        "{json}"
    );
    assert!(json.contains(r#""memoryStatsSet":{}"#), "{json}");
    assert!(
        json.contains(r#""rxBytes":{"max":100,"min":0,"sampleCount":2,"sum":100}"#),
        "{json}"
    );
    assert!(
        json.contains(r#""rxBytesPerSecond":{"max":5,"min":0.25,"sampleCount":2,"sum":5.25}"#),
        "{json}"
    );
}

#[test]
fn timestamps_are_seconds_with_a_millisecond_fraction() {
    let text = |ms| serde_json::to_string(&Timestamp::from_millis(ms)).unwrap();
    assert_eq!(text(1_795_695_065_260), "1795695065.26");
    assert_eq!(text(1_795_695_065_000), "1795695065");
    assert_eq!(text(1_795_695_065_001), "1795695065.001");
    assert_eq!(text(1_795_695_065_999), "1795695065.999");
    let read = |s: &str| serde_json::from_str::<Timestamp>(s).unwrap().as_millis();
    assert_eq!(read("1795695065.26"), 1_795_695_065_260);
    assert_eq!(read("1795695065"), 1_795_695_065_000);
    assert_eq!(read("1795695065.0014"), 1_795_695_065_001);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_795_695_065_260_999);
    assert_eq!(
        Timestamp::from_system_time(t).as_millis(),
        1_795_695_065_260
    );
}

#[test]
fn required_stats_members_are_enforced() {
    let err = decode_outbound(
        r#"{"type":"PublishMetricsRequest","message":{"taskMetrics":[{"ephemeralStorageMetrics":{"bytesUtilized":{"max":1}}}]}}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("PublishMetricsRequest.taskMetrics: "),
        "{err}"
    );
}

#[test]
fn acks_heartbeats_and_exceptions_decode() {
    assert_eq!(
        decode(r#"{"type":"HeartbeatMessage","message":{"healthy":true}}"#),
        Ok(Inbound::Heartbeat(HeartbeatMessage {
            healthy: Some(true)
        }))
    );
    assert_eq!(
        decode(r#"{"ServerException":"try later"}"#),
        Ok(Inbound::Exception {
            kind: "ServerException".into(),
            message: "try later".into()
        })
    );
    assert!(matches!(
        decode(r#"{"type":"HeartbeatMessage","message":{"healthy":1}}"#),
        Err(DecodeError::Field { .. })
    ));
    assert!(matches!(decode("{"), Err(DecodeError::Json { .. })));
}

#[test]
fn an_idle_cycle_is_one_idle_final_request() {
    let requests = metrics_requests(cycle(0));
    assert_eq!(requests.len(), 1);
    let meta = metadata(&requests[0]);
    assert_eq!((meta.idle, meta.fin), (Some(true), Some(true)));
    assert!(requests[0].instance_metrics.is_some());
    assert!(requests[0].task_metrics.is_empty());
}

#[test]
fn tasks_are_sent_ten_per_request_with_fin_on_the_last() {
    for (tasks, sizes) in [
        (1, vec![1]),
        (10, vec![10]),
        (11, vec![10, 1]),
        (25, vec![10, 10, 5]),
    ] {
        let requests = metrics_requests(cycle(tasks));
        let got: Vec<usize> = requests.iter().map(|r| r.task_metrics.len()).collect();
        assert_eq!(got, sizes, "{tasks} tasks");
        let fins: Vec<_> = requests.iter().map(|r| metadata(r).fin).collect();
        let mut expected = vec![Some(false); sizes.len()];
        *expected.last_mut().unwrap() = Some(true);
        assert_eq!(fins, expected);
        assert!(requests.iter().all(|r| metadata(r).idle == Some(false)));
        assert!(requests
            .iter()
            .all(|r| metadata(r).message_id.as_deref() == Some("m-1")));
        assert!(requests[0].instance_metrics.is_some());
        assert!(requests[1..].iter().all(|r| r.instance_metrics.is_none()));
        let order: Vec<_> = requests
            .iter()
            .flat_map(|r| &r.task_metrics)
            .map(|t| t.task_arn.clone())
            .collect();
        let original: Vec<_> = (0..tasks).map(|i| task_metric(i).task_arn).collect();
        assert_eq!(order, original);
    }
}

fn padded_task(i: usize, bytes: usize) -> TaskMetric {
    TaskMetric {
        task_definition_family: Some("x".repeat(bytes)),
        ..task_metric(i)
    }
}

#[test]
fn no_request_exceeds_one_mebibyte() {
    let tasks: Vec<_> = (0..7).map(|i| padded_task(i, 300 * 1024)).collect();
    let requests = metrics_requests(MetricsCycle {
        task_metrics: tasks,
        ..cycle(0)
    });
    let sizes: Vec<usize> = requests
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap().len())
        .collect();
    assert!(sizes.iter().all(|&s| s <= MAX_REQUEST_BYTES), "{sizes:?}");
    let counts: Vec<usize> = requests.iter().map(|r| r.task_metrics.len()).collect();
    assert_eq!(counts, vec![3, 3, 1]);
}

#[test]
fn the_size_limit_is_exact() {
    // Find the padding at which two tasks just fit, then check one byte more splits them.
    let base = metrics_requests(MetricsCycle {
        task_metrics: vec![padded_task(0, 0), padded_task(1, 0)],
        ..cycle(0)
    });
    // The limit applies while batching, when `fin` is still false (as in the Go agent).
    let unfinished = |r: &PublishMetricsRequest| {
        let mut r = r.clone();
        r.metadata.as_mut().unwrap().fin = Some(false);
        serde_json::to_vec(&r).unwrap().len()
    };
    let spare = MAX_REQUEST_BYTES - unfinished(&base[0]);
    let fits = metrics_requests(MetricsCycle {
        task_metrics: vec![padded_task(0, spare / 2), padded_task(1, spare - spare / 2)],
        ..cycle(0)
    });
    assert_eq!(fits.len(), 1);
    assert_eq!(unfinished(&fits[0]), MAX_REQUEST_BYTES);
    let over = metrics_requests(MetricsCycle {
        task_metrics: vec![
            padded_task(0, spare / 2),
            padded_task(1, spare - spare / 2 + 1),
        ],
        ..cycle(0)
    });
    assert_eq!(over.len(), 2);
}

#[test]
fn an_oversized_task_is_split_by_its_service_connect_metrics() {
    let wrapper = |i: usize| GeneralMetricsWrapper {
        dimensions: vec![Dimension {
            key: Some("ClusterName".into()),
            value: Some(format!("{i}{}", "d".repeat(200 * 1024))),
        }],
        metric_type: Some("1".into()),
        ..Default::default()
    };
    let big = TaskMetric {
        service_connect_metrics_wrapper: (0..12).map(wrapper).collect(),
        ..task_metric(0)
    };
    let requests = metrics_requests(MetricsCycle {
        task_metrics: vec![big, task_metric(1)],
        ..cycle(0)
    });
    assert!(requests.len() >= 3, "{}", requests.len());
    for r in &requests {
        assert!(serde_json::to_vec(r).unwrap().len() <= MAX_REQUEST_BYTES);
    }
    let parts: Vec<&TaskMetric> = requests
        .iter()
        .flat_map(|r| &r.task_metrics)
        .filter(|t| t.task_arn == task_metric(0).task_arn)
        .collect();
    let wrappers: usize = parts
        .iter()
        .map(|t| t.service_connect_metrics_wrapper.len())
        .sum();
    assert_eq!(wrappers, 12);
    assert_eq!(parts[0].container_metrics.len(), 1);
    assert!(parts[1..].iter().all(|t| t.container_metrics.is_empty()));
    assert_eq!(metadata(requests.last().unwrap()).fin, Some(true));
}

#[test]
fn health_is_sent_ten_tasks_per_request_and_not_at_all_without_tasks() {
    let health = |n: usize| {
        health_requests(HealthCycle {
            cluster: "test".into(),
            container_instance: ARN.into(),
            message_id: "h".into(),
            timestamp: NOW,
            tasks: (0..n)
                .map(|i| TaskHealth {
                    task_arn: Some(i.to_string()),
                    ..Default::default()
                })
                .collect(),
        })
    };
    assert!(health(0).is_empty());
    let requests = health(21);
    let counts: Vec<_> = requests.iter().map(|r| r.tasks.len()).collect();
    assert_eq!(counts, vec![10, 10, 1]);
    let fins: Vec<_> = requests
        .iter()
        .map(|r| r.metadata.as_ref().unwrap().fin)
        .collect();
    assert_eq!(fins, vec![Some(false), Some(false), Some(true)]);
    assert_eq!(health(10)[0].metadata.as_ref().unwrap().fin, Some(true));
}

proptest! {
    #[test]
    fn decode_never_panics_on_arbitrary_text(frame in ".*") {
        let _ = decode(&frame);
        let _ = decode_outbound(&frame);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_envelopes(
        kind in prop::sample::select(vec![
            "HeartbeatMessage", "AckPublishMetric", "AckPublishHealth", "AckPublishInstanceStatus",
            "StopTelemetrySessionMessage", "ServerException", "PublishMetricsRequest",
            "PublishHealthRequest", "PublishInstanceStatusRequest", "Whatever",
        ]),
        message in crate::control::acs::tests::arbitrary_json(),
    ) {
        let frame = json!({"type": kind, "message": message}).to_string();
        let _ = decode(&frame);
        let _ = decode_outbound(&frame);
    }

    #[test]
    fn batching_keeps_every_task_once_and_marks_only_the_last_final(
        tasks in 0usize..40,
        with_instance in any::<bool>(),
    ) {
        let mut c = cycle(tasks);
        if !with_instance {
            c.instance_metrics = None;
        }
        let requests = metrics_requests(c);
        prop_assert!(!requests.is_empty());
        let sent: usize = requests.iter().map(|r| r.task_metrics.len()).sum();
        prop_assert_eq!(sent, tasks);
        prop_assert!(requests.iter().all(|r| r.task_metrics.len() <= MAX_TASKS_PER_REQUEST));
        let fins = requests.iter().filter(|r| metadata(r).fin == Some(true)).count();
        prop_assert_eq!(fins, 1);
        prop_assert_eq!(metadata(requests.last().unwrap()).fin, Some(true));
        prop_assert_eq!(requests[0].instance_metrics.is_some(), with_instance);
        prop_assert!(requests[1..].iter().all(|r| r.instance_metrics.is_none()));
    }
}
