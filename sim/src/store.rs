//! The simulator's state and the CodeBuild operations over it. Build state is derived from
//! the clock whenever it is read; nothing runs in the background.

use crate::batch::ops::BatchStartRecord;
use crate::batch::record::BatchRecord;
use crate::build_output::{LogEvent, LogStreamInfo};
use crate::build_record::{BuildRecord, NewBuild, RetryState};
use crate::config::SimConfig;
use crate::faults::{self, Action, Faults};
use crate::idempotency::{self, Decision, TokenEntry};
use crate::lifecycle;
use crate::logs::api::{self as logs_api, LogGroups};
use crate::logs::filter::StreamEvents;
use crate::overrides::{self, Place};
use crate::pagination::{self, SortOrder};
use crate::protocol::{ApiError, ErrorKind, Service};
use crate::ratelimit::{Limiter, RateLimits};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Per-operation call counters and fault counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Calls received per operation name (including calls answered by injected faults).
    pub calls: BTreeMap<String, u64>,
    pub total_calls: u64,
    /// Build ids requested through BatchGetBuilds calls that were processed.
    pub batch_get_builds_ids: u64,
    /// Batch ids requested through BatchGetBuildBatches calls that were processed.
    pub batch_get_build_batches_ids: u64,
    /// Calls answered with ThrottlingException, by an injected fault or a rate limit.
    pub throttled: u64,
    /// [`Counters::throttled`] per operation.
    pub throttled_by_operation: BTreeMap<String, u64>,
    /// Calls refused by the operation's rate limit (see [`crate::RateLimits`]), per operation.
    pub rate_limited: BTreeMap<String, u64>,
    pub server_errors: u64,
    pub dropped: u64,
    pub account_limit_exceeded: u64,
    /// Events returned by GetLogEvents and FilterLogEvents calls that were processed.
    pub log_events_returned: u64,
    /// Report ARNs requested through BatchGetReports calls that were processed.
    pub batch_get_reports_arns: u64,
}

/// One StartBuild request as received.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRecord {
    /// Sim clock, epoch seconds.
    pub time: f64,
    pub project_name: Option<String>,
    pub idempotency_token: Option<String>,
    pub access_key_id: Option<String>,
    /// The full request JSON.
    pub request: Value,
    /// The build returned, if any.
    pub build_id: Option<String>,
    /// True when an idempotency token returned an existing build.
    pub replayed: bool,
    /// The error `__type` when the call failed.
    pub error: Option<String>,
}

/// Everything behind the state's lock.
pub(crate) struct Inner {
    pub(crate) projects: BTreeMap<String, Value>,
    pub(crate) builds: Vec<BuildRecord>,
    pub(crate) by_id: HashMap<String, usize>,
    pub(crate) build_numbers: HashMap<String, i64>,
    pub(crate) tokens: HashMap<String, TokenEntry>,
    pub(crate) starts: Vec<StartRecord>,
    pub(crate) counters: Counters,
    pub(crate) faults: Faults,
    pub(crate) limiter: Limiter,
    /// Origin of the monotonic clock the rate limits run on.
    pub(crate) origin: Instant,
    pub(crate) rng: StdRng,
    pub(crate) clock_offset: f64,
    /// Log group -> stream -> build index, for the logs operations.
    pub(crate) streams: HashMap<String, BTreeMap<String, usize>>,
    /// Report ARN -> (build index, report index).
    pub(crate) reports: HashMap<String, (usize, usize)>,
    pub(crate) batches: Vec<BatchRecord>,
    pub(crate) batch_by_id: HashMap<String, usize>,
    pub(crate) batch_numbers: HashMap<String, i64>,
    /// StartBuildBatch idempotency tokens (the entry's `build_id` is the batch id).
    pub(crate) batch_tokens: HashMap<String, TokenEntry>,
    /// RetryBuildBatch idempotency tokens.
    pub(crate) retry_tokens: HashMap<String, TokenEntry>,
    pub(crate) batch_starts: Vec<BatchStartRecord>,
    pub(crate) batch_retries: Vec<BatchStartRecord>,
}

/// Shared simulator state; cheap to clone.
#[derive(Clone)]
pub struct SimState {
    pub(crate) inner: Arc<Mutex<Inner>>,
    pub(crate) config: Arc<SimConfig>,
}

/// A build id is well formed when it is `<project>:<something>` (moto's rule).
pub fn well_formed_build_id(id: &str) -> bool {
    id.split_once(':')
        .is_some_and(|(p, u)| !p.is_empty() && !u.is_empty())
}

pub(crate) fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub(crate) fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

