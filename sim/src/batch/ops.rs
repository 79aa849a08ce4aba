//! The batch operations (StartBuildBatch, BatchGetBuildBatches, StopBuildBatch,
//! RetryBuildBatch, ListBuildBatchesForProject, ListBuildBatches), the settling of batches
//! along the clock, and the SimState accessors tests use.

use super::record::{BatchPhase, BatchRecord, DOWNLOAD_SOURCE, Group, Stage};
use super::request;
use super::restrictions::{self, Defaults};
use super::schedule::Ctx;
use super::spec::{self, BatchSpec};
use crate::build_output::Choices;
use crate::config::SimConfig;
use crate::idempotency::{self, Decision, TokenEntry};
use crate::lifecycle::{self, Status};
use crate::outcome;
use crate::overrides::{self, Place};
use crate::pagination::{self, SortOrder};
use crate::protocol::{ApiError, ErrorKind};
use crate::store::{Inner, SimState, str_field, wall_clock};
use serde::Serialize;
use serde_json::{Value, json};

/// One StartBuildBatch or RetryBuildBatch call as received (see [`SimState::batch_starts`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchStartRecord {
    /// Sim clock, epoch seconds.
    pub time: f64,
    /// `StartBuildBatch` or `RetryBuildBatch`.
    pub operation: String,
    pub project_name: Option<String>,
    pub idempotency_token: Option<String>,
    pub access_key_id: Option<String>,
    /// The full request JSON.
    pub request: Value,
    /// The batch started or retried, if any.
    pub batch_id: Option<String>,
    /// True when an idempotency token returned the batch without starting or retrying.
    pub replayed: bool,
    /// The error `__type` when the call failed.
    pub error: Option<String>,
}

const STATUS_TYPES: [&str; 6] = [
    "SUCCEEDED",
    "FAILED",
    "FAULT",
    "TIMED_OUT",
    "IN_PROGRESS",
    "STOPPED",
];
const RETRY_TYPES: [&str; 2] = ["RETRY_ALL_BUILDS", "RETRY_FAILED_BUILDS"];

fn place(config: &SimConfig) -> Place<'_> {
    Place {
        region: &config.region,
        account: &config.account_id,
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Build batch {id} does not exist"))
}

/// The batchspec (or why it cannot be read, which fails the batch later), once the reserved
/// variables of every build it will run are known to be valid: a bad value is refused now,
/// as StartBuild refuses it.
fn read_spec(project_json: &Value, member: &Value) -> Result<Result<BatchSpec, String>, ApiError> {
    let spec = spec::read(overrides::merged_buildspec(project_json, member))
        .and_then(|s| request::check_entries(&s.entries).map(|()| s));
    let mut requests = vec![request::source_request(member)];
    if let Ok(s) = &spec {
        requests.extend(s.entries.iter().map(|e| request::entry_request(member, e)));
    }
    for r in &requests {
        let env = overrides::env_pairs(&overrides::merged_env_vars(project_json, r));
        Choices::read(overrides::merged_buildspec(project_json, r), &env, 0)
            .map_err(ApiError::invalid)?;
    }
    Ok(spec)
}

/// A batch phase's length (`CODEBUILD_SIM_PHASE_SECONDS` of the batch's environment, else
/// the configured one) and its timeout (`timeoutInMins`), time-scaled.
fn durations(
    config: &SimConfig,
    project_json: &Value,
    member: &Value,
    batch_config: Option<&Value>,
) -> (f64, Option<f64>) {
    let scale = config.time_scale.max(0.0);
    let env = overrides::env_pairs(&overrides::merged_env_vars(project_json, member));
    let phase_seconds = outcome::last_value(&env, outcome::PHASE_SECONDS)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(config.phase_seconds)
        * scale;
    let timeout = batch_config
        .and_then(|c| c.get("timeoutInMins"))
        .and_then(Value::as_f64)
        .map(|m| m * 60.0 * scale);
    (phase_seconds, timeout)
}

impl Inner {
    /// Applies every batch event up to `now`, all batches together in time order.
    pub(crate) fn settle_batches(&mut self, config: &SimConfig, now: f64) {
        if self.batches.iter().all(BatchRecord::is_complete) {
            return;
        }
        let mut batches = std::mem::take(&mut self.batches);
        loop {
            let next = batches
                .iter()
                .enumerate()
                .filter_map(|(i, b)| b.next_event(self).map(|(t, e)| (t, e, i)))
                .filter(|(t, ..)| *t <= now)
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let Some((t, event, i)) = next else { break };
            batches[i].apply(
                event,
                t,
                &mut Ctx {
                    inner: self,
                    config,
                },
            );
        }
        self.batches = batches;
    }

