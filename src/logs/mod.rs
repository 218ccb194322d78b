//! Shipping containers' `awslogs` logs to CloudWatch Logs from the agent itself. A container
//! whose task asks for `awslogs` gets Docker's local rotating `json-file` driver instead, so
//! writing a line never waits on the network; the agent follows Docker's log files (or the
//! Docker API) and ships them with `PutLogEvents`, saving a checkpoint after each accepted
//! batch, so neither an agent restart nor a CloudWatch outage loses or repeats lines. `ECS_AWSLOGS_DOCKER_DRIVER`
//! keeps Docker's own awslogs driver (the official agent's behaviour) instead.
//!
//! `options`, `batch` and `multiline` are pure (option parsing, stream naming, CloudWatch's
//! batch limits, event grouping); `cloudwatch`, `checkpoint` and `shipper` do the I/O.

pub mod batch;
pub mod checkpoint;
pub mod cloudwatch;
pub mod jsonfile;
pub mod multiline;
pub mod options;
pub mod shipper;