pub(crate) fn ids_list(req: &Value, member: &str, max: usize) -> Result<Vec<String>, ApiError> {
    let list = match req.get(member) {
        None | Some(Value::Null) => return Err(ApiError::null_member(member)),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(ApiError::new(
                ErrorKind::Serialization,
                format!("{member} must be a list"),
            ));
        }
    };
    let ids: Vec<String> = list
        .iter()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .collect();
    let shown = format!("[{}]", ids.join(", "));
    if ids.is_empty() {
        return Err(ApiError::constraint(
            &shown,
            member,
            "Member must have length greater than or equal to 1",
        ));
    }
    if ids.len() > max {
        return Err(ApiError::constraint(
            &shown,
            member,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(ids)
}

impl SimState {
    /// Creates the state and the configured projects.
    pub fn new(config: SimConfig) -> SimState {
        let seed = config.seed.unwrap_or_else(rand::random);
        let state = SimState {
            inner: Arc::new(Mutex::new(Inner {
                projects: BTreeMap::new(),
                builds: Vec::new(),
                by_id: HashMap::new(),
                build_numbers: HashMap::new(),
                tokens: HashMap::new(),
                starts: Vec::new(),
                counters: Counters::default(),
                faults: Faults::default(),
                limiter: Limiter::new(config.rate_limits.clone()),
                origin: Instant::now(),
                rng: StdRng::seed_from_u64(seed),
                clock_offset: 0.0,
                streams: HashMap::new(),
                reports: HashMap::new(),
                batches: Vec::new(),
                batch_by_id: HashMap::new(),
                batch_numbers: HashMap::new(),
                batch_tokens: HashMap::new(),
                retry_tokens: HashMap::new(),
                batch_starts: Vec::new(),
                batch_retries: Vec::new(),
            })),
            config: Arc::new(config),
        };
        state.set_faults(state.config.faults.clone());
        for name in state.config.projects.clone() {
            if let Err(e) = state.create_project(&name) {
                tracing::warn!(project = %name, error = %e, "could not create configured project");
            }
        }
        state
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent-enough test state; keep serving.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn place(&self) -> Place<'_> {
        Place {
            region: &self.config.region,
            account: &self.config.account_id,
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The simulator clock (wall clock plus any [`SimState::advance_clock`]), epoch seconds.
    pub fn now(&self) -> f64 {
        wall_clock() + self.lock().clock_offset
    }

    /// Moves the simulator clock forward by `seconds` (real seconds, not time-scaled).
    pub fn advance_clock(&self, seconds: f64) -> f64 {
        let mut g = self.lock();
        g.clock_offset += seconds.max(0.0);
        wall_clock() + g.clock_offset
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Replaces the fault settings (and reseeds the generator if `faults.seed` is set).
    pub fn set_faults(&self, faults: Faults) {
        let mut g = self.lock();
        if let Some(seed) = faults.seed {
            g.rng = StdRng::seed_from_u64(seed);
        }
        g.faults = faults;
    }

    /// Every build (creation order), rendered at the current sim time.
    pub fn builds(&self) -> Vec<Value> {
        let mut g = self.lock();
        let now = wall_clock() + g.clock_offset;
        g.settle(&self.config, now);
        g.builds.iter().map(|b| b.render(now)).collect()
    }

    /// One build rendered at the current sim time.
    pub fn build(&self, id: &str) -> Option<Value> {
        let mut g = self.lock();
        let now = wall_clock() + g.clock_offset;
        g.settle(&self.config, now);
        let idx = *g.by_id.get(id)?;
        Some(g.builds[idx].render(now))
    }

    /// The StartBuild log, oldest first.
    pub fn starts(&self) -> Vec<StartRecord> {
        self.lock().starts.clone()
    }

    /// Projects (as BatchGetProjects shows them), by name.
    pub fn projects(&self) -> Vec<Value> {
        self.lock().projects.values().cloned().collect()
    }

    /// Creates (or replaces) a project with working defaults.
    pub fn create_project(&self, name: &str) -> Result<Value, ApiError> {
        self.create_project_with(name, &json!({}))
    }

    /// Creates (or replaces) a project; members of `extra` (CreateProject members) replace
    /// the defaults.
    pub fn create_project_with(&self, name: &str, extra: &Value) -> Result<Value, ApiError> {
        let input = overrides::quick_project_input(name, &self.config.account_id, Some(extra));
        let now = self.now();
        let project = overrides::new_project(&input, &self.place(), now)?;
        self.lock()
            .projects
            .insert(name.to_string(), project.clone());
        Ok(project)
    }

    /// The rate limits in force.
    pub fn rate_limits(&self) -> RateLimits {
        self.lock().limiter.limits().clone()
    }

    /// Replaces the rate limits (every bucket starts full).
    pub fn set_rate_limits(&self, limits: RateLimits) {
        self.lock().limiter.set(limits);
    }

    /// Forgets builds, tokens, the StartBuild log, counters and faults, and restores the
    /// configured rate limits; keeps projects.
    pub fn reset(&self) {
        let mut g = self.lock();
        g.builds.clear();
        g.by_id.clear();
        g.build_numbers.clear();
        g.tokens.clear();
        g.starts.clear();
        g.counters = Counters::default();
        g.faults = Faults::default();
        g.limiter.set(self.config.rate_limits.clone());
        g.streams.clear();
        g.reports.clear();
        g.batches.clear();
        g.batch_by_id.clear();
        g.batch_numbers.clear();
        g.batch_tokens.clear();
        g.retry_tokens.clear();
        g.batch_starts.clear();
        g.batch_retries.clear();
    }

    /// [`SimState::reset`] and also deletes every project.
    pub fn reset_all(&self) {
        self.reset();
        self.lock().projects.clear();
    }

    /// How long to hold the answer of `operation` of `service` after processing it (see
    /// [`Faults::response_latency_ms`]).
    pub fn response_latency(&self, service: Service, operation: &str) -> Duration {
        let g = self.lock();
        if g.faults.applies_to(service, operation) {
            Duration::from_millis(g.faults.response_latency_ms)
        } else {
            Duration::ZERO
        }
    }

    /// Counts a call and decides its injected fault (used by the HTTP layer).
    pub fn begin_call(&self, service: Service, operation: &str) -> (Duration, Action) {
        let mut g = self.lock();
        g.count_call(operation);
        if !g.admit(operation) {
            return (Duration::ZERO, Action::Throttle);
        }
        let faults = g.faults.clone();
        let decision = faults::decide(&faults, service, operation, &mut g.rng);
        match decision.1 {
            Action::Drop => g.counters.dropped += 1,
            Action::ServerError(_) => g.counters.server_errors += 1,
            Action::Throttle => g.count_throttled(operation),
            Action::Proceed => {}
        }
        decision
    }

    /// Runs one CodeBuild operation in-process (counted and rate limited, no fault
    /// injection).
    pub fn call(
        &self,
        operation: &str,
        request: &Value,
        access_key_id: Option<&str>,
    ) -> Result<Value, ApiError> {
        self.begin_in_process(operation)?;
        self.dispatch(operation, request, access_key_id)
    }

    /// Counts an in-process call and applies the operation's rate limit.
    fn begin_in_process(&self, operation: &str) -> Result<(), ApiError> {
        let mut g = self.lock();
        g.count_call(operation);
        if g.admit(operation) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorKind::Throttling, "Rate exceeded"))
        }
    }

    /// Runs one CodeBuild operation (not counted; the caller counts).
    pub fn dispatch(
        &self,
        operation: &str,
        request: &Value,
        access_key_id: Option<&str>,
    ) -> Result<Value, ApiError> {
        if !request.is_object() {
            return Err(ApiError::new(
                ErrorKind::Serialization,
                "Request body must be a JSON object",
            ));
        }
        let mut g = self.lock();
        let now = wall_clock() + g.clock_offset;
        g.settle(&self.config, now);
        let place = self.place();
        match operation {
            "CreateProject" => g.create_project(request, &place, now),
            "DeleteProject" => g.delete_project(request, &place),
            "BatchGetProjects" => g.batch_get_projects(request, &place),
            "StartBuild" => {
                let result = g.start_build(&self.config, request, access_key_id, now);
                let (build_id, replayed, error) = match &result {
                    Ok((b, replayed)) => (str_field(b, "id"), *replayed, None),
                    Err(e) => (None, false, Some(e.kind.type_name().to_string())),
                };
                g.starts.push(StartRecord {
                    time: lifecycle::ts(now),
                    project_name: str_field(request, "projectName"),
                    idempotency_token: str_field(request, "idempotencyToken"),
                    access_key_id: access_key_id.map(str::to_string),
                    request: request.clone(),
                    build_id,
                    replayed,
                    error,
                });
                result.map(|(b, _)| json!({ "build": b }))
            }
            "BatchGetBuilds" => g.batch_get_builds(request, now),
            "StopBuild" => g.stop_build(request, now),
            "ListBuildsForProject" => g.list_builds_for_project(request, &place),
            "BatchGetReports" => g.batch_get_reports(request, now),
            "StartBuildBatch" | "RetryBuildBatch" => {
                g.batch_call(&self.config, operation, request, access_key_id, now)
            }
            "BatchGetBuildBatches" => g.batch_get_build_batches(&self.config, request, now),
            "StopBuildBatch" => g.stop_build_batch(&self.config, request, now),
            "ListBuildBatchesForProject" => g.list_build_batches(&self.config, request, true),
            "ListBuildBatches" => g.list_build_batches(&self.config, request, false),
            other => Err(ApiError::new(
                ErrorKind::UnknownOperation,
                format!("Unknown operation {other}"),
            )),
        }
    }

    /// Runs one CloudWatch Logs operation in-process (counted and rate limited, no fault
    /// injection).
    pub fn call_logs(&self, operation: &str, request: &Value) -> Result<Value, ApiError> {
        self.begin_in_process(operation)?;
        self.dispatch_logs(operation, request)
    }

    /// Runs one CloudWatch Logs operation (not counted; the caller counts).
    pub fn dispatch_logs(&self, operation: &str, request: &Value) -> Result<Value, ApiError> {
        if !request.is_object() {
            return Err(ApiError::new(
                ErrorKind::Serialization,
                "Request body must be a JSON object",
            ));
        }
        let mut g = self.lock();
        let now = wall_clock() + g.clock_offset;
        g.settle(&self.config, now);
        let groups = GroupsAt { inner: &g, now };
        let (out, events) = match operation {
            "GetLogEvents" => logs_api::get_log_events(&groups, request)?,
            "FilterLogEvents" => logs_api::filter_log_events(&groups, request)?,
            other => {
                return Err(ApiError::new(
                    ErrorKind::UnknownOperation,
                    format!("Unknown operation {other}"),
                ));
            }
        };
        g.counters.log_events_returned += events as u64;
        Ok(out)
    }

    /// The events of a build's log stream readable now, in stream order, with their times.
    /// Empty until the stream exists; None for an unknown build or one without CloudWatch
    /// logs.
    pub fn log_events(&self, build_id: &str) -> Option<Vec<LogEvent>> {
        let mut g = self.lock();
        let now = wall_clock() + g.clock_offset;
        g.settle(&self.config, now);
        let b = &g.builds[*g.by_id.get(build_id)?];
        b.output.stream.as_ref()?;
        let Some(s) = b.stream_at(now) else {
            return Some(Vec::new());
        };
        let events = (0..s.readable)
            .map(|i| LogEvent {
                index: i,
                timestamp: s.script.timestamp(i),
                ingestion_time: s.script.ingestion(i),
                message: s.script.message(i),
            })
            .collect();
        Some(events)
    }

    /// Where a build logs and how far its stream has got; None for an unknown build or one
    /// without CloudWatch logs.
    pub fn log_stream(&self, build_id: &str) -> Option<LogStreamInfo> {
        let mut g = self.lock();
        let now = wall_clock() + g.clock_offset;
        g.settle(&self.config, now);
        let b = &g.builds[*g.by_id.get(build_id)?];
        LogStreamInfo::of(
            &b.output,
            &b.timeline,
            now,
            b.stopped_at,
            b.is_complete(now),
        )
    }

    /// A build's reports as BatchGetReports shows them now (those that exist yet); None for
    /// an unknown build.
    pub fn reports_of(&self, build_id: &str) -> Option<Vec<Value>> {
        let mut g = self.lock();
        let now = wall_clock() + g.clock_offset;
        g.settle(&self.config, now);
        let b = &g.builds[*g.by_id.get(build_id)?];
        let ended = b.ended_at(now);
        Some(
            b.output
                .reports
                .iter()
                .filter(|r| r.exists(now, b.stopped_at))
                .map(|r| r.render(now, ended))
                .collect(),
        )
    }
}

/// The log groups of the simulator's builds at one instant.
struct GroupsAt<'a> {
    inner: &'a Inner,
    now: f64,
}

impl LogGroups for GroupsAt<'_> {
    fn streams(&self, group: &str) -> Option<Vec<StreamEvents<'_>>> {
        let by_name = self.inner.streams.get(group)?;
        let streams: Vec<StreamEvents> = by_name
            .values()
            .filter_map(|&i| self.inner.builds[i].stream_at(self.now))
            .collect();
        (!streams.is_empty()).then_some(streams)
    }

    fn stream(&self, group: &str, stream: &str) -> Result<StreamEvents<'_>, ApiError> {
        let by_name = self.inner.streams.get(group);
        let found = by_name
            .and_then(|m| m.get(stream))
            .and_then(|&i| self.inner.builds[i].stream_at(self.now));
        if let Some(s) = found {
            return Ok(s);
        }
        let group_exists = by_name.is_some_and(|m| {
            m.values()
                .any(|&i| self.inner.builds[i].stream_at(self.now).is_some())
        });
        Err(ApiError::not_found(if group_exists {
            logs_api::STREAM_NOT_FOUND
        } else {
            logs_api::GROUP_NOT_FOUND
        }))
    }
}