    fn render_batch(&self, idx: usize, config: &SimConfig, now: f64) -> Value {
        self.batches[idx].render(now, &self.builds, &place(config))
    }

    /// StartBuildBatch; the bool is true when an idempotency token replayed a batch.
    pub(crate) fn start_build_batch(
        &mut self,
        config: &SimConfig,
        req: &Value,
        access_key_id: Option<&str>,
        now: f64,
    ) -> Result<(Value, bool), ApiError> {
        request::check(req)?;
        let place = place(config);
        let given = req["projectName"].as_str().unwrap_or_default();
        let Some(project) = self.resolve_project(given, &place) else {
            return Err(ApiError::not_found(format!(
                "Project cannot be found: {}",
                Self::project_arn_for(given, &place)
            )));
        };
        let project_json = self.projects.get(&project).cloned().unwrap_or_default();
        request::check_against_project(&project_json, req, &place)?;
        let token = str_field(req, "idempotencyToken");
        if let Some(token) = &token {
            let window = config.token_window_seconds * config.time_scale.max(0.0);
            match idempotency::decide(self.batch_tokens.get(token), req, now, window) {
                Decision::Replay(id) => {
                    if let Some(&idx) = self.batch_by_id.get(&id) {
                        return Ok((self.render_batch(idx, config, now), true));
                    }
                }
                Decision::Mismatch => {
                    return Err(ApiError::invalid(idempotency::mismatch_message(token)));
                }
                Decision::Start => {}
            }
        }
        let batch = self.new_batch(config, &project, &project_json, req, access_key_id, now)?;
        let idx = self.batches.len();
        self.batch_by_id.insert(batch.id.clone(), idx);
        if let Some(token) = token {
            let entry = TokenEntry {
                build_id: batch.id.clone(),
                request: req.clone(),
                first_used: now,
            };
            self.batch_tokens.insert(token, entry);
        }
        self.batches.push(batch);
        Ok((self.render_batch(idx, config, now), false))
    }

    /// A new batch in SUBMITTED. Reserved variables are checked for every build it will
    /// run, so a bad value is refused now (as StartBuild refuses it).
    fn new_batch(
        &mut self,
        config: &SimConfig,
        project: &str,
        project_json: &Value,
        req: &Value,
        access_key_id: Option<&str>,
        now: f64,
    ) -> Result<BatchRecord, ApiError> {
        let member = request::member_request(req);
        let spec = read_spec(project_json, &member)?;
        let config_json = request::batch_config(project_json, req);
        let defaults = Defaults {
            compute_type: member["computeTypeOverride"]
                .as_str()
                .or_else(|| project_json["environment"]["computeType"].as_str())
                .unwrap_or_default(),
            fleet: project_json["environment"]["fleet"]["fleetArn"].as_str(),
        };
        let restriction = match &spec {
            Ok(s) => restrictions::check(config_json.as_ref(), &s.entries, &defaults),
            Err(_) => Ok(()),
        };
        let (phase_seconds, timeout_seconds) =
            durations(config, project_json, &member, config_json.as_ref());
        let uuid = self.new_uuid();
        let number = self.batch_numbers.entry(project.to_string()).or_insert(0);
        *number += 1;
        let ids = request::BatchIds {
            project,
            uuid: &uuid,
            number: *number,
            start: now,
            initiator: &config.initiator,
        };
        let fields = request::static_fields(project_json, req, &ids, &place(config));
        let resolved_source_version = overrides::resolved_source_version(
            &fields["source"],
            fields.get("sourceVersion").and_then(Value::as_str),
        );
        let mut batch = BatchRecord {
            id: format!("{project}:{uuid}"),
            project: project.to_string(),
            project_json: project_json.clone(),
            member_request: member,
            access_key_id: access_key_id.map(str::to_string),
            fields,
            spec,
            restriction,
            combine: config_json
                .as_ref()
                .and_then(|c| c["combineArtifacts"].as_bool())
                == Some(true),
            phase_seconds,
            timeout_seconds,
            phases: Vec::new(),
            stage: Stage::Submitted,
            groups: vec![Group {
                identifier: DOWNLOAD_SOURCE.to_string(),
                entry: None,
                current: None,
                prior: Vec::new(),
                selected: true,
            }],
            resolved_source_version,
            source_resolved: false,
            deadline: timeout_seconds.map(|s| now + s),
            fast_failed: false,
        };
        batch.open_phase(BatchPhase::Submitted, now);
        Ok(batch)
    }

