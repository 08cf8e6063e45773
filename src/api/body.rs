//! Request bodies as DRF reads them: JSON, form-urlencoded or multipart into one set of fields,
//! then checked field by field with `CharField`'s rules and messages.

use crate::error::{ApiError, FieldErrors};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header::CONTENT_TYPE};
use serde_json::Value;
use std::collections::HashMap;

/// The fields of a request body. An empty body, or one without a content type, has none.
#[derive(Debug, Default)]
pub struct Payload {
    values: HashMap<String, Value>,
    errors: FieldErrors,
}

impl<S: Send + Sync> FromRequest<S> for Payload {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req.headers().get(CONTENT_TYPE).cloned();
        let sent = content_type
            .as_ref()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let media = sent
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                _ => ApiError::Parse(rejection.body_text()),
            }
        })?;
        if media.is_empty() || bytes.is_empty() {
            return Ok(Payload::default());
        }
        let values = match media.as_str() {
            "application/json" => from_json(&bytes)?,
            "application/x-www-form-urlencoded" => from_form(&bytes)?,
            "multipart/form-data" => from_multipart(content_type, bytes).await?,
            _ => return Err(ApiError::UnsupportedMediaType(sent)),
        };
        Ok(Payload {
            values,
            errors: FieldErrors::default(),
        })
    }
}

fn from_json(bytes: &[u8]) -> Result<HashMap<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Parse(format!("JSON parse error - {e}")))?;
    let python_type = match value {
        Value::Object(map) => return Ok(map.into_iter().collect()),
        Value::Null => return Err(ApiError::NonField("No data provided".into())),
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
    };
    Err(ApiError::NonField(format!(
        "Invalid data. Expected a dictionary, but got {python_type}."
    )))
}

/// Form fields; a repeated name keeps its last value, as Django's `QueryDict.get` does.
fn from_form(bytes: &[u8]) -> Result<HashMap<String, Value>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|e| ApiError::Parse(format!("Form parse error - {e}")))?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect())
}

/// The text parts of a multipart body; file parts are not fields of ours and are skipped.
async fn from_multipart(
    content_type: Option<axum::http::HeaderValue>,
    bytes: Bytes,
) -> Result<HashMap<String, Value>, ApiError> {
    let mut req = Request::new(Body::from(bytes));
    if let Some(ct) = content_type {
        req.headers_mut().insert(CONTENT_TYPE, ct);
    }
    let parse_error =
        |e: &dyn std::fmt::Display| ApiError::Parse(format!("Multipart form parse error - {e}"));
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|e| parse_error(&e))?;
    let mut values = HashMap::new();
    while let Some(field) = multipart.next_field().await.map_err(|e| parse_error(&e))? {
        let (Some(name), None) = (field.name().map(str::to_owned), field.file_name()) else {
            continue;
        };
        let text = field.text().await.map_err(|e| parse_error(&e))?;
        values.insert(name, Value::String(text));
    }
    Ok(values)
}

impl Payload {
    /// A `CharField`: required, not null, not blank, whitespace trimmed; a number is taken as
    /// its text. On error, records it and returns an empty string.
    pub fn string(&mut self, name: &'static str) -> String {
        let text = match self.values.remove(name) {
            None => Err("This field is required."),
            Some(Value::Null) => Err("This field may not be null."),
            Some(Value::String(s)) => Ok(s),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(_) => Err("Not a valid string."),
        };
        match text.map(|t| t.trim().to_owned()) {
            Ok(t) if t.is_empty() => self.fail(name, "This field may not be blank."),
            Ok(t) => t,
            Err(message) => self.fail(name, message),
        }
    }

    fn fail(&mut self, name: &'static str, message: &'static str) -> String {
        self.errors.0.push((name, message));
        String::new()
    }

    /// The field errors recorded so far, as one 400.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Fields(self.errors))
        }
    }
}
