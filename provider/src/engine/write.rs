//! The write step: one machine's identity block written with `If-Match`, a batch of them
//! concurrently (each on its turn), lost answers judged by the evidence, and the wait for the
//! writes to settle.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::azure::compute::{self, Machine, MachineKind};
use crate::azure::ids::Scope;
use crate::engine::notes::Notes;
use crate::engine::ownership::{self, Settings, Write};
use crate::engine::policy::{self, Decision};
use crate::engine::record::contains_ignoring_case;
use crate::engine::store::{MachineStore, Turn, CONCURRENCY};

/// Attempts per machine when its etag keeps changing under us (HTTP 412).
const MAX_CONFLICT_RETRIES: usize = 5;

/// The result of one machine's write.
#[derive(Debug, PartialEq)]
pub enum WriteResult {
    /// The machine now holds (attach, swap) or no longer holds (detach) the identity.
    Done,
    /// Nothing to do any more: the identity was already there (attach, swap) or already
    /// gone (detach). For a swap, the old identity was still taken back.
    AlreadyDone,
    Failed(String),
    /// Not attempted: the provider was asked to stop, or the operation timed out.
    NotStarted,
    /// The answer to an attach or swap was lost, and the machine holds the identity, but
    /// another change reached it in the same moment: whether our write put the identity
    /// there cannot be told (see [`compute::is_exactly_our_write`]). Never taken as ours.
    Uncertain,
}

/// What `fresh`, read after a write whose answer was lost, says about the write that sent
/// `patch` onto `before`: `None` when it does not show the write applied; otherwise
/// [`WriteResult::Done`] when the evidence says our write did it, or, for an attach or swap
/// whose evidence cannot decide, [`WriteResult::Uncertain`]. A release that shows applied is
/// done whoever made it: the machine no longer holds our identity.
fn judge_lost_answer(
    before: &Machine,
    patch: &serde_json::Value,
    fresh: &Machine,
    target: &str,
    write: &Write,
) -> Option<WriteResult> {
    let block = ownership::identity_block(fresh);
    let shows_applied = match write {
        Write::Attach => block.holds(target),
        Write::Swap { from } => block.holds(target) && !block.holds(from),
        Write::Detach { identity_id } => !block.holds(identity_id),
    };
    if !shows_applied {
        return None;
    }
    if matches!(write, Write::Detach { .. }) || compute::is_exactly_our_write(before, patch, fresh)
    {
        return Some(WriteResult::Done);
    }
    tracing::warn!(
        machine = %fresh.id,
        etag_before = before.etag.as_deref().unwrap_or(""),
        etag_now = fresh.etag.as_deref().unwrap_or(""),
        "the answer to our write was lost and another change reached the machine too: whether the identity there is ours is uncertain"
    );
    Some(WriteResult::Uncertain)
}

