//! Throttling (ARM token buckets, Compute's update limits) and injected faults.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::Realism;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Read,
    Write,
    Delete,
}

impl Category {
    pub fn of(method: &hyper::Method) -> Category {
        match *method {
            hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS => Category::Read,
            hyper::Method::DELETE => Category::Delete,
            _ => Category::Write,
        }
    }
    pub fn header(self) -> &'static str {
        match self {
            Category::Read => "x-ms-ratelimit-remaining-subscription-reads",
            Category::Write => "x-ms-ratelimit-remaining-subscription-writes",
            Category::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }
    pub fn word(self) -> &'static str {
        match self {
            Category::Read => "read",
            Category::Write => "write",
            Category::Delete => "delete",
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, cap: f64, rate: f64, now: Instant) {
        let dt = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(cap);
        self.last = now;
    }
}

/// The outcome of charging a bucket.
pub struct Charge {
    pub allowed: bool,
    pub remaining: u64,
    /// Seconds until one token is back (when refused).
    pub retry_after: u64,
}

#[derive(Default)]
pub struct Limiter {
    arm: Mutex<HashMap<(String, String, Category), Bucket>>,
    compute: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    /// Charges the ARM bucket for (subscription, principal, category).
    pub fn charge_arm(&self, r: &Realism, sub: &str, principal: &str, cat: Category) -> Charge {
        let (cap, rate) = match cat {
            Category::Read => (r.read_bucket, r.read_refill_per_sec),
            Category::Write => (r.write_bucket, r.write_refill_per_sec),
            Category::Delete => (r.delete_bucket, r.delete_refill_per_sec),
        };
        let rate = rate * r.time_scale;
        let now = Instant::now();
        let mut map = self.arm.lock();
        let b = map
            .entry((sub.to_string(), principal.to_string(), cat))
            .or_insert(Bucket {
                tokens: cap,
                last: now,
            });
        take(b, cap, rate, now, r.throttling)
    }

    /// Charges Compute's per-VM and per-subscription update buckets.
    pub fn charge_compute_update(&self, r: &Realism, sub: &str, vm_key: &str) -> (Charge, Charge) {
        let now = Instant::now();
        let mut map = self.compute.lock();
        let per_vm_cap = r.compute_per_vm_updates_per_min.max(1.0);
        let per_vm_rate = per_vm_cap / 60.0 * r.time_scale;
        let sub_cap = r.compute_vm_updates_per_subscription_per_min.max(1.0);
        let sub_rate = sub_cap / 60.0 * r.time_scale;
        let vm = {
            let b = map.entry(format!("vm:{vm_key}")).or_insert(Bucket {
                tokens: per_vm_cap,
                last: now,
            });
            b.refill(per_vm_cap, per_vm_rate, now);
            peek(b, per_vm_rate)
        };
        let sb = {
            let b = map.entry(format!("sub:{sub}")).or_insert(Bucket {
                tokens: sub_cap,
                last: now,
            });
            b.refill(sub_cap, sub_rate, now);
            peek(b, sub_rate)
        };
        if !r.throttling || (vm.allowed && sb.allowed) {
            for k in [format!("vm:{vm_key}"), format!("sub:{sub}")] {
                if let Some(b) = map.get_mut(&k) {
                    b.tokens = (b.tokens - 1.0).max(0.0);
                }
            }
            let dec = |c: Charge| Charge {
                allowed: true,
                remaining: c.remaining.saturating_sub(1),
                retry_after: 0,
            };
            return (dec(vm), dec(sb));
        }
        (vm, sb)
    }

    pub fn reset(&self) {
        self.arm.lock().clear();
        self.compute.lock().clear();
    }
}

fn peek(b: &Bucket, rate: f64) -> Charge {
    let allowed = b.tokens >= 1.0;
    Charge {
        allowed,
        remaining: b.tokens.floor().max(0.0) as u64,
        retry_after: if allowed {
            0
        } else {
            (((1.0 - b.tokens) / rate.max(1e-9)).ceil() as u64).max(1)
        },
    }
}

fn take(b: &mut Bucket, cap: f64, rate: f64, now: Instant, enforce: bool) -> Charge {
    b.refill(cap, rate, now);
    if b.tokens >= 1.0 || !enforce {
        b.tokens = (b.tokens - 1.0).max(0.0);
        Charge {
            allowed: true,
            remaining: b.tokens.floor() as u64,
            retry_after: 0,
        }
    } else {
        Charge {
            allowed: false,
            remaining: 0,
            retry_after: (((1.0 - b.tokens) / rate.max(1e-9)).ceil() as u64).max(1),
        }
    }
}

