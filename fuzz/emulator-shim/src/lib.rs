//! The emulator's ARM handlers, compiled from `emulator/src` as they are: each module is
//! declared by path at this crate's root, so their `crate::` paths resolve as in the binary.
//! Left out: the HTTPS server loop, TLS, token endpoints, Graph, the admin API and `main`.
//! When the emulator gains a module its ARM handlers use, add it here.
#![allow(dead_code, unused_imports, clippy::all)]

#[path = "../../../emulator/src/app.rs"]
pub mod app;
#[path = "../../../emulator/src/arm/mod.rs"]
pub mod arm;
#[path = "../../../emulator/src/authz.rs"]
pub mod authz;
#[path = "../../../emulator/src/hierarchy.rs"]
pub mod hierarchy;
#[path = "../../../emulator/src/http.rs"]
pub mod http;
#[path = "../../../emulator/src/jwt.rs"]
pub mod jwt;
#[path = "../../../emulator/src/model.rs"]
pub mod model;
#[path = "../../../emulator/src/realism.rs"]
pub mod realism;
#[path = "../../../emulator/src/scenario.rs"]
pub mod scenario;
#[path = "../../../emulator/src/util.rs"]
pub mod util;
