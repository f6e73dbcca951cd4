//! A client-side mirror of ARM's throttling buckets, so a large apply keeps the bucket busy
//! without running into 429s.
//!
//! ARM gives each principal, per subscription, a bucket per request category (reads,
//! writes, deletes) and reports after every response how many requests are left
//! (`x-ms-ratelimit-remaining-subscription-*`). The mirror starts from the latest report,
//! subtracts the requests sent since the reported one, adds the refill since, and lets a
//! request go only while that estimate stays above a small reserve. The refill rate is not
//! assumed: it is measured from successive reports while the bucket is low (ARM documents
//! 25 reads and 10 writes or deletes per second; the emulator's time scale multiplies them),
//! starting from the documented rates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::time::Instant;

/// The bucket a request draws from, in ARM's throttling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Reads,
    Writes,
    Deletes,
}

impl Bucket {
    pub fn of(method: &reqwest::Method) -> Bucket {
        match *method {
            reqwest::Method::GET | reqwest::Method::HEAD => Bucket::Reads,
            reqwest::Method::DELETE => Bucket::Deletes,
            _ => Bucket::Writes,
        }
    }

    fn header(self) -> &'static str {
        match self {
            Bucket::Reads => "x-ms-ratelimit-remaining-subscription-reads",
            Bucket::Writes => "x-ms-ratelimit-remaining-subscription-writes",
            Bucket::Deletes => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }

    /// ARM's documented refill, the estimate until one is measured.
    fn documented_refill_per_second(self) -> f64 {
        match self {
            Bucket::Reads => 25.0,
            Bucket::Writes | Bucket::Deletes => 10.0,
        }
    }
}

/// Requests kept in hand so that estimation errors do not turn into 429s.
const RESERVE: f64 = 2.0;

/// Below this many remaining requests the bucket is "low": reports then show the refill
/// rate (above it, they may be capped by the bucket's size).
const LOW_WATER: u64 = 50;

/// The shortest window over which a refill rate is measured. Answers to requests sent before
/// a window may arrive inside it, so a window must be long against the requests in flight.
const MIN_SAMPLE_WINDOW: Duration = Duration::from_secs(1);

/// Requests sent before the first answer says how full the bucket is.
const UNREPORTED_IN_FLIGHT: u64 = 4;

/// How far one measurement may move the estimate (a factor either way): a distorted window
/// must not turn into a burst of 429s.
const MAX_STEP: f64 = 2.0;

/// What a 429 does to the estimate: it proves the estimate was too high.
const THROTTLED_BACKOFF: f64 = 0.7;

#[derive(Debug, Clone, Copy)]
struct Report {
    /// What is believed left (see `answered`).
    remaining: u64,
    /// What ARM said, for measuring the refill.
    reported: u64,
    at: Instant,
    /// Requests ARM had accepted (answered with anything but 429) when this report came.
    accepted: u64,
}

#[derive(Debug)]
struct BucketMirror {
    /// Sent and not answered yet. Each may or may not be counted in the latest report; it
    /// is counted against what is available, which errs on the side of waiting.
    in_flight: u64,
    accepted: u64,
    latest: Option<Report>,
    /// Start of the current refill measurement (a report taken while the bucket was low).
    sample_start: Option<Report>,
    refill_per_second: f64,
    /// The estimate never drops below this, however many 429s come.
    min_refill_per_second: f64,
    /// Set by a 429: nothing goes before this instant.
    blocked_until: Option<Instant>,
    /// Answers that carried no remaining count: a service that reports none (Graph) is not
    /// held to the few requests that wait for the first report.
    unreported_answers: u64,
}

impl BucketMirror {
    fn new(bucket: Bucket) -> BucketMirror {
        BucketMirror {
            in_flight: 0,
            accepted: 0,
            latest: None,
            sample_start: None,
            refill_per_second: bucket.documented_refill_per_second(),
            // ARM refills at least at its documented rate; a lower estimate only idles.
            min_refill_per_second: bucket.documented_refill_per_second(),
            blocked_until: None,
            unreported_answers: 0,
        }
    }

