//! The request-body parsers (JSON, form, multipart, or no parser) on arbitrary bytes, then the
//! login serializer's field checks and the error response, as a token request would go.

#![no_main]

use axum::body::Bytes;
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use handstamp::api::Payload;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
});

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let (content_type, body) = match kind % 5 {
        0 => (Some("application/json".as_bytes()), rest),
        1 => (Some(b"application/x-www-form-urlencoded".as_slice()), rest),
        2 => (Some(b"multipart/form-data; boundary=fuzz".as_slice()), rest),
        3 => (None, rest),
        // A content type of the fuzzer's own, up to the first newline.
        _ => {
            let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            (
                Some(&rest[..split]),
                rest.get(split + 1..).unwrap_or_default(),
            )
        }
    };
    let content_type = match content_type.map(HeaderValue::from_bytes) {
        None => None,
        Some(Ok(value)) => Some(value),
        // Not a header value hyper would have passed on.
        Some(Err(_)) => return,
    };
    let parsed = RUNTIME.block_on(Payload::parse(content_type, Bytes::copy_from_slice(body)));
    let answer = match parsed {
        Ok(mut payload) => {
            let _ = (payload.string("username"), payload.string("password"));
            payload.finish()
        }
        Err(error) => Err(error),
    };
    if let Err(error) = answer {
        let status = error.into_response().status();
        assert!(status.is_client_error(), "{status} for bad input");
    }
});
