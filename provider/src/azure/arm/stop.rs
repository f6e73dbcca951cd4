//! The ambient stop: cancelling requests made deep inside helpers that take no token.

use tokio_util::sync::CancellationToken;

tokio::task_local! {
    /// The stop of the operation the current task runs for, if any (see [`with_stop`]).
    static AMBIENT_STOP: CancellationToken;
}

/// Runs `call` so that every request it makes through this client without a token of its
/// own is cancellable by `stop`, as [`ArmClient::send_cancellable`] is: an operation's stop
/// reaches requests waiting in the pacer or in a retry backoff deep inside helpers that take
/// no token.
pub async fn with_stop<F: std::future::Future>(stop: CancellationToken, call: F) -> F::Output {
    AMBIENT_STOP.scope(stop, call).await
}

/// The stop a request without a token of its own obeys: the ambient one, else none.
pub(super) fn ambient_stop() -> CancellationToken {
    AMBIENT_STOP
        .try_with(CancellationToken::clone)
        .unwrap_or_else(|_| never())
}

/// A token nobody cancels, for the calls that take none.
fn never() -> CancellationToken {
    CancellationToken::new()
}
