//! The error half of the contract: every non-2xx answer carries a kind and a message, and the
//! kind picks the HTTP status as Docker's Engine API does, so callers branch on the kind and
//! print the message, never match words in it.

use serde::{Deserialize, Serialize};

/// What went wrong, as a caller needs to tell it apart (serialized as a snake_case string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or asks for something berth does not do (400).
    InvalidArgument,
    /// The request is refused in this state, such as removing a network still in use (403).
    Forbidden,
    /// The object named does not exist (404).
    NotFound,
    /// The object exists already or is in the way, such as a taken name (409).
    Conflict,
    /// The daemon cannot serve the route now, such as an engine that failed to open (503).
    Unavailable,
    /// Anything else: a failure of the host, the runtime or netd (500).
    #[serde(other)]
    Internal,
}

impl ErrorKind {
    /// The HTTP status the daemon answers with for this kind (Docker's for the same case).
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }

    /// The kind of an answer whose body names none (a proxy, an older daemon): from its status.
    pub fn from_status(status: u16) -> Self {
        match status {
            400 => ErrorKind::InvalidArgument,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            503 => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}

/// Body of every non-2xx answer: the kind to branch on and the daemon's own words to print
/// (`message` is Docker's field; `kind` is berth's addition).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    /// What went wrong; an answer without it is [`ErrorKind::Internal`].
    #[serde(default = "internal")]
    pub kind: ErrorKind,
    /// What the user reads.
    pub message: String,
}

fn internal() -> ErrorKind {
    ErrorKind::Internal
}

/// A failed route, as the engine returns it and the daemon sends it: kind and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// What the user reads.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    /// A malformed or unsupported request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// A failure that is nobody's request's fault.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The same kind, with `context: ` before the message (as anyhow's `{:#}` prints).
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        ApiError {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl From<ApiError> for ErrorBody {
    fn from(e: ApiError) -> Self {
        ErrorBody {
            kind: e.kind,
            message: e.message,
        }
    }
}

/// An error and its sources joined by `: `, for messages that cross the API or a log line
/// (what anyhow's `{:#}` prints, for errors that are not anyhow's).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_is_a_string_and_maps_to_dockers_status() {
        let body = ErrorBody {
            kind: ErrorKind::Conflict,
            message: "network \"a\" already exists".into(),
        };
        let json = serde_json::to_string(&body).expect("encode");
        assert_eq!(
            json,
            r#"{"kind":"conflict","message":"network \"a\" already exists"}"#
        );
        for k in [
            ErrorKind::InvalidArgument,
            ErrorKind::Forbidden,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_status(k.status()), k);
        }
        // Docker's own body (message only) and an unknown kind still decode.
        let docker: ErrorBody = serde_json::from_str(r#"{"message":"x"}"#).expect("docker");
        assert_eq!(docker.kind, ErrorKind::Internal);
        let newer: ErrorBody =
            serde_json::from_str(r#"{"kind":"teapot","message":"x"}"#).expect("newer");
        assert_eq!(newer.kind, ErrorKind::Internal);
    }

    #[test]
    fn chain_joins_sources() {
        let inner = std::io::Error::other("disk full");
        #[derive(Debug, thiserror::Error)]
        #[error("cannot write state")]
        struct Outer(#[source] std::io::Error);
        assert_eq!(error_chain(&Outer(inner)), "cannot write state: disk full");
        assert_eq!(
            ApiError::invalid("bad").context("cannot create network a"),
            ApiError::invalid("cannot create network a: bad")
        );
    }
}
