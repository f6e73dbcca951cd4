//! The engine's [`MachineStore`] over the Azure client: listings, reads and identity writes
//! of Compute, ARM's turns and its wait for writes to settle. Also how the engine's notes
//! become Terraform's diagnostics, and how an operation's stop is the engine's.

use std::collections::BTreeSet;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::FutureExt;
use tfplugin::{AttributePath, Diagnostics};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::azure::arm::ArmError;
use crate::azure::compute::{self, ComputeClient, Machine, MachineKind};
use crate::azure::ids::Scope;
use crate::engine::notes::{Notes, Severity};
use crate::engine::store::{MachineStore, Stopping, StoreError, Turn};
use crate::timeouts::Halt;

impl From<ArmError> for StoreError {
    fn from(error: ArmError) -> StoreError {
        StoreError {
            status: error.status,
            not_sent: error.is_not_sent(),
            cancelled: error.is_cancelled(),
            no_etag: error.code == compute::NO_ETAG,
            after_unanswered_attempt: error.after_unanswered_attempt,
            message: error.to_string(),
        }
    }
}

#[async_trait]
impl MachineStore for ComputeClient {
    async fn list(
        &self,
        scope: &Scope,
        kinds: &[MachineKind],
        not_before: Instant,
        keep: &(dyn for<'m> Fn(&'m Machine) -> bool + Send + Sync),
    ) -> Result<Vec<Machine>, StoreError> {
        Ok(self.inventory_where(scope, kinds, not_before, keep).await?)
    }

    async fn read(
        &self,
        id: &str,
        kind: MachineKind,
        halt: Option<&CancellationToken>,
    ) -> Result<Option<Machine>, StoreError> {
        Ok(match halt {
            Some(halt) => self.get_machine_cancellable(id, kind, halt).await?,
            None => self.get_machine(id, kind).await?,
        })
    }

    async fn write_identity(
        &self,
        id: &str,
        kind: MachineKind,
        identity: serde_json::Value,
        if_match: Option<&str>,
        halt: &CancellationToken,
    ) -> Result<(), StoreError> {
        Ok(self
            .patch_identity_cancellable(id, kind, identity, if_match, halt)
            .await?)
    }

    fn turn(&self, machine_id: &str, halt: CancellationToken) -> BoxFuture<'static, Option<Turn>> {
        self.write_slot(machine_id, halt)
            .map(|slot| slot.map(|slot| Turn(Box::new(slot))))
            .boxed()
    }

    async fn settle(
        &self,
        scope: &Scope,
        kinds: &[MachineKind],
        machines: &BTreeSet<String>,
        halt: &CancellationToken,
    ) -> Result<(), StoreError> {
        Ok(self
            .wait_until_settled_cancellable(scope, kinds, machines, halt)
            .await?)
    }
}

impl Stopping for Halt {
    fn token(&self) -> &CancellationToken {
        Halt::token(self)
    }

    fn reason(&self) -> String {
        Halt::reason(self)
    }

    fn is_halted(&self) -> bool {
        Halt::is_halted(self)
    }
}

/// The engine's notes as Terraform's diagnostics, in order.
pub(crate) fn diagnostics(notes: Notes) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    for note in notes.0 {
        match (note.severity, note.attribute) {
            (Severity::Error, None) => diagnostics.error(&note.summary, &note.detail),
            (Severity::Warning, None) => diagnostics.warning(&note.summary, &note.detail),
            (Severity::Error, Some(name)) => {
                diagnostics.error_at(AttributePath::root(name), &note.summary, &note.detail)
            }
            (Severity::Warning, Some(name)) => {
                diagnostics.warning_at(AttributePath::root(name), &note.summary, &note.detail)
            }
        }
    }
    diagnostics
}

/// One machine's write against a scripted ARM: lost answers judged by the evidence, and no
/// write without `If-Match`.
#[cfg(test)]
mod write_machine_tests {
    use super::*;
    use crate::azure::arm::test_support::{client, ok, Step};
    use crate::azure::compute::{Machine, MachineKind};
    use crate::engine::ownership::Write;
    use crate::engine::policy;
    use crate::engine::write::{write_machine, WriteResult};
    use std::sync::Mutex;
    use tokio_util::sync::CancellationToken;

    const VM: &str =
        "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";
    const OURS: &str = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ours";

    fn machine(etag: Option<u64>, holds_ours: bool, other_tag: bool) -> serde_json::Value {
        let mut json = serde_json::json!({
            "id": VM, "location": "eastus", "tags": {"env": "prod"},
            "properties": {"provisioningState": "Succeeded"},
            "identity": {"type": "SystemAssigned"},
        });
        if let Some(etag) = etag {
            json["etag"] = format!("\"{etag}\"").into();
        }
        if holds_ours {
            json["identity"] = serde_json::json!({
                "type": "SystemAssigned, UserAssigned",
                "userAssignedIdentities": {OURS: {"principalId": "p", "clientId": "c"}},
            });
        }
        if other_tag {
            json["tags"]["other"] = "x".into();
        }
        json
    }