    /// Takes a slot now, or says how long to wait before asking again.
    fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.blocked_until {
            if until > now {
                return Err(until - now);
            }
            self.blocked_until = None;
        }
        match self.latest {
            Some(report) => {
                let available = self.predicted_remaining(report, now) - self.in_flight as f64;
                if available < RESERVE + 1.0 {
                    let missing = RESERVE + 1.0 - available;
                    return Err(Duration::from_secs_f64(missing / self.refill_per_second)
                        .max(Duration::from_millis(1)));
                }
            }
            // Nothing known of the bucket yet: a few requests find out before the rest go.
            None if self.in_flight >= UNREPORTED_IN_FLIGHT
                && self.unreported_answers < UNREPORTED_IN_FLIGHT =>
            {
                return Err(Duration::from_millis(5));
            }
            None => {}
        }
        self.in_flight += 1;
        Ok(())
    }

    /// What `report` says is left now, with the refill since it came.
    fn predicted_remaining(&self, report: Report, now: Instant) -> f64 {
        report.remaining as f64 + self.refill_per_second * (now - report.at).as_secs_f64()
    }

    fn answered(&mut self, throttled: bool, remaining: Option<u64>, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if !throttled {
            self.accepted += 1;
        }
        let Some(reported) = remaining else {
            self.unreported_answers += 1;
            return;
        };
        // Answers overtake each other: one that left the server earlier may report more than
        // is left now. More than the refill since the latest report is not believed.
        let remaining = match self.latest {
            Some(latest) => reported.min(self.predicted_remaining(latest, now).ceil() as u64),
            None => reported,
        };
        let report = Report {
            remaining,
            reported,
            at: now,
            accepted: self.accepted,
        };
        self.latest = Some(report);
        if reported >= LOW_WATER {
            self.sample_start = None;
            return;
        }
        match self.sample_start {
            None => self.sample_start = Some(report),
            Some(start) if now - start.at >= MIN_SAMPLE_WINDOW => {
                let spent = (report.accepted - start.accepted) as f64;
                let refilled = reported as f64 - start.reported as f64 + spent;
                let measured = (refilled / (now - start.at).as_secs_f64()).clamp(
                    self.refill_per_second / MAX_STEP,
                    self.refill_per_second * MAX_STEP,
                );
                self.refill_per_second =
                    ((self.refill_per_second + measured) / 2.0).max(self.min_refill_per_second);
                self.sample_start = Some(report);
            }
            Some(_) => {}
        }
    }
}

type Mirrors = Arc<Mutex<HashMap<(String, Bucket), BucketMirror>>>;

/// Held by the one waiter of a bucket that sleeps for its next slot.
type Gate = Arc<tokio::sync::Mutex<()>>;

/// A request admitted to a bucket. Report its answer with [`Pacer::observe`]; dropped
/// unanswered (a connection error, a cancelled apply) it just stops counting as in flight.
#[derive(Debug)]
pub struct Ticket {
    mirrors: Mirrors,
    key: (String, Bucket),
    answered: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.answered {
            if let Some(mirror) = self.mirrors.lock().expect("pacer lock").get_mut(&self.key) {
                mirror.in_flight = mirror.in_flight.saturating_sub(1);
            }
        }
    }
}

/// Paces requests per subscription and bucket (see the module documentation).
#[derive(Debug, Default)]
pub struct Pacer {
    mirrors: Mirrors,
    gates: Mutex<HashMap<(String, Bucket), Gate>>,
}

