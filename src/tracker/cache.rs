//! The latest answer CodeBuild gave about each tracked build, shared between the tracker
//! (which writes it) and reconcile (which reads it, and records a StopBuild answer).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::api::BuildInfo;

/// What the tracker last learnt about a build.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// The build as CodeBuild last reported it.
    Build(Arc<BuildInfo>),
    /// CodeBuild listed the id in `buildsNotFound`.
    NotFound,
    /// The id is not one CodeBuild can look up (not of the service's form, or refused as
    /// invalid input): it is set aside so it cannot fail the calls of other builds.
    Invalid(String),
}

impl Observation {
    /// Whether the build can still change: it exists and is not final.
    pub fn is_live(&self) -> bool {
        match self {
            Observation::Build(info) => !info.is_final(),
            Observation::NotFound | Observation::Invalid(_) => false,
        }
    }
}

/// Build id -> latest observation. Cheap to clone (a shared handle).
#[derive(Clone, Debug, Default)]
pub struct BuildCache(Arc<Mutex<HashMap<String, Observation>>>);

impl BuildCache {
    /// The latest observation of `build_id`, if the build is tracked.
    pub fn get(&self, build_id: &str) -> Option<Observation> {
        self.lock().get(build_id).cloned()
    }

    /// Records an answer about a build obtained outside a tracker round (StopBuild's), so
    /// the next reconcile does not act on an older one. Kept only while the build is
    /// tracked.
    pub fn record(&self, info: &BuildInfo) {
        if let Some(id) = &info.build_id {
            self.lock()
                .insert(id.clone(), Observation::Build(Arc::new(info.clone())));
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, Observation>> {
        // Every update is a single insert, remove or retain: a panic while holding the lock
        // cannot leave the map half-updated in a way that matters.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
