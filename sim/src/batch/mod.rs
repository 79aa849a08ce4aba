//! Batch builds: StartBuildBatch and the operations on batches. A batch reads its batchspec
//! (the `batch` section of its inline buildspec), runs one real simulated build per entry —
//! visible through BatchGetBuilds with `buildBatchArn` — in dependency order, and ends as
//! CodeBuild ends it. Like builds, a batch is moved along the clock when it is read.
//!
//! - [`spec`] and [`matrix`] read the batchspec;
//! - [`request`] checks a StartBuildBatch request and derives its builds' requests;
//! - [`restrictions`] applies `buildBatchConfig.restrictions`;
//! - `record` holds a batch and shows it as a BuildBatch, `schedule` moves it along;
//! - [`ops`] is the operations and the SimState accessors.

pub mod matrix;
pub mod ops;
pub(crate) mod record;
pub mod request;
pub mod restrictions;
pub(crate) mod schedule;
pub mod spec;
