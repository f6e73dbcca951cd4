//! The assignment engine: which machines an assignment attaches its identity to, what it
//! owns, and how ownership crosses between objects. No Terraform types and no HTTP here:
//! the resources (`crate::resources`) adapt Terraform's requests to it, and the machines are
//! read and written through [`store::MachineStore`], which the Azure client implements.
//!
//! The shape of every operation is: list the machines (through the store), decide (pure,
//! [`ownership`], [`policy`], [`converge`]), write (through the store, [`write`]), record
//! (pure, [`record`]). See docs/engine.md.

pub mod assignment;
pub mod converge;
pub mod destroy;
pub mod handover;
pub mod list;
#[cfg(test)]
mod model_tests;
pub mod notes;
pub mod ownership;
pub mod plan;
pub mod policy;
pub mod record;
pub mod slice;
pub mod store;
pub mod unique_ids;
pub mod write;
