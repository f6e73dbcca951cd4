use super::*;

/// However many requests the buckets allow at once, at most [`MAX_IN_FLIGHT`] are on the
/// wire together; the others wait their turn, unsent.
#[tokio::test(start_paused = true)]
async fn requests_on_the_wire_are_capped() {
    use test_support::{client, Step};
    let (arm, transport) = client(|_, n| {
        if n == 0 {
            // A roomy bucket: the pacer lets everything go.
            Step::Answer(
                200,
                vec![(
                    "x-ms-ratelimit-remaining-subscription-reads",
                    "20000".into(),
                )],
                Ok(b"{}".to_vec()),
            )
        } else {
            Step::Hang
        }
    });
    arm.get("/subscriptions/s/resourceGroups/first", "2022-09-01")
        .await
        .unwrap();
    for n in 0..(MAX_IN_FLIGHT + 100) {
        let arm = arm.clone();
        tokio::spawn(async move {
            let _ = arm
                .get(
                    &format!("/subscriptions/s/resourceGroups/g{n}"),
                    "2022-09-01",
                )
                .await;
        });
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        transport.count.load(std::sync::atomic::Ordering::SeqCst),
        1 + MAX_IN_FLIGHT
    );
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, value.parse().unwrap());
    }
    map
}

#[test]
fn arm_error_bodies_become_errors_with_code_message_and_request_id() {
    let error = ArmError::from_response(
        409,
        &headers(&[("x-ms-request-id", "req-1")]),
        br#"{"error":{"code":"ScopeLocked","message":"The scope is locked."}}"#,
    );
    assert_eq!(error.code, "ScopeLocked");
    assert_eq!(
        error.to_string(),
        "ScopeLocked: The scope is locked. (HTTP 409, request id req-1)"
    );
    let plain = ArmError::from_response(502, &HeaderMap::new(), b"Bad Gateway");
    assert_eq!(
        (plain.code.as_str(), plain.message.as_str()),
        ("HTTP502", "Bad Gateway")
    );
}

#[test]
fn retry_after_reads_seconds_and_dates() {
    assert_eq!(
        retry_after(&headers(&[("retry-after", "7")])),
        Some(Duration::from_secs(7))
    );
    let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
    assert_eq!(retry_after(&past), Some(Duration::ZERO));
    assert_eq!(retry_after(&HeaderMap::new()), None);
}

#[test]
fn backoff_grows_and_is_capped() {
    let policy = RetryPolicy::default();
    assert!(policy.backoff(0) >= Duration::from_millis(400));
    assert!(policy.backoff(3) >= Duration::from_millis(3200));
    assert!(policy.backoff(20) <= Duration::from_secs(75));
}

use super::test_support::*;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

const VM: &str =
    "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";

fn patch(
    arm: &Arc<ArmClient>,
    cancel: &CancellationToken,
) -> tokio::task::JoinHandle<Result<ArmResponse, ArmError>> {
    let (arm, cancel) = (arm.clone(), cancel.clone());
    tokio::spawn(async move {
        let body = serde_json::json!({"identity": {"type": "UserAssigned"}});
        arm.send_cancellable(
            Request::new(Method::PATCH, VM, Some("2024-07-01")).body(&body),
            &cancel,
        )
        .await
    })
}