/// Writes one machine: decide again against its freshest etag and identity, PATCH with
/// If-Match, and on 412 read it again and redo the merge. A machine read without an etag is
/// read again by ID first, and never written blind (see
/// [`MachineStore::write_identity`]). When the answer to a write is lost
/// (the retry of a write ARM applied gets 412, or every attempt failed without an answer),
/// the machine is read and [`judge_lost_answer`] decides.
pub async fn write_machine(
    store: &dyn MachineStore,
    mut machine: Machine,
    target: &str,
    rules: &policy::Rules,
    write: &Write,
    halt: &CancellationToken,
) -> WriteResult {
    for _attempt in 0..MAX_CONFLICT_RETRIES {
        if machine.etag.is_none() {
            // A listing may carry no etag where a read by ID does.
            match store.read(&machine.id, machine.kind, Some(halt)).await {
                Err(error) if error.is_stopped() => return WriteResult::NotStarted,
                Ok(Some(fresh)) => machine = fresh,
                Ok(None) => {
                    return match write {
                        Write::Detach { .. } => WriteResult::AlreadyDone,
                        _ => WriteResult::Failed("deleted since plan".into()),
                    }
                }
                Err(error) => return WriteResult::Failed(error.to_string()),
            }
        }
        let identity = ownership::identity_block(&machine);
        let patch = match write {
            Write::Attach | Write::Swap { .. } => {
                let from = match write {
                    Write::Swap { from } if identity.holds(from) => Some(from.as_str()),
                    _ => None,
                };
                if identity.kind.has_user_assigned() && identity.holds(target) {
                    match from.and_then(|from| policy::removal_patch(&identity, from)) {
                        // Someone else gave it the new identity; ours still goes.
                        Some(removal) => removal,
                        None => return WriteResult::AlreadyDone,
                    }
                } else {
                    if from.is_none() {
                        let decision = policy::decide(
                            &policy::Machine {
                                id: &machine.id,
                                identity: &identity,
                                tags: &machine.tags,
                                provisioning_state: machine.provisioning_state.as_deref(),
                            },
                            target,
                            rules,
                        );
                        if let Decision::Skip(reason) = decision {
                            return WriteResult::Failed(format!(
                                "changed since plan and is now skipped ({}); plan again",
                                reason.as_str()
                            ));
                        }
                    }
                    match from {
                        Some(from) => ownership::swap_patch(&identity, from, target),
                        None => policy::assignment_patch(&identity, target),
                    }
                }
            }
            Write::Detach { identity_id } => match policy::removal_patch(&identity, identity_id) {
                Some(patch) => patch,
                None => return WriteResult::AlreadyDone,
            },
        };
        if machine.etag.is_none() {
            return WriteResult::Failed(
                "ARM returns no etag for it, even read by ID, and a write without If-Match could drop an identity another writer added meanwhile (the PATCH sends `type`); not written. Check that the machine's API serves etags, then apply again".into(),
            );
        }
        match store
            .write_identity(
                &machine.id,
                machine.kind,
                patch.clone(),
                machine.etag.as_deref(),
                halt,
            )
            .await
        {
            Ok(()) => return WriteResult::Done,
            Err(error) if error.is_not_sent() => return WriteResult::NotStarted,
            Err(error) if error.is_cancelled() => {
                return outcome_after_stop(store, &machine, &patch, target, write).await
            }
            Err(error) if error.status == 404 && !error.after_unanswered_attempt => {
                return match write {
                    Write::Detach { .. } => WriteResult::AlreadyDone,
                    _ => WriteResult::Failed("deleted since plan".into()),
                }
            }
            Err(error) if error.status == 412 || error.outcome_unknown() => {
                if error.status == 412 && !error.after_unanswered_attempt {
                    tracing::debug!(machine = %machine.id, "etag changed under us; reading again");
                } else {
                    tracing::info!(machine = %machine.id, %error, "the answer to our write was lost; reading the machine to learn its outcome");
                }
                let fresh = match store
                    .read(&machine.id, machine.kind, Some(halt))
                    .await
                {
                    Err(read) if read.is_stopped() && error.outcome_unknown() => {
                        return outcome_after_stop(store, &machine, &patch, target, write)
                            .await
                    }
                    Err(read) if read.is_stopped() => return WriteResult::NotStarted,
                    Ok(Some(fresh)) => fresh,
                    Ok(None) if matches!(write, Write::Detach { .. }) => {
                        return WriteResult::AlreadyDone
                    }
                    Ok(None) => return WriteResult::Failed("deleted since plan".into()),
                    Err(read) if error.outcome_unknown() => {
                        return WriteResult::Failed(format!(
                            "{error}; the write may have been applied, and reading the machine back failed ({read}): the next refresh reads it"
                        ))
                    }
                    Err(read) => return WriteResult::Failed(read.to_string()),
                };
                if error.outcome_unknown() {
                    if let Some(result) = judge_lost_answer(&machine, &patch, &fresh, target, write)
                    {
                        return result;
                    }
                    if error.status != 412 {
                        // Not applied: the failure stands.
                        return WriteResult::Failed(error.to_string());
                    }
                }
                machine = fresh;
            }
            Err(error) => return WriteResult::Failed(error.to_string()),
        }
    }
    WriteResult::Failed(format!(
        "changed by someone else {MAX_CONFLICT_RETRIES} times in a row while we wrote it; apply again"
    ))
}

/// A write was stopped after it was sent: read the machine once to learn whether it took,
/// and if it shows so, whether it was ours (see [`judge_lost_answer`]).
async fn outcome_after_stop(
    store: &dyn MachineStore,
    machine: &Machine,
    patch: &serde_json::Value,
    target: &str,
    write: &Write,
) -> WriteResult {
    let fresh = match store.read(&machine.id, machine.kind, None).await {
        Ok(Some(fresh)) => fresh,
        Ok(None) => return WriteResult::Failed("deleted while we wrote it".into()),
        Err(error) => {
            return WriteResult::Failed(format!(
                "stopped while the write was in flight, and reading the machine back failed ({error}); the next refresh reads it"
            ))
        }
    };
    judge_lost_answer(machine, patch, &fresh, target, write).unwrap_or(WriteResult::NotStarted)
}

