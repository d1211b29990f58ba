//! The admin API as tests call it: the test key, JSON in and out.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Proxy;

/// The admin key of the test configs.
pub const KEY: &str = "test-admin-key";

/// The admin API of a test proxy, called with the test key.
pub struct Admin {
    pub base: String,
    pub client: reqwest::Client,
}

impl Admin {
    pub fn new(proxy: &Proxy) -> Admin {
        Admin {
            base: format!("http://{}", proxy.admin),
            client: reqwest::Client::new(),
        }
    }

    /// `PATCH /v2/session/rate-limit` with `body`.
    pub async fn choose_policy(&self, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, "/v2/session/rate-limit", Some(body))
            .await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Token {KEY}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Asserts an envelope of `status` and `kind`.
pub fn assert_error(answer: &(StatusCode, Value), status: u16, kind: &str) {
    assert_eq!(answer.0.as_u16(), status, "{}", answer.1);
    assert_eq!(answer.1["type"], kind, "{}", answer.1);
    assert_eq!(answer.1["status"], status);
    assert!(answer.1["instance"]
        .as_str()
        .is_some_and(|i| i.starts_with("req_")));
}