#[tokio::test(start_paused = true)]
async fn a_request_queued_in_the_pacer_is_not_sent_once_cancelled() {
    // The first write is throttled for a minute: the bucket is blocked that long.
    let (arm, transport) = client(|_, n| if n == 0 { throttled(60) } else { ok("{}") });
    let first = patch(&arm, &CancellationToken::new());
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(transport.count.load(Ordering::SeqCst), 1);

    let cancel = CancellationToken::new();
    let queued = patch(&arm, &cancel);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!queued.is_finished(), "waits in the pacer for the bucket");
    let stopped_at = Instant::now();
    cancel.cancel();
    let error = queued.await.unwrap().unwrap_err();
    assert!(error.is_not_sent(), "{error}");
    assert!(!error.is_cancelled());
    assert_eq!(stopped_at.elapsed(), Duration::ZERO, "ends at once");
    assert_eq!(
        transport.count.load(Ordering::SeqCst),
        1,
        "the queued write never reached ARM"
    );
    // The uncancelled write goes once the bucket refills.
    first.await.unwrap().unwrap();
    assert_eq!(transport.count.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_retry_backoff_ends_on_cancel() {
    // Throttled: every attempt was refused before ARM acted, so nothing was changed.
    let (arm, transport) = client(|_, _| throttled(30));
    let cancel = CancellationToken::new();
    let request = patch(&arm, &cancel);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(transport.count.load(Ordering::SeqCst), 1);
    let stopped_at = Instant::now();
    cancel.cancel();
    let error = request.await.unwrap().unwrap_err();
    assert!(error.is_not_sent(), "{error}");
    assert_eq!(stopped_at.elapsed(), Duration::ZERO);
    assert_eq!(
        transport.count.load(Ordering::SeqCst),
        1,
        "no retry went out"
    );

    // A 5xx may have been acted on: stopped, but not "not sent".
    let (arm, transport) =
        client(|_, _| Step::Answer(503, vec![("retry-after", "30".into())], Ok(Vec::new())));
    let cancel = CancellationToken::new();
    let request = patch(&arm, &cancel);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped_at = Instant::now();
    cancel.cancel();
    let error = request.await.unwrap().unwrap_err();
    assert!(error.is_cancelled() && !error.is_not_sent(), "{error}");
    assert_eq!(stopped_at.elapsed(), Duration::ZERO);
    assert_eq!(transport.count.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_token_sends_nothing() {
    let (arm, transport) = client(|_, _| ok("{}"));
    let cancel = CancellationToken::new();
    cancel.cancel();
    let error = patch(&arm, &cancel).await.unwrap().unwrap_err();
    assert!(error.is_not_sent(), "{error}");
    assert_eq!(transport.count.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_on_the_wire_finishes_within_the_grace() {
    // Answered 3 s after it went: the answer is waited for and is the truth.
    let (arm, _) = client(|_, _| Step::Later(Duration::from_secs(3), Box::new(ok("{}"))));
    let cancel = CancellationToken::new();
    let request = patch(&arm, &cancel);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cancel.cancel();
    assert_eq!(request.await.unwrap().unwrap().status, 200);

    // Never answered: abandoned at the grace, with an unknown outcome.
    let (arm, _) = client(|_, _| Step::Hang);
    let grace = arm.in_flight_grace;
    let cancel = CancellationToken::new();
    let request = patch(&arm, &cancel);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped_at = Instant::now();
    cancel.cancel();
    let error = request.await.unwrap().unwrap_err();
    assert!(error.is_cancelled(), "{error}");
    assert_eq!(stopped_at.elapsed(), grace);
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_long_running_operation_ends_on_cancel() {
    let (arm, transport) = client(|request, _| match *request.method() {
        Method::PUT => Step::Answer(
            201,
            vec![
                (
                    "azure-asyncoperation",
                    "https://management.test/subscriptions/s1/operations/op1".into(),
                ),
                ("retry-after", "10".into()),
            ],
            Ok(b"{}".to_vec()),
        ),
        _ => ok(r#"{"status":"InProgress"}"#),
    });
    let cancel = CancellationToken::new();
    let put = {
        let (arm, cancel) = (arm.clone(), cancel.clone());
        tokio::spawn(async move {
            arm.put_cancellable(VM, "2024-07-01", &serde_json::json!({}), &cancel)
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(15)).await;
    // The PUT at 0 s, polls at 10 s (its Retry-After), 12 s and 14 s.
    let polls = transport.count.load(Ordering::SeqCst);
    assert_eq!(polls, 4, "the PUT and its polls");
    let stopped_at = Instant::now();
    cancel.cancel();
    let error = put.await.unwrap().unwrap_err();
    assert!(
        error.is_cancelled() && !error.is_not_sent(),
        "the PUT was sent: its outcome is unknown, {error}"
    );
    assert_eq!(stopped_at.elapsed(), Duration::ZERO);
    assert_eq!(transport.count.load(Ordering::SeqCst), polls);
}

#[tokio::test(start_paused = true)]
async fn a_page_whose_body_does_not_parse_is_an_error_not_an_empty_page() {
    use futures::StreamExt;
    let (arm, _) = client(|request, _| {
        if request.url().path().ends_with("/page2") {
            Step::Answer(200, vec![], Ok(b"<html>gateway says hi".to_vec()))
        } else {
            ok(
                r#"{"value":[{"id":"a"}],"nextLink":"https://management.test/subscriptions/s1/page2"}"#,
            )
        }
    });
    let mut pages = arm.list("/subscriptions/s1/items".into(), "1");
    assert_eq!(pages.next().await.unwrap().unwrap().len(), 1);
    let error = pages.next().await.unwrap().unwrap_err();
    assert_eq!(error.code, ArmError::INVALID_RESPONSE, "{error}");
    assert_eq!(error.status, 200);
    assert!(pages.next().await.is_none());
    assert!(arm
        .list_all("/subscriptions/s1/items".into(), "1")
        .await
        .is_err());

    // A page that is JSON but not a list, or a body that cannot be read, is no page either.
    for step in [
        || ok(r#"{"unexpected":true}"#),
        || Step::Answer(200, vec![], Err("connection reset".into())),
        || Step::Answer(200, vec![], Ok(Vec::new())),
    ] {
        let (arm, _) = client(move |_, _| step());
        let error = arm
            .list_all("/subscriptions/s1/items".into(), "1")
            .await
            .unwrap_err();
        assert_eq!(error.code, ArmError::INVALID_RESPONSE, "{error}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_get_whose_body_does_not_parse_is_an_error_not_a_missing_resource() {
    let (arm, _) = client(|_, _| Step::Answer(200, vec![], Ok(b"not json".to_vec())));
    let error = arm.get(VM, "2024-07-01").await.unwrap_err();
    assert_eq!(error.code, ArmError::INVALID_RESPONSE);
    // A write ARM accepted is done, even if its answer's body is unusable.
    let (arm, _) = client(|_, _| Step::Answer(200, vec![], Ok(b"not json".to_vec())));
    let response = patch(&arm, &CancellationToken::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status, 200);
}

#[tokio::test(start_paused = true)]
async fn the_give_up_after_max_attempts_of_429_is_an_error() {
    let (arm, transport) = client(|_, _| throttled(1));
    let attempts = arm.retry.max_attempts;
    let error = patch(&arm, &CancellationToken::new())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.status, 429, "{error}");
    assert!(!error.is_stopped());
    assert!(
        error
            .message
            .contains(&format!("gave up after {attempts} attempts")),
        "{error}"
    );
    assert_eq!(transport.count.load(Ordering::SeqCst), attempts as usize);
}

/// A 412 answering a retry whose earlier attempt got a 5xx or lost its connection says
/// so: that attempt may have taken, and the 412 may be its own doing. A 412 at the first
/// attempt, or after 429s only (refused before ARM acted), does not.
#[tokio::test(start_paused = true)]
async fn a_412_after_an_unanswered_attempt_says_so() {
    let precondition_failed = || {
        Step::Answer(
            412,
            Vec::new(),
            Ok(br#"{"error":{"code":"PreconditionFailed","message":"etag"}}"#.to_vec()),
        )
    };
    let cases: [(&str, Script, bool); 4] = [
        (
            "500 then 412",
            Box::new(move |_, n| {
                if n == 0 {
                    Step::Answer(500, Vec::new(), Ok(Vec::new()))
                } else {
                    precondition_failed()
                }
            }),
            true,
        ),
        (
            "dropped then 412",
            Box::new(move |_, n| {
                if n == 0 {
                    Step::Fail("connection reset".into())
                } else {
                    precondition_failed()
                }
            }),
            true,
        ),
        (
            "429 then 412",
            Box::new(move |_, n| {
                if n == 0 {
                    throttled(1)
                } else {
                    precondition_failed()
                }
            }),
            false,
        ),
        (
            "412 at once",
            Box::new(move |_, _| precondition_failed()),
            false,
        ),
    ];
    for (case, script, expected) in cases {
        let (arm, _) = client(script);
        let error = patch(&arm, &CancellationToken::new())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(error.status, 412, "{case}: {error}");
        assert_eq!(error.after_unanswered_attempt, expected, "{case}");
    }
}
