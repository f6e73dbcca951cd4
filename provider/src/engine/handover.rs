//! What objects of `mig_identity_assignment` tell each other inside one provider process.
//!
//! Terraform runs a whole plan (refresh included) in one provider process, and a whole apply
//! in another. Two facts need to cross from one object to another inside such a walk:
//!
//! - **Take-over at plan.** When an object is replaced (`-replace`, taint, `count` to
//!   `for_each` without a `moved` block), Terraform plans the new object as a create with no
//!   prior state. The old object was refreshed (or planned) just before in the same process,
//!   so it leaves here the machines it owns; the create takes them over, and plans them as
//!   its own instead of as "compliant". (Terraform 1.16+ also hands the plan made during
//!   apply what the first plan took over, in its private state: with
//!   `create_before_destroy` the old object is never refreshed in the apply's process.)
//!
//!   Records are keyed by object, so that neither a changed `scope` nor another object of
//!   the same scope and identity can hide or overwrite them. The key is one both halves of a
//!   replacement compute without knowing each other ([`object_key`]): the object's kind (a
//!   `mig_identity_assignment`, or a slice of a `mig_estate_assignment`) and its
//!   *configuration* as Terraform sends it. For `-replace` (or an argument forcing it),
//!   Terraform plans the old object with its prior state and the new configuration, then the
//!   create with the same configuration, one right after the other: the first records under
//!   the key what it owns with the identity it will have, the second takes it over. In the
//!   apply's process the old object's destroy gets the create's planned private state, which
//!   carries that key (`successor`): it records there what it left holding the identity, for
//!   the create's plan made right after. An estate slice's configuration is made from the
//!   estate's arguments and its subscription and region, so its key names its estate. Two
//!   objects of one kind with the very same configuration share a key: they overlap on every
//!   machine anyway.
//!
//!   A tainted object is never planned with its prior state: Terraform plans the create
//!   alone. Refresh knows no configuration: it records by kind, scope and identity, which a
//!   taint or a changed address finds when the scope is unchanged (an object of another kind
//!   is found only when its own kind recorded nothing: one assignment per region moved to an
//!   estate). With a changed scope too, the create's plan lists in its private state the
//!   machines it plans to keep holding its identity (`keeps`): the old object's destroy
//!   leaves those alone and hands them over, and the create adopts them.
//!
//!   Nothing handed over is recorded nowhere: a destroy that fails (or is stopped) keeps in
//!   its state what it meant to hand over, since Terraform then creates no replacement; a
//!   create that is stopped, or cannot list its scope at plan or apply, records what it took
//!   over.
//! - **Claims at apply.** A create or update that finished in this apply claims the machines
//!   that must hold its identity. A destroy or release in the same apply leaves a claimed
//!   machine alone: with `create_before_destroy`, or an unordered destroy of the old
//!   instance after the new one took over, stripping it would leave the machine without the
//!   identity that the surviving object wants it to have. It hands the machine over: if the
//!   claiming object has not finished yet, it records the machine as its own.
//!
//! - **Identities planned.** `mig_builtin_identity` plans its identity's ID before the
//!   identity exists; an assignment planned after it in the same run that names that ID must
//!   not be refused for naming an identity that does not exist yet.
//!
//! - **One writer per identity.** Objects of the same identity change ownership one at a
//!   time in a process (`writing`): a destroy and the create that replaces it, running side
//!   by side, would otherwise each decide on a listing the other is changing.
//!
//! Machine and identity IDs are compared case-insensitively, as ARM does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::engine::unique_ids::UniqueIds;
use crate::ownership::{self, Held, Settings};

fn key(scope: &str, identity_id: &str) -> (String, String) {
    (scope.to_ascii_lowercase(), identity_id.to_ascii_lowercase())
}

/// The key of an object's hand-over records: its kind (`mig_identity_assignment`, an estate's
/// slice) and its configuration as Terraform sends it, which the old and the new object of
/// a replacement both see (see the module comment).
pub fn object_key(kind: &str, config: &impl std::fmt::Debug) -> String {
    format!("{kind}|{config:?}").to_ascii_lowercase()
}

