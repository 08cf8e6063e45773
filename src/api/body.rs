//! Request bodies as DRF reads them: JSON, form-urlencoded or multipart into one set of fields,
//! then checked field by field with `CharField`'s rules and messages.

use crate::http::error::{ApiError, FieldErrors};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header::CONTENT_TYPE};
use serde_json::{Map, Value};

/// The fields of a request body. An empty body, or one without a content type, has none.
#[derive(Debug, Default)]
pub struct Payload {
    values: Map<String, Value>,
    errors: FieldErrors,
}

/// The body parsers DRF's default settings install.
enum Parser {
    Json,
    Form,
    Multipart,
}

impl Parser {
    /// The parser for the request's media type; `None` without a content type. Read without
    /// allocating: this runs on every token request.
    fn for_request(headers: &HeaderMap) -> Result<Option<Parser>, ApiError> {
        let Some(sent) = headers.get(CONTENT_TYPE) else {
            return Ok(None);
        };
        let bytes = sent.as_bytes();
        let media = bytes.split(|&b| b == b';').next().unwrap_or_default();
        let media = media.trim_ascii();
        let parser = if media.eq_ignore_ascii_case(b"application/json") {
            Parser::Json
        } else if media.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
            Parser::Form
        } else if media.eq_ignore_ascii_case(b"multipart/form-data") {
            Parser::Multipart
        } else if media.is_empty() {
            return Ok(None);
        } else {
            let sent = String::from_utf8_lossy(bytes).into_owned();
            return Err(ApiError::UnsupportedMediaType(sent));
        };
        Ok(Some(parser))
    }
}

impl<S: Send + Sync> FromRequest<S> for Payload {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let parser = Parser::for_request(req.headers());
        let multipart_type = match parser {
            Ok(Some(Parser::Multipart)) => req.headers().get(CONTENT_TYPE).cloned(),
            _ => None,
        };
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                _ => ApiError::Parse(rejection.body_text()),
            }
        })?;
        // An empty body counts as `{}` whatever its type, as DRF's parsers see it.
        if bytes.is_empty() {
            return Ok(Payload::default());
        }
        let values = match parser? {
            None => Map::new(),
            Some(Parser::Json) => from_json(&bytes)?,
            Some(Parser::Form) => from_form(&bytes)?,
            Some(Parser::Multipart) => from_multipart(multipart_type, bytes).await?,
        };
        Ok(Payload {
            values,
            errors: FieldErrors::default(),
        })
    }
}

fn from_json(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Parse(format!("JSON parse error - {e}")))?;
    let python_type = match value {
        Value::Object(map) => return Ok(map),
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
fn from_form(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|e| ApiError::Parse(format!("Form parse error - {e}")))?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect())
}

/// The text parts of a multipart body; file parts are not fields of ours and are skipped.
async fn from_multipart(
    content_type: Option<HeaderValue>,
    bytes: Bytes,
) -> Result<Map<String, Value>, ApiError> {
    let mut req = Request::new(Body::from(bytes));
    if let Some(ct) = content_type {
        req.headers_mut().insert(CONTENT_TYPE, ct);
    }
    let parse_error =
        |e: &dyn std::fmt::Display| ApiError::Parse(format!("Multipart form parse error - {e}"));
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|e| parse_error(&e))?;
    let mut values = Map::new();
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
    /// Reads `body` as a request with `content_type` would be read, without a server: for the
    /// fuzz targets (`fuzz/`).
    #[doc(hidden)]
    pub async fn parse(content_type: Option<HeaderValue>, body: Bytes) -> Result<Self, ApiError> {
        let mut req = Request::new(Body::from(body));
        if let Some(content_type) = content_type {
            req.headers_mut().insert(CONTENT_TYPE, content_type);
        }
        Payload::from_request(req, &()).await
    }

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
        match text.map(trimmed) {
            Ok(t) if t.is_empty() => self.fail(name, "This field may not be blank."),
            Ok(t) => t,
            Err(message) => self.fail(name, message),
        }
    }

    /// Whether `name` is missing or blank: where cookie mode takes the refresh cookie instead,
    /// as dj-rest-auth's `CookieTokenRefreshSerializer` does.
    pub fn lacks(&self, name: &str) -> bool {
        match self.values.get(name) {
            None => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
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

/// `text` without surrounding whitespace, reusing its buffer when there is none.
fn trimmed(text: String) -> String {
    if text.trim().len() == text.len() {
        text
    } else {
        text.trim().to_owned()
    }
}