impl Pacer {
    /// Waits until the request may go. `subscription` is "" for tenant-level requests.
    pub async fn acquire(&self, subscription: &str, bucket: Bucket) -> Ticket {
        let key = (subscription.to_ascii_lowercase(), bucket);
        // One waiter per bucket sleeps for the next slot; the rest queue behind it in order,
        // without timers. Each asking for itself, an estate's thousands of queued writes all
        // woke at every refill and all but one slept again: most of the apply's CPU went to
        // timers, on cores the listing and Terraform need.
        let gate = self
            .gates
            .lock()
            .expect("pacer gates lock")
            .entry(key.clone())
            .or_default()
            .clone();
        let _turn = gate.lock().await;
        loop {
            let attempt = {
                let mut mirrors = self.mirrors.lock().expect("pacer lock");
                mirrors
                    .entry(key.clone())
                    .or_insert_with(|| BucketMirror::new(bucket))
                    .try_take(Instant::now())
            };
            match attempt {
                Ok(()) => {
                    return Ticket {
                        mirrors: self.mirrors.clone(),
                        key,
                        answered: false,
                    }
                }
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Records what the answer to `ticket`'s request says about the bucket: the remaining
    /// count, and for a 429 how long ARM wants us to wait.
    pub fn observe(&self, mut ticket: Ticket, status: u16, headers: &HeaderMap) {
        ticket.answered = true;
        let now = Instant::now();
        let mut mirrors = self.mirrors.lock().expect("pacer lock");
        let Some(mirror) = mirrors.get_mut(&ticket.key) else {
            return;
        };
        let throttled = status == 429;
        // One burst often draws several 429s at once: they count as one lesson.
        let already_blocked = mirror.blocked_until.is_some_and(|until| until > now);
        if throttled && !already_blocked {
            mirror.refill_per_second =
                (mirror.refill_per_second * THROTTLED_BACKOFF).max(mirror.min_refill_per_second);
            mirror.sample_start = None;
        }
        if throttled {
            let wait = retry_after(headers).unwrap_or(Duration::from_secs(1));
            let until = now + wait;
            mirror.blocked_until = Some(mirror.blocked_until.map_or(until, |u| u.max(until)));
        }
        let remaining = headers
            .get(ticket.key.1.header())
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.trim().parse::<u64>().ok());
        mirror.answered(throttled, remaining, now);
    }

    #[cfg(test)]
    fn refill_estimate(&self, subscription: &str, bucket: Bucket) -> f64 {
        self.mirrors.lock().unwrap()[&(subscription.to_string(), bucket)].refill_per_second
    }

    #[cfg(test)]
    fn in_flight(&self, subscription: &str, bucket: Bucket) -> u64 {
        self.mirrors.lock().unwrap()[&(subscription.to_string(), bucket)].in_flight
    }
}

/// The subscription a request URL is about, "" when it names none.
pub fn subscription_of(url: &url::Url) -> &str {
    subscription_in_path(url.path())
}

/// The subscription an ARM path or resource ID names (`/subscriptions/{id}/...`), "" when it
/// names none: what requests are paced by, and machine writes take turns by.
pub fn subscription_in_path(path: &str) -> &str {
    let mut segments = path.split('/');
    while let Some(segment) = segments.next() {
        if segment.eq_ignore_ascii_case("subscriptions") {
            return segments.next().unwrap_or("");
        }
    }
    ""
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get("retry-after")?.to_str().ok()?;
    if let Ok(seconds) = text.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date =
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc2822)
            .ok()?;
    let wait = date - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    /// ARM's side of one bucket, on tokio's paused clock.
    struct ServerBucket {
        capacity: f64,
        tokens: f64,
        refill_per_second: f64,
        last: Instant,
    }

    impl ServerBucket {
        fn new(capacity: f64, refill_per_second: f64) -> ServerBucket {
            ServerBucket {
                capacity,
                tokens: capacity,
                refill_per_second,
                last: Instant::now(),
            }
        }

        /// Serves one request: its status and the remaining count ARM reports.
        fn serve(&mut self) -> (u16, u64) {
            let now = Instant::now();
            self.tokens = (self.tokens + self.refill_per_second * (now - self.last).as_secs_f64())
                .min(self.capacity);
            self.last = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                (200, self.tokens.floor() as u64)
            } else {
                (429, 0)
            }
        }
    }