/// The key of a refreshed object's owed releases (its configuration is unknown at refresh):
/// its kind, scope and identity, as a taint's create finds them.
pub fn pending_key(kind: &str, scope: &str, identity_id: &str) -> String {
    format!("{kind}|{scope}|{identity_id}").to_ascii_lowercase()
}

/// Releases an object still owes: machine to the identity it attached there, and those
/// machines' unique IDs (a machine created again under the same ID is not ours).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Owed {
    pub releases: BTreeMap<String, String>,
    pub unique_ids: UniqueIds,
}

impl Owed {
    /// What `record` still owes.
    pub fn of(record: &crate::engine::record::Record) -> Owed {
        Owed {
            releases: record.pending_release.clone(),
            unique_ids: record.unique_ids.only(record.pending_release.keys()),
        }
    }
}

/// kind -> machines an object of that kind owns.
type OwnedByKind = HashMap<String, BTreeSet<String>>;

#[derive(Default)]
pub struct Handover {
    /// (scope, identity) -> kind -> machines the refreshed object owns.
    owned: Mutex<HashMap<(String, String), OwnedByKind>>,
    /// object key ([`object_key`]) -> machines the object owns, or (after its destroy in a
    /// replacement) left holding the identity for its successor.
    owned_by_object: Mutex<HashMap<String, BTreeSet<String>>>,
    /// identity -> machine -> how many live objects claim it.
    claims: Mutex<HashMap<String, HashMap<String, usize>>>,
    /// Identities that a resource planned in this process will create.
    planned_identities: Mutex<BTreeSet<String>>,
    /// (identity, machine) that a destroy or release left alone for a claiming object.
    handed_over: Mutex<BTreeSet<(String, String)>>,
    /// Releases an object still owes (machine -> an identity it attached there, see
    /// `Record::pending_release`), by object key ([`object_key`]) and by
    /// `{kind}|{scope}|{identity}` (refreshed): the create replacing it carries them in its
    /// record, which is the one Terraform hands the old object's destroy.
    pending: Mutex<HashMap<String, Owed>>,
    /// identity -> the lock its writers take in turn.
    writers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// What each object planned in this process reaches (see `PlannedReaches`).
    pub reaches: PlannedReaches,
}

/// **Planned reaches.** Every object planned in this process leaves here what it reaches
/// (identity, scope, regions, resource types): two objects of one identity over the same
/// machines each record what they attached, and one's destroy or release can take the
/// identity off a machine the other still wants. The second one planned is told.
#[derive(Default)]
pub struct PlannedReaches {
    /// Each reach planned.
    planned: Mutex<Vec<Settings>>,
    /// The reaches of the objects created and of those destroyed in this process's plan
    /// (see [`PlannedReaches::note_change`]), and the machines between them.
    moving: Mutex<Moving>,
}

/// Reaches of creates and destroys planned in one process, and the machines between them.
#[derive(Default)]
struct Moving {
    created: Vec<Settings>,
    destroyed: Vec<Settings>,
    /// Identity -> machines, lower-cased: machines an object planned here with a change
    /// keeps holding that identity (`assigned_ids` and `compliant_ids`).
    kept_by_change: MachinesByIdentity,
    /// Identity -> machines, lower-cased: machines a destroy planned here holds that
    /// identity on (it attached it).
    held_by_destroyed: MachinesByIdentity,
}

/// Lower-cased identity -> lower-cased machines. The identity is kept once: an estate's
/// plan notes every machine it covers.
type MachinesByIdentity = HashMap<String, BTreeSet<String>>;

/// Which of the two an object planned in this process is, to [`PlannedReaches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    Destroy,
}

