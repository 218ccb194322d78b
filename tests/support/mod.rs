//! Shared test support: the stand-ins' addresses and clients (`env`, `aws`),
//! the IMDSv2 stub (`imds`) and a loopback-only HTTP client (`http`).
//!
//! Declared with `mod support;` in each integration test; each test binary
//! uses a different part, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod agent;
pub mod aws;
pub mod cwl_sink;
pub mod ecs_sim;
pub mod env;
pub mod http;
pub mod imds;