impl Inner {
    pub(crate) fn count_call(&mut self, operation: &str) {
        *self
            .counters
            .calls
            .entry(operation.to_string())
            .or_default() += 1;
        self.counters.total_calls += 1;
    }

    fn count_throttled(&mut self, operation: &str) {
        self.counters.throttled += 1;
        *self
            .counters
            .throttled_by_operation
            .entry(operation.to_string())
            .or_default() += 1;
    }

    /// Takes a token from the operation's rate limit bucket; counts a refusal.
    fn admit(&mut self, operation: &str) -> bool {
        let now = self.origin.elapsed().as_secs_f64();
        if self.limiter.admit(operation, now) {
            return true;
        }
        self.count_throttled(operation);
        *self
            .counters
            .rate_limited
            .entry(operation.to_string())
            .or_default() += 1;
        false
    }

    /// Materialises what has happened by `now`: auto-retries, then what batches did.
    pub(crate) fn settle(&mut self, config: &SimConfig, now: f64) {
        self.settle_retries(config, now);
        self.settle_batches(config, now);
    }

    pub(crate) fn resolve_project(&self, name_or_arn: &str, place: &Place) -> Option<String> {
        let name = place.project_name(name_or_arn)?;
        self.projects.contains_key(name).then(|| name.to_string())
    }

