//! Docker's error answers: a JSON body `{"message": "..."}` with the status code Docker gives
//! the same kind of error (clients branch on the code and print the message).

use hyper::{Method, Response, StatusCode};

use super::{Body, full};

/// One error answer of the Docker API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// 400: a parameter or body the route cannot take (Docker's invalid parameter).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404 for a path Docker's API does not have, in Docker's words.
    pub fn page_not_found() -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: "page not found".into(),
        }
    }

    /// 501 for a route of Docker's API that berth does not serve yet, naming it, so that a
    /// client fails loudly instead of acting on a pretended success.
    pub fn not_implemented(method: &Method, route: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_IMPLEMENTED,
            message: format!("berth does not serve {method} {route} of the Docker Engine API yet"),
        }
    }

    /// 500: berth could not read its own state.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// The HTTP answer.
    pub fn response(self) -> Response<Body> {
        let mut body = serde_json::to_vec(&serde_json::json!({ "message": self.message }))
            .unwrap_or_else(|_| b"{\"message\":\"error\"}".to_vec());
        body.push(b'\n');
        full(self.status, "application/json", body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn errors_are_docker_json_with_their_status() {
        let resp = ApiError::page_not_found().response();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        assert_eq!(
            body.ok().as_deref(),
            Some(&b"{\"message\":\"page not found\"}\n"[..])
        );
        let e = ApiError::not_implemented(&Method::POST, "/containers/create");
        assert_eq!(e.status, StatusCode::NOT_IMPLEMENTED);
        assert!(
            e.message.contains("POST /containers/create"),
            "{}",
            e.message
        );
    }
}
