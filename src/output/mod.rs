//! What a build produced, brought into Kubernetes: the failure tail of its log and its test
//! and coverage reports.
//!
//! - [`tail`]: whether and where to read the log of a build that failed, and the bounded,
//!   colourless tail that goes into `status.logTail` (pure);
//! - [`ansi`]: terminal colour codes and other control characters out of log lines (pure);
//! - [`reports`]: which report ARNs still need reading, and `status.reports` from the
//!   answers (pure);
//! - [`reader`]: the report reader, one loop beside the tracker that batches BatchGetReports
//!   for every finished build that needs it (I/O).
//!
//! The failure tail is read by reconcile itself (`controller::reconcile`), once, in the
//! reconcile that writes the build's final status: one GetLogEvents call per failed build.

pub mod ansi;
pub mod reader;
pub mod reports;
pub mod tail;

pub use reader::{ReportCache, ReportReader};
pub use reports::{ReportAnswer, mirror_reports, reports_to_read};
pub use tail::{TailLimits, TailStep, message_line, tail_from_error, tail_from_events, tail_step};