impl PlannedReaches {
    /// Records `reach` and returns the reaches planned
    /// before it in this process that overlap it.
    ///
    /// The two halves of a replacement (`-replace`, taint) overlap: Terraform plans the
    /// object with its prior state, then again as a create. Terraform shows the create
    /// half's warnings only when it also has an error (they would repeat the first half's),
    /// so a replacement is not warned about; an object of another type with the very same
    /// reach (an estate's slice next to the `mig_identity_assignment` it replaces) must be.
    pub fn note(&self, reach: &Settings) -> Vec<Settings> {
        let mut planned = self.planned.lock().expect("handover lock");
        let overlapping = planned
            .iter()
            .filter(|other| ownership::reaches_overlap(reach, other))
            .cloned()
            .collect();
        planned.push(reach.clone());
        overlapping
    }

    /// Records that `reach` is created (`Change::Create`) or destroyed (`Change::Destroy`)
    /// in this plan, and returns the reaches planned before it with the other change that
    /// overlap it.
    ///
    /// One object destroyed and another of the same identity over the same machines created
    /// in one plan is an address changed without a `moved` block (or machines moved to
    /// another object without `removed`): Terraform does not order the destroy against the
    /// create, and each order gives a different owner (see the Lifecycle tables). The two
    /// halves of a replacement (`-replace`, taint, `create_before_destroy`) never meet here:
    /// Terraform plans the object replaced with its prior state or not at all, never as a
    /// destroy.
    pub fn note_change(&self, change: Change, reach: &Settings) -> Vec<Settings> {
        let mut guard = self.moving.lock().expect("handover lock");
        let moving = &mut *guard;
        let (mine, theirs) = match change {
            Change::Create => (&mut moving.created, &moving.destroyed),
            Change::Destroy => (&mut moving.destroyed, &moving.created),
        };
        let overlapping = theirs
            .iter()
            .filter(|other| ownership::reaches_overlap(reach, other))
            .cloned()
            .collect();
        mine.push(reach.clone());
        overlapping
    }

    /// An object planned in this process with a change (a create, or an update whose
    /// arguments or lists change) keeps `machines` holding `identity_id`.
    ///
    /// Terraform plans such an object again during apply, just before applying it, maybe
    /// after the destroy of another object that attached the identity there (an address
    /// changed without `moved`, an overlapping object removed): a destroy planned after this
    /// one leaves them holding it (see [`PlannedReaches::kept_by_change`]) and this object
    /// adopts them, or the second plan would differ from the first ("inconsistent final
    /// plan"). An object planned without a change is not applied, and adopts nothing.
    pub fn note_kept_by_change<'a>(
        &self,
        identity_id: &str,
        machines: impl IntoIterator<Item = &'a String>,
    ) {
        let mut moving = self.moving.lock().expect("handover lock");
        let kept = moving
            .kept_by_change
            .entry(identity_id.to_ascii_lowercase())
            .or_default();
        kept.extend(machines.into_iter().map(|m| m.to_ascii_lowercase()));
    }

    /// The machines of `held`, with the identity it holds there, that an object planned in
    /// this process with a change keeps holding that identity.
    pub fn kept_by_change(&self, held: &Held) -> Vec<(String, String)> {
        let moving = self.moving.lock().expect("handover lock");
        if moving.kept_by_change.is_empty() {
            return Vec::new();
        }
        held.iter()
            .filter(|(machine, identity)| {
                moving
                    .kept_by_change
                    .get(&identity.to_ascii_lowercase())
                    .is_some_and(|kept| kept.contains(machine.as_str()))
            })
            .map(|(machine, identity)| (machine.clone(), identity.clone()))
            .collect()
    }

    /// A destroy planned in this process holds what `held` says: an object planned after it
    /// that keeps one of those machines cannot know, before the apply, whether the destroy
    /// takes the identity off first (see [`PlannedReaches::any_held_by_destroyed`]).
    pub fn note_held_by_destroyed(&self, held: &Held) {
        let mut moving = self.moving.lock().expect("handover lock");
        for (machine, identity) in held.iter() {
            moving
                .held_by_destroyed
                .entry(identity.to_ascii_lowercase())
                .or_default()
                .insert(machine.clone());
        }
    }

    /// True when a destroy planned in this process holds `identity_id` on one of
    /// `machines`. Without such a destroy (the usual plan), no machine is looked at.
    pub fn any_held_by_destroyed<'a>(
        &self,
        identity_id: &str,
        machines: impl IntoIterator<Item = &'a String>,
    ) -> bool {
        let moving = self.moving.lock().expect("handover lock");
        let Some(held) = moving
            .held_by_destroyed
            .get(&identity_id.to_ascii_lowercase())
        else {
            return false;
        };
        machines
            .into_iter()
            .any(|machine| held.contains(&machine.to_ascii_lowercase()))
    }
}