    pub(crate) fn batch_get_build_batches(
        &mut self,
        config: &SimConfig,
        req: &Value,
        now: f64,
    ) -> Result<Value, ApiError> {
        let ids: Vec<String> = match req.get("ids") {
            None | Some(Value::Null) => return Err(ApiError::null_member("ids")),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect(),
            Some(_) => {
                return Err(ApiError::new(
                    ErrorKind::Serialization,
                    "ids must be a list",
                ));
            }
        };
        if ids.len() > 100 {
            return Err(ApiError::constraint(
                &format!("[{}]", ids.join(", ")),
                "ids",
                "Member must have length less than or equal to 100",
            ));
        }
        self.counters.batch_get_build_batches_ids += ids.len() as u64;
        let mut found = Vec::new();
        let mut not_found = Vec::new();
        for id in ids {
            match self.batch_by_id.get(&id) {
                Some(&idx) => found.push(self.render_batch(idx, config, now)),
                None => not_found.push(id),
            }
        }
        Ok(json!({"buildBatches": found, "buildBatchesNotFound": not_found}))
    }

    fn batch_index(&self, req: &Value) -> Result<usize, ApiError> {
        let id = match req.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => return Err(ApiError::null_member("id")),
        };
        self.batch_by_id
            .get(id)
            .copied()
            .ok_or_else(|| not_found(id))
    }

    /// Runs `f` on batch `idx` with the builds at hand.
    fn with_batch<T>(
        &mut self,
        idx: usize,
        config: &SimConfig,
        f: impl FnOnce(&mut BatchRecord, &mut Ctx) -> T,
    ) -> T {
        let mut batches = std::mem::take(&mut self.batches);
        let out = f(
            &mut batches[idx],
            &mut Ctx {
                inner: self,
                config,
            },
        );
        self.batches = batches;
        out
    }

    pub(crate) fn stop_build_batch(
        &mut self,
        config: &SimConfig,
        req: &Value,
        now: f64,
    ) -> Result<Value, ApiError> {
        let idx = self.batch_index(req)?;
        self.with_batch(idx, config, |b, ctx| b.stop(now, ctx));
        Ok(json!({"buildBatch": self.render_batch(idx, config, now)}))
    }

    /// RetryBuildBatch; the bool is true when an idempotency token replayed the retry.
    pub(crate) fn retry_build_batch(
        &mut self,
        config: &SimConfig,
        req: &Value,
        now: f64,
    ) -> Result<(Value, bool), ApiError> {
        overrides::enum_check(req.get("retryType"), "retryType", &RETRY_TYPES)?;
        let idx = self.batch_index(req)?;
        let token = str_field(req, "idempotencyToken");
        if let Some(token) = &token {
            let window = config.token_window_seconds * config.time_scale.max(0.0);
            match idempotency::decide(self.retry_tokens.get(token), req, now, window) {
                Decision::Replay(_) => return Ok((self.render_batch(idx, config, now), true)),
                Decision::Mismatch => {
                    return Err(ApiError::invalid(idempotency::mismatch_message(token)));
                }
                Decision::Start => {}
            }
        }
        let batch = &self.batches[idx];
        if batch.final_status().is_none_or(|s| s == Status::Succeeded) {
            return Err(ApiError::invalid(format!(
                "Build batch {} cannot be retried: it is {}; only a batch build that failed or was stopped can be retried",
                batch.id,
                batch.status_str()
            )));
        }
        // RETRY_ALL_BUILDS when the type is not given.
        let retry_failed = req["retryType"].as_str() == Some("RETRY_FAILED_BUILDS");
        self.batches[idx].retry(now, retry_failed, &self.builds);
        if let Some(token) = token {
            let entry = TokenEntry {
                build_id: self.batches[idx].id.clone(),
                request: req.clone(),
                first_used: now,
            };
            self.retry_tokens.insert(token, entry);
        }
        Ok((self.render_batch(idx, config, now), false))
    }

    /// ListBuildBatchesForProject (`for_project`) or ListBuildBatches: ids newest first by
    /// default, `filter.status`, pages of `maxResults` (1..=100, default 100).
    pub(crate) fn list_build_batches(
        &mut self,
        config: &SimConfig,
        req: &Value,
        for_project: bool,
    ) -> Result<Value, ApiError> {
        let place = place(config);
        let project = if for_project {
            let given = match req.get("projectName") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => return Err(ApiError::null_member("projectName")),
            };
            let Some(name) = self.resolve_project(&given, &place) else {
                return Err(ApiError::not_found(format!(
                    "The provided project {} does not exist",
                    Self::project_arn_for(&given, &place)
                )));
            };
            Some(name)
        } else {
            None
        };
        let status = req.get("filter").and_then(|f| f.get("status"));
        overrides::enum_check(status, "filter.status", &STATUS_TYPES)?;
        let status = status.and_then(Value::as_str);
        overrides::int_range(req.get("maxResults"), "maxResults", 1, 100)?;
        let size = req["maxResults"].as_u64().unwrap_or(100) as usize;
        let sort = req.get("sortOrder").and_then(Value::as_str);
        let order = SortOrder::parse(sort).ok_or_else(|| {
            ApiError::constraint(
                sort.unwrap_or_default(),
                "sortOrder",
                "Member must satisfy enum value set: [ASCENDING, DESCENDING]",
            )
        })?;
        let batches = &self.batches;
        let ids: Vec<String> = batches
            .iter()
            .filter(|b| project.as_ref().is_none_or(|p| &b.project == p))
            .map(|b| b.id.clone())
            .collect();
        let keep = |id: &str| {
            status.is_none_or(|s| {
                self.batch_by_id
                    .get(id)
                    .is_some_and(|&i| batches[i].status_str() == s)
            })
        };
        let token = req.get("nextToken").and_then(Value::as_str);
        let (page, next) = pagination::page_where(&ids, order, token, size, keep)
            .ok_or_else(|| ApiError::invalid("Invalid nextToken"))?;
        let mut out = json!({ "ids": page });
        if let Some(n) = next {
            out["nextToken"] = json!(n);
        }
        Ok(out)
    }

    /// Runs StartBuildBatch or RetryBuildBatch and records the call.
    pub(crate) fn batch_call(
        &mut self,
        config: &SimConfig,
        operation: &str,
        req: &Value,
        access_key_id: Option<&str>,
        now: f64,
    ) -> Result<Value, ApiError> {
        let result = if operation == "StartBuildBatch" {
            self.start_build_batch(config, req, access_key_id, now)
        } else {
            self.retry_build_batch(config, req, now)
        };
        let (batch_id, replayed, error) = match &result {
            Ok((b, replayed)) => (str_field(b, "id"), *replayed, None),
            Err(e) => (None, false, Some(e.kind.type_name().to_string())),
        };
        let project_name = str_field(req, "projectName").or_else(|| {
            let id = str_field(req, "id")?;
            id.split_once(':').map(|(p, _)| p.to_string())
        });
        let record = BatchStartRecord {
            time: lifecycle::ts(now),
            operation: operation.to_string(),
            project_name,
            idempotency_token: str_field(req, "idempotencyToken"),
            access_key_id: access_key_id.map(str::to_string),
            request: req.clone(),
            batch_id,
            replayed,
            error,
        };
        if operation == "StartBuildBatch" {
            self.batch_starts.push(record);
        } else {
            self.batch_retries.push(record);
        }
        result.map(|(b, _)| json!({ "buildBatch": b }))
    }
}

impl SimState {
    /// Every batch build (creation order), rendered at the current sim time.
    pub fn batches(&self) -> Vec<Value> {
        let mut g = self.lock();
        let now = wall_clock() + g.clock_offset;
        g.settle(&self.config, now);
        (0..g.batches.len())
            .map(|i| g.render_batch(i, &self.config, now))
            .collect()
    }

    /// One batch build rendered at the current sim time.
    pub fn batch(&self, id: &str) -> Option<Value> {
        let mut g = self.lock();
        let now = wall_clock() + g.clock_offset;
        g.settle(&self.config, now);
        let idx = *g.batch_by_id.get(id)?;
        Some(g.render_batch(idx, &self.config, now))
    }

    /// The StartBuildBatch log, oldest first (calls answered by an injected fault or a rate
    /// limit never reach it).
    pub fn batch_starts(&self) -> Vec<BatchStartRecord> {
        self.lock().batch_starts.clone()
    }

    /// The RetryBuildBatch log, oldest first.
    pub fn batch_retries(&self) -> Vec<BatchStartRecord> {
        self.lock().batch_retries.clone()
    }
}