    fn report(remaining: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-ms-ratelimit-remaining-subscription-writes",
            HeaderValue::from_str(&remaining.to_string()).unwrap(),
        );
        headers.insert("retry-after", HeaderValue::from_static("1"));
        headers
    }

    /// Sends `total` writes with `concurrency` in flight, each taking `latency`, against a
    /// bucket refilled at `refill` per second. Returns (elapsed, 429s).
    async fn drive(
        total: usize,
        concurrency: usize,
        refill: f64,
        latency: Duration,
    ) -> (Duration, usize) {
        let pacer = std::sync::Arc::new(Pacer::default());
        let server = std::sync::Arc::new(Mutex::new(ServerBucket::new(200.0, refill)));
        let started = Instant::now();
        let throttled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let (pacer, server, throttled, done) = (
                pacer.clone(),
                server.clone(),
                throttled.clone(),
                done.clone(),
            );
            workers.push(tokio::spawn(async move {
                while done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < total {
                    loop {
                        let ticket = pacer.acquire("s1", Bucket::Writes).await;
                        let (status, remaining) = server.lock().unwrap().serve();
                        tokio::time::sleep(latency).await;
                        pacer.observe(ticket, status, &report(remaining));
                        if status == 200 {
                            break;
                        }
                        throttled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }));
        }
        for worker in workers {
            worker.await.unwrap();
        }
        (
            started.elapsed(),
            throttled.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn documented_rate_runs_at_the_bucket_bound_with_few_429s() {
        let (elapsed, throttled) = drive(1200, 64, 10.0, Duration::from_millis(30)).await;
        let bound = Duration::from_secs_f64((1200.0 - 200.0) / 10.0);
        assert!(elapsed >= bound, "{elapsed:?} cannot beat the bucket");
        assert!(
            elapsed.as_secs_f64() <= bound.as_secs_f64() * 1.05,
            "{elapsed:?} vs {bound:?}"
        );
        assert!(throttled <= 12, "{throttled} 429s for 1200 writes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_faster_refill_is_measured_and_used() {
        let (elapsed, throttled) = drive(5200, 64, 100.0, Duration::from_millis(30)).await;
        let bound = (5200.0 - 200.0) / 100.0;
        assert!(
            elapsed.as_secs_f64() <= bound * 1.10,
            "{elapsed:?} vs bound {bound}s: the pacer must learn the 100/s refill"
        );
        assert!(throttled <= 52, "{throttled} 429s for 5200 writes");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_answers_in_flight_do_not_inflate_the_estimate() {
        // Answers that left the server before a measurement started arrive inside it.
        let (elapsed, throttled) = drive(2200, 64, 100.0, Duration::from_millis(400)).await;
        assert!(throttled <= 22, "{throttled} 429s for 2200 writes");
        let bound = (2200.0 - 200.0) / 100.0;
        assert!(
            elapsed.as_secs_f64() <= bound * 1.25,
            "{elapsed:?} vs bound {bound}s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn subscriptions_and_buckets_are_paced_apart() {
        let pacer = Pacer::default();
        let ticket = pacer.acquire("s1", Bucket::Writes).await;
        pacer.observe(ticket, 200, &report(0));
        let started = Instant::now();
        pacer.acquire("s2", Bucket::Writes).await;
        pacer.acquire("s1", Bucket::Reads).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        pacer.acquire("s1", Bucket::Writes).await;
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(pacer.refill_estimate("s1", Bucket::Writes), 10.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_blocks_the_bucket_for_retry_after() {
        let pacer = Pacer::default();
        let ticket = pacer.acquire("s1", Bucket::Writes).await;
        pacer.observe(ticket, 429, &report(150));
        let started = Instant::now();
        pacer.acquire("s1", Bucket::Writes).await;
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_request_stops_counting_when_dropped() {
        let pacer = Pacer::default();
        let answered = pacer.acquire("s1", Bucket::Writes).await;
        let lost = pacer.acquire("s1", Bucket::Writes).await;
        assert_eq!(pacer.in_flight("s1", Bucket::Writes), 2);
        drop(lost);
        pacer.observe(answered, 200, &report(100));
        assert_eq!(pacer.in_flight("s1", Bucket::Writes), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_that_reports_no_counts_is_not_held_back() {
        let pacer = Pacer::default();
        for _ in 0..UNREPORTED_IN_FLIGHT {
            let ticket = pacer.acquire("", Bucket::Reads).await;
            pacer.observe(ticket, 200, &HeaderMap::new());
        }
        let started = Instant::now();
        let in_flight: Vec<Ticket> =
            futures::future::join_all((0..50).map(|_| pacer.acquire("", Bucket::Reads))).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(in_flight.len(), 50);
    }

    #[tokio::test(start_paused = true)]
    async fn before_the_first_report_only_a_few_requests_go() {
        let pacer = Pacer::default();
        let mut first = Vec::new();
        for _ in 0..UNREPORTED_IN_FLIGHT {
            first.push(pacer.acquire("s1", Bucket::Writes).await);
        }
        let waiting = tokio::time::timeout(
            Duration::from_millis(100),
            pacer.acquire("s1", Bucket::Writes),
        )
        .await;
        assert!(waiting.is_err(), "a fifth request waits for an answer");
        pacer.observe(first.pop().unwrap(), 200, &report(150));
        let _next = pacer.acquire("s1", Bucket::Writes).await;
    }

    #[test]
    fn the_subscription_is_read_from_the_path() {
        let url = url::Url::parse(
            "https://management.azure.com/subscriptions/ABC/resourceGroups/rg?api-version=1",
        )
        .unwrap();
        assert_eq!(subscription_of(&url), "ABC");
        let tenant = url::Url::parse("https://management.azure.com/providers/x").unwrap();
        assert_eq!(subscription_of(&tenant), "");
        assert_eq!(
            subscription_in_path("/Subscriptions/s1/resourceGroups/rg/providers/x/y/vm"),
            "s1"
        );
    }
}