impl Handover {
    /// An existing object of `kind` (refreshed or planned with its prior state) owns
    /// `machines` (empty is recorded too: it owns nothing).
    pub fn record_owned(
        &self,
        kind: &str,
        scope: &str,
        identity_id: &str,
        machines: &BTreeSet<String>,
    ) {
        self.owned
            .lock()
            .expect("handover lock")
            .entry(key(scope, identity_id))
            .or_default()
            .insert(kind.to_string(), machines.clone());
    }

    /// What a new object of `kind` with this scope and identity takes over: what an object of
    /// its own kind with the same scope and identity owns; when none was recorded, what
    /// objects of other kinds own (one `mig_identity_assignment` per subscription and region
    /// moved to `mig_estate_assignment`). Empty when there is none.
    pub fn owned_by_predecessor(
        &self,
        kind: &str,
        scope: &str,
        identity_id: &str,
    ) -> BTreeSet<String> {
        let owned = self.owned.lock().expect("handover lock");
        let Some(by_kind) = owned.get(&key(scope, identity_id)) else {
            return BTreeSet::new();
        };
        match by_kind.get(kind) {
            Some(machines) => machines.clone(),
            None => by_kind.values().flatten().cloned().collect(),
        }
    }

    /// The object with this key ([`object_key`]) owns `machines` (a destroy: left them
    /// holding the identity for the object replacing it). Empty forgets the record.
    pub fn record_owned_by(&self, object: &str, machines: &BTreeSet<String>) {
        let mut owned = self.owned_by_object.lock().expect("handover lock");
        if machines.is_empty() {
            owned.remove(object);
        } else {
            owned.insert(object.to_string(), machines.clone());
        }
    }

    /// What a new object with this key takes over: what [`Handover::record_owned_by`] last
    /// recorded under it. Empty when there is none.
    pub fn owned_by_object(&self, object: &str) -> BTreeSet<String> {
        self.owned_by_object
            .lock()
            .expect("handover lock")
            .get(object)
            .cloned()
            .unwrap_or_default()
    }

    /// The object with this key ([`object_key`]), or (refreshed, its configuration unknown)
    /// the object of `kind`, `scope` and `identity_id` ([`pending_key`]), still owes these
    /// releases. No releases forgets the record.
    pub fn record_pending(&self, key: &str, owed: &Owed) {
        let mut records = self.pending.lock().expect("handover lock");
        if owed.releases.is_empty() {
            records.remove(key);
        } else {
            records.insert(key.to_string(), owed.clone());
        }
    }

    /// The releases recorded under `key` by [`Handover::record_pending`]: a create replacing
    /// that object carries them, so that the old object's destroy, handed the create's
    /// record, still makes them. Empty when there is none.
    pub fn pending_of(&self, key: &str) -> Owed {
        self.pending
            .lock()
            .expect("handover lock")
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// A create or update finished: these machines must keep `identity_id`.
    pub fn claim<'a>(&self, identity_id: &str, machines: impl IntoIterator<Item = &'a String>) {
        let mut claims = self.claims.lock().expect("handover lock");
        let by_machine = claims.entry(identity_id.to_ascii_lowercase()).or_default();
        for machine in machines {
            *by_machine.entry(machine.to_ascii_lowercase()).or_default() += 1;
        }
    }