    pub(crate) fn project_arn_for(name_or_arn: &str, place: &Place) -> String {
        if name_or_arn.starts_with("arn:") {
            name_or_arn.to_string()
        } else {
            place.project_arn(name_or_arn)
        }
    }

    fn start_build(
        &mut self,
        config: &SimConfig,
        req: &Value,
        access_key_id: Option<&str>,
        now: f64,
    ) -> Result<(Value, bool), ApiError> {
        overrides::check_start_request(req)?;
        let place = Place {
            region: &config.region,
            account: &config.account_id,
        };
        let given = req["projectName"].as_str().unwrap_or_default();
        let Some(project) = self.resolve_project(given, &place) else {
            return Err(ApiError::not_found(format!(
                "Project cannot be found: {}",
                Self::project_arn_for(given, &place)
            )));
        };
        let token = str_field(req, "idempotencyToken");
        if let Some(token) = &token {
            let window = config.token_window_seconds * config.time_scale.max(0.0);
            match idempotency::decide(self.tokens.get(token), req, now, window) {
                Decision::Replay(id) => {
                    if let Some(&idx) = self.by_id.get(&id) {
                        return Ok((self.builds[idx].render(now), true));
                    }
                }
                Decision::Mismatch => {
                    return Err(ApiError::invalid(idempotency::mismatch_message(token)));
                }
                Decision::Start => {}
            }
        }
        if let Some(max) = self.faults.max_concurrent_builds {
            let active = self.builds.iter().filter(|b| b.active_at(now)).count();
            if active >= max as usize {
                self.counters.account_limit_exceeded += 1;
                return Err(ApiError::new(
                    ErrorKind::AccountLimitExceeded,
                    format!("Cannot have more than {max} active builds for the account"),
                ));
            }
        }
        let project_json = self.projects.get(&project).cloned().unwrap_or_default();
        let limit = req
            .get("autoRetryLimitOverride")
            .and_then(Value::as_u64)
            .or_else(|| project_json.get("autoRetryLimit").and_then(Value::as_u64))
            .unwrap_or(0);
        let retry = (limit > 0).then(|| RetryState {
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            number: 0,
            previous: None,
            next: None,
        });
        let new = NewBuild {
            project: &project,
            project_json: &project_json,
            request: req,
            start: now,
            retry,
            access_key_id: access_key_id.map(str::to_string),
            batch: None,
        };
        let idx = self.create_build(config, new)?;
        if let Some(token) = token {
            self.tokens.insert(
                token,
                TokenEntry {
                    build_id: self.builds[idx].id.clone(),
                    request: req.clone(),
                    first_used: now,
                },
            );
        }
        Ok((self.builds[idx].render(now), false))
    }

