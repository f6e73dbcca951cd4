//! The `timeouts` block every resource accepts, as azurerm users know it.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use tfplugin::{Attribute, Block, NestedBlock, NestingMode, Type};

use crate::azure::arm::ArmError;

// ---------------------------------------------------------------------------------------------
// An operation's stop: Terraform's stop request or its deadline
// ---------------------------------------------------------------------------------------------

/// How long an Azure call already under way when the operation is stopped may still finish;
/// after that its outcome is unknown and what it touched is read back.
pub const IN_FLIGHT_GRACE: Duration = Duration::from_secs(10);

/// Cancelled when Terraform asks the provider to stop or when the operation's deadline
/// passes: a child of the provider's stop signal that a timer also cancels.
pub struct Halt {
    token: CancellationToken,
    stop: CancellationToken,
    timeout: Duration,
}

/// What became of one Azure call run under a [`Halt`].
pub enum Step<T> {
    /// It ran to its end (successfully or not).
    Done(T),
    /// Halted before it started: it changed nothing.
    NotSent,
    /// Halted while under way and not finished within [`IN_FLIGHT_GRACE`]: its outcome is
    /// unknown; read back what it touched.
    Unknown,
}

impl Halt {
    pub fn new(stop: &CancellationToken, timeout: Duration) -> Halt {
        let token = stop.child_token();
        let timer = token.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = timer.cancelled() => {}
                () = tokio::time::sleep(timeout) => timer.cancel(),
            }
        });
        Halt {
            token,
            stop: stop.clone(),
            timeout,
        }
    }

    pub fn is_halted(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Runs one Azure call: not at all once halted. Once halted, a request of the call still
    /// waiting (in the pacer, in a retry backoff) is not sent, and the call ends at once as
    /// [`Step::NotSent`] (or [`Step::Unknown`] when an earlier attempt may have acted); a
    /// request on the wire is given [`IN_FLIGHT_GRACE`] to answer (its answer is the truth to
    /// record).
    pub async fn run<T>(
        &self,
        call: impl Future<Output = Result<T, ArmError>>,
    ) -> Step<Result<T, ArmError>> {
        if self.is_halted() {
            return Step::NotSent;
        }
        let call = crate::azure::arm::with_stop(self.token.clone(), call);
        tokio::pin!(call);
        let outcome = tokio::select! {
            biased;
            outcome = &mut call => outcome,
            () = self.token.cancelled() => match tokio::time::timeout(IN_FLIGHT_GRACE, call).await {
                Ok(outcome) => outcome,
                Err(_) => return Step::Unknown,
            },
        };
        match &outcome {
            Err(error) if error.is_not_sent() => Step::NotSent,
            Err(error) if error.is_cancelled() => Step::Unknown,
            _ => Step::Done(outcome),
        }
    }

    /// Why the operation stopped, for diagnostics.
    pub fn reason(&self) -> String {
        if self.stop.is_cancelled() {
            "Terraform asked the provider to stop.".to_string()
        } else {
            format!(
                "The operation reached its timeout ({}); raise it in the `timeouts` block.",
                humantime::format_duration(self.timeout)
            )
        }
    }

    pub fn summary(&self) -> &'static str {
        if self.stop.is_cancelled() {
            "Stopped"
        } else {
            "Timed out"
        }
    }
}

impl Halt {
    /// The token to hand to Azure calls that take one.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Drop for Halt {
    fn drop(&mut self) {
        // Ends the deadline's timer task; the provider's stop signal, a parent, is untouched.
        self.token.cancel();
    }
}

/// Default durations of one resource type's operations.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub create: Duration,
    pub read: Duration,
    pub update: Duration,
    pub delete: Duration,
}

pub enum Operation {
    Create,
    Read,
    Update,
    Delete,
}

/// The `timeouts` nested block; its attributes declare their validator
/// (`arguments::positive_duration`: a duration, and not zero, since every operation needs
/// time), which the server runs at validation.
pub fn block(defaults: Defaults) -> NestedBlock {
    let attribute = |name: &str, default: Duration| {
        Attribute::optional(name, Type::String)
            .validator(crate::arguments::positive_duration())
            .description(format!(
                "How long the {name} may take, as a duration (`30s`, `10m`, `2h`). Default `{}`.",
                humantime::format_duration(default)
            ))
    };
    NestedBlock::new(
        "timeouts",
        NestingMode::Single,
        Block {
            attributes: vec![
                attribute("create", defaults.create),
                attribute("read", defaults.read),
                attribute("update", defaults.update),
                attribute("delete", defaults.delete),
            ],
            ..Block::default()
        },
    )
}