/// A fault rule injected through `POST /_emulator/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    #[serde(default)]
    pub id: String,
    /// `status`, `drop_connection`, `delay`, `concurrent_write`, `strip_etag`.
    pub kind: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Remaining applications; absent = unlimited.
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_contains: Option<String>,
    #[serde(default)]
    pub ms: Option<u64>,
    /// Error code for `status` faults (default by status).
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// For `concurrent_write`: the tag set on the resource (default `concurrentWriter`).
    #[serde(default)]
    pub tag: Option<String>,
    /// For `concurrent_write`: an identity resource id the other writer assigns.
    #[serde(default)]
    pub add_identity: Option<String>,
    /// For `status`: the body sent as it is (`content-type: application/json`) in place of
    /// an ARM error body, such as a 200 whose body is not JSON or has no `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// For `status`, `drop_connection` and `concurrent_write`: act after the request was
    /// served (and committed) instead of before. A `status` or `drop_connection` fault then
    /// loses the answer to a write Azure applied; a `concurrent_write` fault lands right after
    /// it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_commit: bool,
    #[serde(default)]
    pub hits: u64,
}

impl Fault {
    pub fn matches(&self, method: &str, path_and_query: &str) -> bool {
        if self.count == Some(0) {
            return false;
        }
        if let Some(m) = &self.method {
            if !m.eq_ignore_ascii_case(method) {
                return false;
            }
        }
        if let Some(p) = &self.path_contains {
            if !path_and_query
                .to_ascii_lowercase()
                .contains(&p.to_ascii_lowercase())
            {
                return false;
            }
        }
        true
    }
}

#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Fault>>,
}

impl Faults {
    pub fn add(&self, mut f: Fault) -> Result<Fault, String> {
        match f.kind.as_str() {
            "status" => {
                if f.status.is_none() {
                    return Err("a status fault needs `status`".into());
                }
            }
            "drop_connection" | "concurrent_write" => {}
            "hide_from_listing" => {
                if f.path_contains.is_none() {
                    return Err("a hide_from_listing fault needs `path_contains`".into());
                }
            }
            "strip_etag" => {
                if f.after_commit {
                    return Err("`after_commit` applies to status, drop_connection and concurrent_write faults, not strip_etag".into());
                }
            }
            "delay" => {
                if f.ms.is_none() {
                    return Err("a delay fault needs `ms`".into());
                }
                if f.after_commit {
                    return Err("`after_commit` applies to status, drop_connection and concurrent_write faults, not delay".into());
                }
            }
            other => return Err(format!("unknown fault kind '{other}'")),
        }
        if f.id.is_empty() {
            f.id = crate::util::guid();
        }
        self.rules.lock().push(f.clone());
        Ok(f)
    }

    pub fn clear(&self) {
        self.rules.lock().clear();
    }

    pub fn list(&self) -> Value {
        serde_json::to_value(&*self.rules.lock()).unwrap_or(Value::Null)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.lock().is_empty()
    }

    /// The `path_contains` of every `hide_from_listing` rule, lower-cased: resources whose
    /// ID contains one are left out of listings (as if the caller could not read them) but
    /// still answer a GET by their own ID.
    pub fn hidden_from_listing(&self) -> Vec<String> {
        self.rules
            .lock()
            .iter()
            .filter(|f| f.kind == "hide_from_listing")
            .filter_map(|f| f.path_contains.as_ref().map(|p| p.to_ascii_lowercase()))
            .collect()
    }

    /// Takes the first matching rule of a kind (decrementing its count).
    pub fn take_first(&self, method: &str, path: &str, kind: &str) -> Vec<Fault> {
        let mut rules = self.rules.lock();
        for f in rules.iter_mut() {
            if f.kind == kind && f.matches(method, path) {
                if let Some(c) = f.count.as_mut() {
                    *c -= 1;
                }
                f.hits += 1;
                return vec![f.clone()];
            }
        }
        Vec::new()
    }

    /// Takes every matching rule of the given kinds (decrementing counts).
    pub fn take(&self, method: &str, path: &str, kinds: &[&str]) -> Vec<Fault> {
        let mut rules = self.rules.lock();
        let mut out = Vec::new();
        for f in rules.iter_mut() {
            if kinds.contains(&f.kind.as_str()) && f.matches(method, path) {
                if let Some(c) = f.count.as_mut() {
                    *c -= 1;
                }
                f.hits += 1;
                out.push(f.clone());
            }
        }
        out
    }
}
