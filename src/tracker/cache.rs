//! The latest answer CodeBuild gave about each tracked build (or batch), shared between the
//! tracker (which writes it) and reconcile (which reads it, and records a StopBuild or
//! StopBuildBatch answer). One cache per kind: [`BuildCache`] and [`BatchCache`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::api::{BuildBatchInfo, BuildInfo, Started};

/// What the tracker last learnt about a build (or, in a [`BatchCache`], a batch).
#[derive(Clone, Debug, PartialEq)]
pub enum Observation<T = BuildInfo> {
    /// The build (or batch) as CodeBuild last reported it.
    Build(Arc<T>),
    /// CodeBuild listed the id in `buildsNotFound` (`buildBatchesNotFound`).
    NotFound,
    /// The id is not one CodeBuild can look up (not of the service's form, or refused as
    /// invalid input): it is set aside so it cannot fail the calls of other builds.
    Invalid(String),
}

impl<T: Started> Observation<T> {
    /// Whether the build can still change: it exists and is not final.
    pub fn is_live(&self) -> bool {
        match self {
            Observation::Build(info) => !info.done(),
            Observation::NotFound | Observation::Invalid(_) => false,
        }
    }
}

/// Id -> latest observation. Cheap to clone (a shared handle).
#[derive(Clone, Debug)]
pub struct ObservationCache<T = BuildInfo>(Arc<Mutex<HashMap<String, Observation<T>>>>);

/// The latest observation of every tracked build.
pub type BuildCache = ObservationCache<BuildInfo>;

/// The latest observation of every tracked batch.
pub type BatchCache = ObservationCache<BuildBatchInfo>;

impl<T> Default for ObservationCache<T> {
    fn default() -> Self {
        ObservationCache(Arc::default())
    }
}

impl<T: Started> ObservationCache<T> {
    /// The latest observation of `id`, if it is tracked.
    pub fn get(&self, id: &str) -> Option<Observation<T>> {
        self.lock().get(id).cloned()
    }

    /// Records an answer obtained outside a tracker round (StopBuild's, StopBuildBatch's,
    /// RetryBuildBatch's), so the next reconcile does not act on an older one. Kept only
    /// while the build (or batch) is tracked.
    pub fn record(&self, info: &T) {
        if let Some(id) = info.started_id() {
            self.lock()
                .insert(id.to_owned(), Observation::Build(Arc::new(info.clone())));
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, Observation<T>>> {
        // Every update is a single insert, remove or retain: a panic while holding the lock
        // cannot leave the map half-updated in a way that matters.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