/// What a batch of writes achieved, machine by machine.
#[derive(Default)]
pub struct BatchReport {
    pub succeeded: BTreeSet<String>,
    pub already_done: BTreeSet<String>,
    pub failed: BTreeMap<String, String>,
    pub not_started: BTreeSet<String>,
    /// Attaches and swaps whose answer was lost while another change reached the machine:
    /// it holds the identity, from us or not (see [`WriteResult::Uncertain`]).
    pub uncertain: BTreeSet<String>,
}

impl BatchReport {
    pub fn reached(&self, id: &str) -> bool {
        // Writes are keyed by the planned spelling: the exact lookup almost always answers.
        self.succeeded.contains(id)
            || self.already_done.contains(id)
            || contains_ignoring_case(&self.succeeded, id)
            || contains_ignoring_case(&self.already_done, id)
    }

    pub fn failed_or_not_started(&self) -> impl Iterator<Item = &String> {
        self.failed.keys().chain(self.not_started.iter())
    }
}

/// The turn to write `machine_id`, with the index of its work.
fn turn_of(
    store: &dyn MachineStore,
    machine_id: &str,
    index: usize,
    halt: CancellationToken,
) -> futures::future::BoxFuture<'static, (usize, Option<Turn>)> {
    store
        .turn(machine_id, halt)
        .map(move |slot| (index, slot))
        .boxed()
}