    /// True when a live object in this process wants `machine_id` to keep `identity_id`.
    pub fn is_claimed(&self, identity_id: &str, machine_id: &str) -> bool {
        self.claims
            .lock()
            .expect("handover lock")
            .get(&identity_id.to_ascii_lowercase())
            .is_some_and(|by_machine| by_machine.contains_key(&machine_id.to_ascii_lowercase()))
    }
}

impl Handover {
    /// Waits for the turn to change which machines hold `identity_id`; the turn ends when
    /// the guard is dropped.
    pub async fn writing(&self, identity_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .writers
            .lock()
            .expect("handover lock")
            .entry(identity_id.trim_end_matches('/').to_ascii_lowercase())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// A destroy or release left `machine_id` holding `identity_id` because another object
    /// claims it: that object may record it as its own.
    pub fn hand_over(&self, identity_id: &str, machine_id: &str) {
        self.handed_over
            .lock()
            .expect("handover lock")
            .insert(key(identity_id, machine_id));
    }

    /// True (once) when `machine_id` was handed over with `identity_id`.
    pub fn take_handed_over(&self, identity_id: &str, machine_id: &str) -> bool {
        self.handed_over
            .lock()
            .expect("handover lock")
            .remove(&key(identity_id, machine_id))
    }

    /// A resource in this run plans to create the identity `id`.
    pub fn note_planned_identity(&self, id: &str) {
        self.planned_identities
            .lock()
            .expect("handover lock")
            .insert(id.to_ascii_lowercase());
    }

    /// The identity `id` was just seen to exist (listed with its resource group's others):
    /// the checks that a planned one skips, it skips too.
    pub fn note_existing_identity(&self, id: &str) {
        self.note_planned_identity(id);
    }

    /// True when a resource in this run plans to create the identity `id`, or it was just
    /// seen to exist.
    pub fn is_planned_identity(&self, id: &str) -> bool {
        self.planned_identities
            .lock()
            .expect("handover lock")
            .contains(&id.trim_end_matches('/').to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_object_takes_over_what_its_predecessor_owned() {
        let handover = Handover::default();
        let machines = BTreeSet::from(["/subscriptions/s/vm1".to_string()]);
        handover.record_owned("a", "/subscriptions/S", "/ID", &machines);
        assert_eq!(
            handover.owned_by_predecessor("a", "/subscriptions/s", "/id"),
            machines
        );
        assert!(handover
            .owned_by_predecessor("a", "/subscriptions/other", "/id")
            .is_empty());
        handover.record_owned("a", "/subscriptions/s", "/id", &BTreeSet::new());
        assert!(handover
            .owned_by_predecessor("a", "/subscriptions/s", "/id")
            .is_empty());
    }

    #[test]
    fn kinds_keep_their_own_records_and_a_new_kind_finds_the_others() {
        let handover = Handover::default();
        let machines = BTreeSet::from(["/vm1".to_string()]);
        handover.record_owned("assignment", "/s", "/id", &machines);
        handover.record_owned("slice", "/s", "/id", &BTreeSet::new());
        assert_eq!(
            handover.owned_by_predecessor("assignment", "/s", "/id"),
            machines
        );
        assert!(
            handover
                .owned_by_predecessor("slice", "/s", "/id")
                .is_empty(),
            "a slice that owns nothing takes nothing over"
        );
        assert_eq!(
            handover.owned_by_predecessor("new kind", "/s", "/id"),
            machines,
            "a kind with no record of its own finds the others' (moved between kinds)"
        );
    }

    #[test]
    fn records_by_object_do_not_mix_kinds_or_configurations() {
        let handover = Handover::default();
        let mine = BTreeSet::from(["/vm1".to_string()]);
        let slice = object_key("slice", &"same config");
        let standalone = object_key("mig_identity_assignment", &"same config");
        assert_ne!(slice, standalone, "an estate's slice is not an assignment");
        handover.record_owned_by(&standalone, &mine);
        handover.record_owned_by(&slice, &BTreeSet::new());
        assert_eq!(handover.owned_by_object(&standalone), mine);
        assert!(handover.owned_by_object(&slice).is_empty());
        assert!(handover
            .owned_by_object(&object_key("mig_identity_assignment", &"other"))
            .is_empty());
        handover.record_owned_by(&standalone, &BTreeSet::new());
        assert!(handover.owned_by_object(&standalone).is_empty());
    }

    #[test]
    fn owed_releases_are_found_by_their_key_and_forgotten_when_empty() {
        let handover = Handover::default();
        let record = crate::engine::record::Record {
            pending_release: BTreeMap::from([("/vm1".to_string(), "/id/b".to_string())]),
            unique_ids: [("/vm1", "u1"), ("/vm2", "u2")].into_iter().collect(),
            ..Default::default()
        };
        let owed = Owed::of(&record);
        assert_eq!(
            owed.unique_ids.len(),
            1,
            "only the unique IDs of the machines owed"
        );
        assert!(owed.unique_ids.of("/VM1").is_some());
        let key = pending_key("a", "/S", "/ID/A");
        handover.record_pending(&key, &owed);
        assert_eq!(handover.pending_of(&pending_key("a", "/s", "/id/a")), owed);
        assert_eq!(
            handover.pending_of(&pending_key("b", "/s", "/id/a")),
            Owed::default()
        );
        handover.record_pending(&key, &Owed::default());
        assert_eq!(handover.pending_of(&key), Owed::default());
    }

    #[tokio::test]
    async fn writers_of_one_identity_take_turns() {
        let handover = Handover::default();
        let first = handover.writing("/ID").await;
        let other_identity = handover.writing("/other").await;
        assert!(
            tokio::time::timeout(
                std::time::Duration::from_millis(20),
                handover.writing("/id/")
            )
            .await
            .is_err(),
            "the same identity waits"
        );
        drop(first);
        drop(other_identity);
        let _again = handover.writing("/id").await;
    }

    #[test]
    fn a_handed_over_machine_is_taken_once() {
        let handover = Handover::default();
        handover.hand_over("/ID", "/VM");
        assert!(handover.take_handed_over("/id", "/vm"));
        assert!(!handover.take_handed_over("/id", "/vm"));
    }

    #[test]
    fn planned_identities_are_found_in_any_spelling() {
        let handover = Handover::default();
        handover.note_planned_identity("/Sub/RG/ID");
        assert!(handover.is_planned_identity("/sub/rg/id/"));
        assert!(!handover.is_planned_identity("/sub/rg/other"));
    }

    #[test]
    fn claims_are_per_identity_and_case_insensitive() {
        let handover = Handover::default();
        let vm = "/subscriptions/s/VM1".to_string();
        handover.claim("/ID/A", [&vm]);
        assert!(handover.is_claimed("/id/a", "/subscriptions/S/vm1"));
        assert!(!handover.is_claimed("/id/b", "/subscriptions/s/vm1"));
        assert!(!handover.is_claimed("/id/a", "/subscriptions/s/vm2"));
    }

    fn reach(scope: &str, identity: &str, regions: Option<&[&str]>) -> Settings {
        Settings {
            identity_id: identity.into(),
            scope: crate::azure::ids::Scope::parse(scope).unwrap(),
            locations: regions.map(|r| r.iter().map(|s| s.to_string()).collect()),
            kinds: vec![crate::azure::compute::MachineKind::VirtualMachine],
            rules: crate::policy::Rules::default(),
            mode: ownership::Mode::Enforce,
            adopt: false,
        }
    }

    #[test]
    fn overlapping_reaches_are_reported_to_the_one_planned_second() {
        let sub = "/subscriptions/00000000-0000-0000-0000-000000000001";
        let group = format!("{sub}/resourceGroups/a");
        let id = format!("{sub}/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one");
        let reaches = PlannedReaches::default();
        assert!(reaches.note(&reach(sub, &id, Some(&["eastus"]))).is_empty());
        // Another region of the same identity: no overlap.
        assert!(reaches.note(&reach(sub, &id, Some(&["westus"]))).is_empty());
        // A group inside the subscription, every region: overlaps both.
        assert_eq!(reaches.note(&reach(&group, &id, None)).len(), 2);

        // The same reach planned again as a create (another object, or the second half of a
        // replacement, whose warnings Terraform does not show) is told.
        let same = PlannedReaches::default();
        assert!(same.note(&reach(&group, &id, None)).is_empty());
        assert_eq!(same.note(&reach(&group, &id, None)).len(), 1);
    }

    #[test]
    fn what_changes_keep_and_destroys_hold_is_found_by_identity_and_machine() {
        let reaches = PlannedReaches::default();
        let (vm1, vm2) = (
            "/subscriptions/s/VM1".to_string(),
            "/subscriptions/s/vm2".to_string(),
        );
        let mut held = Held::new("/ID/A", [&vm1]);
        held.add("/id/b", [&vm2]);
        assert!(reaches.kept_by_change(&held).is_empty(), "nothing kept yet");
        reaches.note_kept_by_change("/id/a", [&"/subscriptions/S/vm1".to_string()]);
        reaches.note_kept_by_change("/id/a", [&vm2]);
        assert_eq!(
            reaches.kept_by_change(&held),
            [("/subscriptions/s/vm1".to_string(), "/ID/A".to_string())],
            "vm2 is kept with another identity than the one held there"
        );
        assert!(!reaches.any_held_by_destroyed("/id/a", [&vm1]));

        reaches.note_held_by_destroyed(&held);
        assert!(reaches.any_held_by_destroyed("/id/a", [&vm2, &"/subscriptions/S/Vm1".to_string()]));
        assert!(reaches.any_held_by_destroyed("/ID/B", [&vm2]));
        assert!(!reaches.any_held_by_destroyed("/id/b", [&vm1]));
        assert!(!reaches.any_held_by_destroyed("/id/c", [&vm1, &vm2]));
    }

    #[test]
    fn a_destroy_and_a_create_over_the_same_machines_are_reported_in_either_order() {
        let sub = "/subscriptions/00000000-0000-0000-0000-000000000001";
        let group = format!("{sub}/resourceGroups/a");
        let id = format!("{sub}/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one");
        let other = format!("{sub}/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/two");
        let scopes = |reaches: Vec<Settings>| {
            reaches
                .iter()
                .map(|reach| reach.scope.to_string())
                .collect::<Vec<_>>()
        };

        // Destroy planned first: the create is told.
        let reaches = PlannedReaches::default();
        assert!(reaches
            .note_change(Change::Destroy, &reach(sub, &id, None))
            .is_empty());
        assert_eq!(
            scopes(reaches.note_change(Change::Create, &reach(&group, &id, None))),
            [sub]
        );

        // Create planned first: the destroy is told.
        let reaches = PlannedReaches::default();
        assert!(reaches
            .note_change(Change::Create, &reach(&group, &id, None))
            .is_empty());
        assert_eq!(
            scopes(reaches.note_change(Change::Destroy, &reach(sub, &id, None))),
            [group.as_str()]
        );

        // Two creates are not a move, nor are two destroys.
        let reaches = PlannedReaches::default();
        assert!(reaches
            .note_change(Change::Create, &reach(sub, &id, None))
            .is_empty());
        assert!(reaches
            .note_change(Change::Create, &reach(&group, &id, None))
            .is_empty());
        let reaches = PlannedReaches::default();
        assert!(reaches
            .note_change(Change::Destroy, &reach(sub, &id, None))
            .is_empty());
        assert!(reaches
            .note_change(Change::Destroy, &reach(&group, &id, None))
            .is_empty());

        // Another identity, or other regions, reach other machines.
        let reaches = PlannedReaches::default();
        assert!(reaches
            .note_change(Change::Create, &reach(sub, &id, Some(&["eastus"])))
            .is_empty());
        assert!(reaches
            .note_change(Change::Destroy, &reach(sub, &other, None))
            .is_empty());
        assert!(reaches
            .note_change(Change::Destroy, &reach(sub, &id, Some(&["westus"])))
            .is_empty());
    }
}