    fn status(code: u16) -> Step {
        Step::Answer(
            code,
            Vec::new(),
            Ok(format!(r#"{{"error":{{"code":"E{code}","message":"m"}}}}"#).into_bytes()),
        )
    }

    /// Writes an attach of OURS to the machine `listed` with ARM answering each PATCH by its
    /// number (from 0) and each GET with `read`; returns the result and the `If-Match` of
    /// every PATCH sent.
    async fn attach(
        listed: serde_json::Value,
        patch: impl Fn(usize) -> Step + Send + Sync + 'static,
        read: serde_json::Value,
    ) -> (WriteResult, Vec<Option<String>>) {
        let if_matches = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = if_matches.clone();
        let patches = std::sync::atomic::AtomicUsize::new(0);
        let read = read.to_string();
        let (arm, _) = client(move |request, _| {
            if request.method() == reqwest::Method::PATCH {
                seen.lock().unwrap().push(
                    request
                        .headers()
                        .get("If-Match")
                        .map(|v| v.to_str().unwrap().to_string()),
                );
                patch(patches.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
            } else {
                ok(&read)
            }
        });
        let compute = ComputeClient::new(arm);
        let listed = Machine::from_json(&listed, MachineKind::VirtualMachine).unwrap();
        let result = write_machine(
            &compute as &dyn MachineStore,
            listed,
            OURS,
            &policy::Rules::default(),
            &Write::Attach,
            &CancellationToken::new(),
        )
        .await;
        let sent = if_matches.lock().unwrap().clone();
        (result, sent)
    }

    /// Our PATCH took, its answer was a 500, the retry with the same If-Match got 412: the
    /// machine is exactly as our write leaves it, one write on. Ours.
    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_whose_machine_shows_exactly_our_write_is_ours() {
        let (result, sent) = attach(
            machine(Some(3), false, false),
            |n| if n == 0 { status(500) } else { status(412) },
            machine(Some(4), true, false),
        )
        .await;
        assert_eq!(result, WriteResult::Done);
        assert_eq!(sent, [Some("\"3\"".into()), Some("\"3\"".into())]);
    }

    /// The same, but another writer changed the machine too (two writes, a tag): either write
    /// may have put our identity there. Uncertain, never ours by guess.
    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_with_another_change_in_the_same_moment_is_uncertain() {
        let (result, _) = attach(
            machine(Some(3), false, false),
            |n| if n == 0 { status(500) } else { status(412) },
            machine(Some(5), true, true),
        )
        .await;
        assert_eq!(result, WriteResult::Uncertain);
    }

    /// A 412 at the first attempt: ours never took, whatever the machine shows. Someone
    /// else's.
    #[tokio::test(start_paused = true)]
    async fn a_412_at_once_leaves_the_identity_someone_elses() {
        let (result, sent) = attach(
            machine(Some(3), false, false),
            |_| status(412),
            machine(Some(4), true, false),
        )
        .await;
        assert_eq!(result, WriteResult::AlreadyDone);
        assert_eq!(sent.len(), 1);
    }

    /// Every attempt answered 500: the machine decides. Applied by our write, it is ours;
    /// not applied, the failure stands.
    #[tokio::test(start_paused = true)]
    async fn when_every_answer_is_lost_the_machine_decides() {
        let (result, _) = attach(
            machine(Some(3), false, false),
            |_| status(500),
            machine(Some(4), true, false),
        )
        .await;
        assert_eq!(result, WriteResult::Done);
        let (result, _) = attach(
            machine(Some(3), false, false),
            |_| status(500),
            machine(Some(3), false, false),
        )
        .await;
        assert!(
            matches!(&result, WriteResult::Failed(reason) if reason.contains("E500")),
            "{result:?}"
        );
    }

    /// A machine listed without an etag is read by ID first and written with the etag the
    /// read returns; when the read has none either, nothing is written.
    #[tokio::test(start_paused = true)]
    async fn a_machine_without_an_etag_is_never_written_blind() {
        let (result, sent) = attach(
            machine(None, false, false),
            |_| ok("{}"),
            machine(Some(7), false, false),
        )
        .await;
        assert_eq!(result, WriteResult::Done);
        assert_eq!(sent, [Some("\"7\"".into())]);

        let (result, sent) = attach(
            machine(None, false, false),
            |_| ok("{}"),
            machine(None, false, false),
        )
        .await;
        assert!(
            matches!(&result, WriteResult::Failed(reason) if reason.contains("If-Match")),
            "{result:?}"
        );
        assert!(sent.is_empty(), "no PATCH without If-Match: {sent:?}");
    }
}