/// Writes `jobs` (machine ID, any casing, to its write) concurrently. Machines missing
/// from the inventory were deleted since plan. Once `halt` fires, no new write starts.
pub async fn write_batch(
    store: &dyn MachineStore,
    inventory: &[Machine],
    jobs: &BTreeMap<String, Write>,
    settings: &Settings,
    halt: &CancellationToken,
) -> BatchReport {
    let by_id: HashMap<String, &Machine> = inventory
        .iter()
        .map(|m| (m.id.to_ascii_lowercase(), m))
        .collect();
    let mut report = BatchReport::default();
    let mut work = Vec::new();
    for (id, write) in jobs {
        match by_id.get(&id.to_ascii_lowercase()) {
            Some(machine) => work.push((*machine, write)),
            None if matches!(write, Write::Detach { .. }) => {
                report.already_done.insert(id.clone());
            }
            None => {
                report
                    .failed
                    .insert(id.clone(), "deleted since plan".into());
            }
        }
    }
    // Indices, not the pairs: a stream of borrowed items trips the compiler's proof that
    // the apply's future is `Send`.
    let work = &work;
    // The turns are asked for in order, each when the one before it came; built up front,
    // they borrow nothing (a stream borrowing the work trips the proof that it is `Send`).
    let turns: Vec<_> = (0..work.len())
        .map(|index| turn_of(store, &work[index].0.id, index, halt.clone()))
        .collect();
    let results: Vec<(String, WriteResult)> = futures::stream::iter(turns)
        // A write starts (and is built) only once its subscription has a turn free: the
        // subscription's estate slices and resources share its turns, so the writes waiting on
        // ARM's pacing stay few however many buckets write at once.
        .buffered(1)
        .map(|(index, slot)| {
            let halt = halt.clone();
            let (machine, write) = work[index];
            async move {
                let id = machine.id.clone();
                let Some(_slot) = slot.filter(|_| !halt.is_cancelled()) else {
                    return (id, WriteResult::NotStarted);
                };
                // Copied here, when the write starts: only the writes in flight hold a
                // copy, not every machine of a large batch at once.
                let result = write_machine(
                    store,
                    machine.clone(),
                    &settings.identity_id,
                    &settings.rules,
                    write,
                    &halt,
                )
                .await;
                (id, result)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (id, result) in results {
        match result {
            WriteResult::Done => {
                report.succeeded.insert(id);
            }
            WriteResult::AlreadyDone => {
                report.already_done.insert(id);
            }
            WriteResult::Failed(reason) => {
                report.failed.insert(id, reason);
            }
            WriteResult::NotStarted => {
                report.not_started.insert(id);
            }
            WriteResult::Uncertain => {
                report.uncertain.insert(id);
            }
        }
    }
    report
}

/// Waits until ARM reports the written machines settled, unless `halt` fires first; or,
/// inside [`settle_later`], leaves that to the caller.
pub async fn settle(
    store: &dyn MachineStore,
    settings: &Settings,
    written: &BTreeSet<String>,
    halt: &CancellationToken,
    notes: &mut Notes,
) {
    if written.is_empty() {
        return;
    }
    let deferred = SETTLE_LATER.try_with(|later| {
        later.lock().expect("settle_later lock").push(Written {
            scope: settings.scope.clone(),
            kinds: settings.kinds.clone(),
            machines: written.clone(),
        })
    });
    if deferred.is_ok() {
        return;
    }
    settle_written(
        store,
        &settings.scope,
        &settings.kinds,
        written,
        halt,
        notes,
    )
    .await;
}

/// Machines written in one scope, whose update is still to be confirmed.
pub struct Written {
    pub scope: Scope,
    pub kinds: Vec<MachineKind>,
    pub machines: BTreeSet<String>,
}

tokio::task_local! {
    static SETTLE_LATER: Arc<std::sync::Mutex<Vec<Written>>>;
}

/// Runs `apply` (applies of this resource) collecting into `later` what their writes leave to
/// confirm instead of waiting for it: a caller applying many objects over one scope (an
/// estate's slices of one subscription) then waits once, with one listing per round, rather
/// than once per object.
pub async fn settle_later<F: std::future::Future>(
    later: Arc<std::sync::Mutex<Vec<Written>>>,
    apply: F,
) -> F::Output {
    SETTLE_LATER.scope(later, apply).await
}

/// Waits until ARM reports `written` settled, unless `halt` fires first; a warning when it
/// cannot tell.
pub async fn settle_written(
    store: &dyn MachineStore,
    scope: &Scope,
    kinds: &[MachineKind],
    written: &BTreeSet<String>,
    halt: &CancellationToken,
    notes: &mut Notes,
) {
    let result = store.settle(scope, kinds, written, halt).await;
    match result {
        Err(error) if !error.is_stopped() => notes.warning(
            "Could not confirm that every update finished",
            &format!("The writes were accepted; the next refresh confirms them. {error}"),
        ),
        _ => {}
    }
}

pub fn report_failures(notes: &mut Notes, verb: &str, report: &BatchReport, halted_by: &str) {
    if !report.failed.is_empty() {
        let mut lines: Vec<String> = report
            .failed
            .iter()
            .take(50)
            .map(|(id, reason)| format!("- {id}: {reason}"))
            .collect();
        if report.failed.len() > 50 {
            lines.push(format!("- ... and {} more", report.failed.len() - 50));
        }
        notes.error(
            &format!("Could not {verb} {} machine(s)", report.failed.len()),
            &format!(
                "State records exactly the machines that were changed; apply again to finish the others.\n{}",
                lines.join("\n")
            ),
        );
    }
    if !report.not_started.is_empty() {
        notes.error(
            &format!("Stopped before {verb} {} machine(s)", report.not_started.len()),
            &format!("{halted_by} Writes already sent were finished and are recorded in state; apply again to finish the rest."),
        );
    }
}

impl BatchReport {
    /// This report split into the attaches and swaps (`attaching`) and the releases.
    pub fn split(self, attaching: &BTreeMap<String, Write>) -> (BatchReport, BatchReport) {
        let mut attach = BatchReport::default();
        let mut release = BatchReport::default();
        let side = |id: &String| {
            if attaching.contains_key(id) {
                0
            } else {
                1
            }
        };
        for id in self.succeeded {
            [&mut attach, &mut release][side(&id)].succeeded.insert(id);
        }
        for id in self.already_done {
            [&mut attach, &mut release][side(&id)]
                .already_done
                .insert(id);
        }
        for (id, reason) in self.failed {
            [&mut attach, &mut release][side(&id)]
                .failed
                .insert(id, reason);
        }
        for id in self.not_started {
            [&mut attach, &mut release][side(&id)]
                .not_started
                .insert(id);
        }
        for id in self.uncertain {
            [&mut attach, &mut release][side(&id)].uncertain.insert(id);
        }
        (attach, release)
    }
}