    fn batch_get_builds(&mut self, req: &Value, now: f64) -> Result<Value, ApiError> {
        let ids = ids_list(req, "ids", 100)?;
        if ids.iter().any(|id| !well_formed_build_id(id)) {
            return Err(ApiError::invalid("Invalid build ID provided"));
        }
        self.counters.batch_get_builds_ids += ids.len() as u64;
        let mut builds = Vec::new();
        let mut not_found = Vec::new();
        for id in ids {
            match self.by_id.get(&id) {
                Some(&idx) => builds.push(self.builds[idx].render(now)),
                None => not_found.push(id),
            }
        }
        let mut out = json!({ "builds": builds });
        if !not_found.is_empty() {
            out["buildsNotFound"] = json!(not_found);
        }
        Ok(out)
    }

    fn stop_build(&mut self, req: &Value, now: f64) -> Result<Value, ApiError> {
        let id = match req.get("id") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(ApiError::null_member("id")),
        };
        if !well_formed_build_id(&id) {
            return Err(ApiError::invalid("Invalid build ID provided"));
        }
        let Some(&idx) = self.by_id.get(&id) else {
            return Err(ApiError::not_found(format!("Build {id} does not exist")));
        };
        let b = &mut self.builds[idx];
        if !b.is_complete(now) {
            b.stopped_at = Some(now);
        }
        Ok(json!({ "build": b.render(now) }))
    }

    fn batch_get_reports(&mut self, req: &Value, now: f64) -> Result<Value, ApiError> {
        let arns = ids_list(req, "reportArns", 100)?;
        if arns.iter().any(String::is_empty) {
            return Err(ApiError::constraint(
                "",
                "reportArns.member",
                "Member must have length greater than or equal to 1",
            ));
        }
        self.counters.batch_get_reports_arns += arns.len() as u64;
        let mut reports = Vec::new();
        let mut not_found = Vec::new();
        for arn in arns {
            let found = self.reports.get(&arn).and_then(|&(b, r)| {
                let build = &self.builds[b];
                let report = &build.output.reports[r];
                report
                    .exists(now, build.stopped_at)
                    .then(|| report.render(now, build.ended_at(now)))
            });
            match found {
                Some(r) => reports.push(r),
                None => not_found.push(arn),
            }
        }
        // Both lists have a minimum length of 1 in the model: empty ones are left out.
        let mut out = json!({});
        if !reports.is_empty() {
            out["reports"] = json!(reports);
        }
        if !not_found.is_empty() {
            out["reportsNotFound"] = json!(not_found);
        }
        Ok(out)
    }

    fn list_builds_for_project(&mut self, req: &Value, place: &Place) -> Result<Value, ApiError> {
        let given = match req.get("projectName") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(ApiError::null_member("projectName")),
        };
        let sort = req.get("sortOrder").and_then(Value::as_str);
        let order = SortOrder::parse(sort).ok_or_else(|| {
            ApiError::constraint(
                sort.unwrap_or_default(),
                "sortOrder",
                "Member must satisfy enum value set: [ASCENDING, DESCENDING]",
            )
        })?;
        let Some(project) = self.resolve_project(&given, place) else {
            return Err(ApiError::not_found(format!(
                "The provided project {} does not exist",
                Self::project_arn_for(&given, place)
            )));
        };
        let ids: Vec<String> = self
            .builds
            .iter()
            .filter(|b| b.project == project)
            .map(|b| b.id.clone())
            .collect();
        let token = req.get("nextToken").and_then(Value::as_str);
        let (page, next) = pagination::page(&ids, order, token, pagination::PAGE_SIZE)
            .ok_or_else(|| ApiError::invalid("Invalid nextToken"))?;
        let mut out = json!({ "ids": page });
        if let Some(n) = next {
            out["nextToken"] = json!(n);
        }
        Ok(out)
    }

    fn create_project(&mut self, req: &Value, place: &Place, now: f64) -> Result<Value, ApiError> {
        let project = overrides::new_project(req, place, now)?;
        let name = req["name"].as_str().unwrap_or_default().to_string();
        if self.projects.contains_key(&name) {
            return Err(ApiError::new(
                ErrorKind::ResourceAlreadyExists,
                format!("Project already exists: {}", place.project_arn(&name)),
            ));
        }
        self.projects.insert(name, project.clone());
        Ok(json!({ "project": project }))
    }

    fn delete_project(&mut self, req: &Value, place: &Place) -> Result<Value, ApiError> {
        let given = match req.get("name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(ApiError::null_member("name")),
        };
        if let Some(name) = place.project_name(&given) {
            self.projects.remove(name);
        }
        Ok(json!({}))
    }

    fn batch_get_projects(&mut self, req: &Value, place: &Place) -> Result<Value, ApiError> {
        let names = ids_list(req, "names", 100)?;
        let mut projects = Vec::new();
        let mut not_found = Vec::new();
        for n in names {
            match self.resolve_project(&n, place) {
                Some(name) => projects.push(self.projects[&name].clone()),
                None => not_found.push(n),
            }
        }
        Ok(json!({ "projects": projects, "projectsNotFound": not_found }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SimState {
        SimState::new(SimConfig {
            seed: Some(1),
            projects: vec!["proj".into()],
            phase_seconds: 10.0,
            ..SimConfig::default()
        })
    }

    fn start(s: &SimState, req: Value) -> Result<Value, ApiError> {
        s.call("StartBuild", &req, Some("AKID"))
            .map(|v| v["build"].clone())
    }

    #[test]
    fn start_and_get() {
        let s = state();
        let b = start(&s, json!({"projectName": "proj"})).unwrap_or_default();
        assert_eq!(b["buildNumber"], 1);
        assert_eq!(b["buildStatus"], "IN_PROGRESS");
        let b2 = start(
            &s,
            json!({"projectName": "arn:aws:codebuild:us-east-1:123456789012:project/proj"}),
        )
        .unwrap_or_default();
        assert_eq!(b2["buildNumber"], 2);
        let got = s
            .call(
                "BatchGetBuilds",
                &json!({"ids": [b2["id"], "proj:nope", b["id"]]}),
                None,
            )
            .unwrap_or_default();
        assert_eq!(got["builds"][0]["id"], b2["id"]);
        assert_eq!(got["builds"][1]["id"], b["id"]);
        assert_eq!(got["buildsNotFound"], json!(["proj:nope"]));
        assert_eq!(s.counters().batch_get_builds_ids, 3);
        assert_eq!(s.starts().len(), 2);
        assert_eq!(s.starts()[0].access_key_id.as_deref(), Some("AKID"));
    }

    #[test]
    fn errors() {
        let s = state();
        let e = start(&s, json!({"projectName": "nope"})).err();
        assert_eq!(
            e.map(|e| (e.kind, e.message)),
            Some((
                ErrorKind::ResourceNotFound,
                "Project cannot be found: arn:aws:codebuild:us-east-1:123456789012:project/nope"
                    .to_string()
            ))
        );
        let e = s.call("StopBuild", &json!({"id": "bad"}), None).err();
        assert_eq!(
            e.map(|e| e.message).as_deref(),
            Some("Invalid build ID provided")
        );
        let e = s.call("StopBuild", &json!({"id": "proj:x"}), None).err();
        assert_eq!(e.map(|e| e.kind), Some(ErrorKind::ResourceNotFound));
        let many: Vec<String> = (0..101).map(|i| format!("proj:{i}")).collect();
        let e = s
            .call("BatchGetBuilds", &json!({ "ids": many }), None)
            .err();
        assert!(e.is_some_and(|e| e.message.contains("less than or equal to 100")));
    }

    #[test]
    fn idempotency_and_window() {
        let s = state();
        let req = json!({"projectName": "proj", "idempotencyToken": "tok"});
        let a = start(&s, req.clone()).unwrap_or_default();
        let b = start(&s, req.clone()).unwrap_or_default();
        assert_eq!(a["id"], b["id"]);
        assert!(s.starts()[1].replayed);
        let e = start(
            &s,
            json!({"projectName": "proj", "idempotencyToken": "tok", "sourceVersion": "x"}),
        );
        assert_eq!(e.err().map(|e| e.kind), Some(ErrorKind::InvalidInput));
        s.advance_clock(301.0);
        let c = start(&s, req).unwrap_or_default();
        assert_ne!(a["id"], c["id"]);
    }

    #[test]
    fn stop_is_sticky() {
        let s = state();
        let b = start(&s, json!({"projectName": "proj"})).unwrap_or_default();
        let stopped = s
            .call("StopBuild", &json!({"id": b["id"]}), None)
            .unwrap_or_default();
        assert_eq!(stopped["build"]["buildStatus"], "STOPPED");
        assert_eq!(stopped["build"]["buildComplete"], true);
        s.advance_clock(1000.0);
        let later = s
            .build(b["id"].as_str().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(later["buildStatus"], "STOPPED");
        assert_eq!(later["endTime"], stopped["build"]["endTime"]);
    }

    #[test]
    fn auto_retry_chain() {
        let s = state();
        let b = start(
            &s,
            json!({"projectName": "proj", "autoRetryLimitOverride": 2,
                   "environmentVariablesOverride": [
                       {"name": "CODEBUILD_SIM_FAIL_PHASE", "value": "BUILD"},
                       {"name": "CODEBUILD_SIM_SUCCEED_ON_RETRY", "value": "2"}]}),
        )
        .unwrap_or_default();
        assert_eq!(
            b["autoRetryConfig"],
            json!({"autoRetryLimit": 2, "autoRetryNumber": 0})
        );
        s.advance_clock(10_000.0);
        let all = s.builds();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0]["buildStatus"], "FAILED");
        assert_eq!(all[0]["autoRetryConfig"]["nextAutoRetry"], all[1]["id"]);
        assert_eq!(all[1]["autoRetryConfig"]["previousAutoRetry"], all[0]["id"]);
        assert_eq!(all[1]["autoRetryConfig"]["autoRetryNumber"], 1);
        assert_eq!(all[1]["buildStatus"], "FAILED");
        assert_eq!(all[2]["buildStatus"], "SUCCEEDED");
        assert_eq!(all[2]["buildNumber"], 3);
        assert_eq!(all[1]["startTime"], all[0]["endTime"]);
        assert!(all[2]["autoRetryConfig"].get("nextAutoRetry").is_none());
    }

    #[test]
    fn account_limit() {
        let s = state();
        s.set_faults(Faults {
            max_concurrent_builds: Some(1),
            ..Faults::default()
        });
        assert!(start(&s, json!({"projectName": "proj"})).is_ok());
        let e = start(&s, json!({"projectName": "proj"})).err();
        assert_eq!(
            e.map(|e| e.message).as_deref(),
            Some("Cannot have more than 1 active builds for the account")
        );
        s.advance_clock(1000.0);
        assert!(start(&s, json!({"projectName": "proj"})).is_ok());
    }

    #[test]
    fn rate_limit_throttles_past_the_burst() {
        let s = state();
        let limits = RateLimits::from_specs(&["StartBuild=0.001/s,burst=2"]);
        s.set_rate_limits(limits.unwrap_or_default());
        assert!(start(&s, json!({"projectName": "proj"})).is_ok());
        assert!(start(&s, json!({"projectName": "proj"})).is_ok());
        let e = start(&s, json!({"projectName": "proj"})).err();
        assert_eq!(
            e.map(|e| (e.kind, e.message)),
            Some((ErrorKind::Throttling, "Rate exceeded".to_string()))
        );
        assert!(
            s.call(
                "ListBuildsForProject",
                &json!({"projectName": "proj"}),
                None
            )
            .is_ok()
        );
        let c = s.counters();
        assert_eq!(c.calls.get("StartBuild"), Some(&3));
        assert_eq!(c.throttled, 1);
        assert_eq!(
            c.rate_limited,
            BTreeMap::from([("StartBuild".to_string(), 1)])
        );
        assert_eq!(c.throttled_by_operation, c.rate_limited);
        assert_eq!(
            s.starts().len(),
            2,
            "a throttled call never reaches StartBuild"
        );
        s.reset();
        assert!(
            s.rate_limits().is_empty(),
            "reset restores the configured (no) limits"
        );
        assert!(start(&s, json!({"projectName": "proj"})).is_ok());
    }

    #[test]
    fn list_builds_pages() {
        let s = state();
        for _ in 0..105 {
            assert!(start(&s, json!({"projectName": "proj"})).is_ok());
        }
        let p1 = s
            .call(
                "ListBuildsForProject",
                &json!({"projectName": "proj"}),
                None,
            )
            .unwrap_or_default();
        assert_eq!(p1["ids"].as_array().map(Vec::len), Some(100));
        let p2 = s
            .call(
                "ListBuildsForProject",
                &json!({"projectName": "proj", "nextToken": p1["nextToken"]}),
                None,
            )
            .unwrap_or_default();
        assert_eq!(p2["ids"].as_array().map(Vec::len), Some(5));
        assert!(p2.get("nextToken").is_none());
        let first = s.builds()[0]["id"].clone();
        assert_eq!(p2["ids"][4], first);
    }

    #[test]
    fn exports_after_success() {
        let s = state();
        let b = start(
            &s,
            json!({"projectName": "proj", "environmentVariablesOverride": [
                {"name": "CODEBUILD_SIM_EXPORT", "value": "IMAGE=abc,TAG=1"}]}),
        )
        .unwrap_or_default();
        assert!(b.get("exportedEnvironmentVariables").is_none());
        s.advance_clock(1000.0);
        let done = s
            .build(b["id"].as_str().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(
            done["exportedEnvironmentVariables"],
            json!([{"name": "IMAGE", "value": "abc"}, {"name": "TAG", "value": "1"}])
        );
    }
}
