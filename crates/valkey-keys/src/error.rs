//! The one error type of the primitives.

/// Why a primitive could not give an answer.
///
/// A refused acquisition is not an error: it is the `granted: false` / `None` answer of the
/// primitive. These variants mean the question could not be asked at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command, transaction or script failed on the wire or on the server.
    #[error(
        "valkey {operation} on `{key}` failed; check that Valkey is reachable at VALKEY_URL and \
         accepts writes"
    )]
    Valkey {
        operation: &'static str,
        key: String,
        #[source]
        source: redis::RedisError,
    },
    /// The operating system could not supply the random bytes of a lock token.
    #[error("could not draw a random PR lock token from the operating system")]
    Random(#[source] getrandom::Error),
}

impl Error {
    /// `map_err` adapter that names the operation and the key a Valkey error came from.
    pub(crate) fn valkey(
        operation: &'static str,
        key: &str,
    ) -> impl FnOnce(redis::RedisError) -> Error {
        let key = key.to_owned();
        move |source| Error::Valkey {
            operation,
            key,
            source,
        }
    }
}