#[cfg(test)]
mod tests {
    #[tokio::test(start_paused = true)]
    async fn halted_calls_are_not_sent_or_given_a_grace_then_unknown() {
        let stop = CancellationToken::new();
        let halt = Halt::new(&stop, Duration::from_secs(60));
        assert!(matches!(halt.run(async { Ok(1) }).await, Step::Done(Ok(1))));
        // The deadline passes during a call that ends within the grace: its answer counts.
        let slow = halt
            .run(async {
                tokio::time::sleep(Duration::from_secs(65)).await;
                Ok(2)
            })
            .await;
        assert!(matches!(slow, Step::Done(Ok(2))));
        assert_eq!(halt.summary(), "Timed out");
        assert!(halt.reason().contains("1m"), "{}", halt.reason());
        assert!(matches!(halt.run(async { Ok(3) }).await, Step::NotSent));

        // Terraform stops the provider during a call that does not end within the grace.
        let stop = CancellationToken::new();
        let halt = Halt::new(&stop, Duration::from_secs(3600));
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stopper.cancel();
        });
        let started = tokio::time::Instant::now();
        let hung = halt
            .run(std::future::pending::<Result<(), ArmError>>())
            .await;
        assert!(matches!(hung, Step::Unknown));
        assert_eq!(started.elapsed(), Duration::from_secs(1) + IN_FLIGHT_GRACE);
        assert_eq!(halt.summary(), "Stopped");
        assert!(!stop.is_cancelled() || halt.is_halted());
    }

    /// A call deep in helpers that take no token obeys the stop too: a request waiting in a
    /// 429's 30 s backoff when Terraform stops the provider ends at once, unsent, and is never
    /// retried.
    #[tokio::test(start_paused = true)]
    async fn a_halted_call_waiting_in_a_retry_backoff_ends_at_once_unsent() {
        use crate::azure::arm::test_support::{client, throttled};
        let (arm, transport) = client(|_, _| throttled(30));
        let stop = CancellationToken::new();
        let halt = Halt::new(&stop, Duration::from_secs(3600));
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stopper.cancel();
        });
        let started = tokio::time::Instant::now();
        let body = serde_json::json!({"location": "eastus"});
        let step = halt
            .run(arm.put("/subscriptions/s/resourceGroups/g", "2022-09-01", &body))
            .await;
        assert!(
            matches!(step, Step::NotSent),
            "a 429 is refused before ARM acts"
        );
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(1),
            "ends at the stop"
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            transport.count.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "never retried after the stop"
        );
    }

    use super::*;
    use tfplugin::{AttributePath, Value};

    const DEFAULTS: Defaults = Defaults {
        create: Duration::from_secs(60),
        read: Duration::from_secs(60),
        update: Duration::from_secs(60),
        delete: Duration::from_secs(60),
    };

    #[test]
    fn declared_validators_refuse_what_is_not_a_positive_duration() {
        let block = Block {
            block_types: vec![block(DEFAULTS)],
            ..Block::default()
        };
        let config = Value::object([(
            "timeouts",
            Value::object([
                ("create", Value::from("soon")),
                ("read", Value::from("5m")),
                ("update", Value::unknown()),
                ("delete", Value::from("0s")),
            ]),
        )]);
        let declared = block.validate(&config);
        assert_eq!(declared.items.len(), 2, "{declared:?}");
        assert!(declared.items[1].detail.contains("no time"), "zero refused");
        assert_eq!(
            declared.items[0].attribute,
            Some(AttributePath::root("timeouts").attribute("create"))
        );
        assert_eq!(
            declared.items[1].attribute,
            Some(AttributePath::root("timeouts").attribute("delete"))
        );
    }
}

/// The `timeouts` block in a typed model ([`tfplugin::typed`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timeouts {
    pub create: tfplugin::typed::Maybe<String>,
    pub read: tfplugin::typed::Maybe<String>,
    pub update: tfplugin::typed::Maybe<String>,
    pub delete: tfplugin::typed::Maybe<String>,
}

impl Timeouts {
    /// The duration for `operation`: the configured one in `block`, else the default.
    pub fn duration(
        block: &tfplugin::typed::Maybe<Timeouts>,
        operation: Operation,
        defaults: Defaults,
    ) -> Duration {
        let (configured, default) = match (block.known(), operation) {
            (block, Operation::Create) => (block.and_then(|b| b.create.as_str()), defaults.create),
            (block, Operation::Read) => (block.and_then(|b| b.read.as_str()), defaults.read),
            (block, Operation::Update) => (block.and_then(|b| b.update.as_str()), defaults.update),
            (block, Operation::Delete) => (block.and_then(|b| b.delete.as_str()), defaults.delete),
        };
        configured
            .and_then(|text| humantime::parse_duration(text).ok())
            .unwrap_or(default)
    }
}
