//! Recording downloads behind the login cookie: `GET /recordings/{id}.cast`
//! (the asciicast v3 original; `?window=N` for one window of a long
//! recording, see `recordings::index`), `{id}.v2.cast` (v2 export) and
//! `{id}.txt` (plain-text transcript). Served by id through this check only, never as
//! static files: no login is 401, anything the caller may not read, or that
//! does not exist, is 404. Runs as a layer so that the player page can own
//! `/recordings/{id}` itself.
use std::{io::Write, sync::Arc};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::mpsc;

use crate::{
    db,
    recordings::{
        access,
        export::Format,
        files::valid_id,
        index::{self, WindowError},
    },
    state::Core,
};

/// Chunks of an export in flight to the client.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Size of one chunk of an export.
const CHUNK: usize = 64 * 1024;

/// Which download a path asks for: `(id, format)`.
fn parse(path: &str) -> Option<(&str, Format)> {
    let name = path.strip_prefix("/recordings/")?;
    let (id, format) = if let Some(id) = name.strip_suffix(".v2.cast") {
        (id, Format::V2)
    } else if let Some(id) = name.strip_suffix(".cast") {
        (id, Format::V3)
    } else if let Some(id) = name.strip_suffix(".txt") {
        (id, Format::Text)
    } else {
        return None;
    };
    Some((id, format))
}

/// Serves recording downloads; passes every other request on.
pub async fn downloads(State(core): State<Arc<Core>>, req: Request, next: Next) -> Response {
    let Some((id, format)) = parse(req.uri().path()) else {
        return next.run(req).await;
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let window = match window_param(req.uri().query(), format) {
        Ok(w) => w,
        Err(msg) => return (StatusCode::BAD_REQUEST, msg).into_response(),
    };
    let id = id.to_string();
    match serve(&core, req.headers(), &id, format, window).await {
        Ok(r) => r,
        Err(status) => status.into_response(),
    }
}

/// The `window=N` of a query (only the v3 original has windows).
fn window_param(query: Option<&str>, format: Format) -> Result<Option<usize>, &'static str> {
    let Some(value) = query
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("window="))
    else {
        return Ok(None);
    };
    match (format, value.parse::<usize>()) {
        (Format::V3, Ok(n)) => Ok(Some(n)),
        (Format::V3, Err(_)) => Err("window must be a number"),
        _ => Err("only the .cast original has windows"),
    }
}

async fn serve(
    core: &Core,
    headers: &axum::http::HeaderMap,
    id: &str,
    format: Format,
    window: Option<usize>,
) -> Result<Response, StatusCode> {
    let internal = |e: db::DbError| {
        tracing::warn!("recording download: {e}");
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let token = app::api::ssr::cookie_in(headers, app::backend::SESSION_COOKIE)
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let user = db::users::login_session_user(&core.db, &crate::auth::tokens::token_hash(&token))
        .await
        .map_err(internal)?
        .ok_or(StatusCode::UNAUTHORIZED)?;
    if !valid_id(id) {
        return Err(StatusCode::NOT_FOUND);
    }
    let row = db::terminal_sessions::by_id(&core.db, id)
        .await
        .map_err(internal)?
        .filter(|r| {
            r.recording_id.as_deref() == Some(id) && r.recording_state.as_deref() != Some("deleted")
        })
        .ok_or(StatusCode::NOT_FOUND)?;
    let info = user.info();
    if !access::may_read(&core.db, info.id, info.is_admin(), &row)
        .await
        .map_err(internal)?
    {
        return Err(StatusCode::NOT_FOUND);
    }
    let dir = core
        .config
        .recordings
        .clone()
        .ok_or(StatusCode::NOT_FOUND)?;
    let (file, index) = {
        let (dir, id) = (dir, id.to_string());
        tokio::task::spawn_blocking(move || {
            let mut file = dir.open(&id)?;
            let Some(n) = window else {
                return Ok((file, None));
            };
            let len = file.metadata()?.len();
            let index = dir
                .open_index(&id)
                .map(|f| index::read(std::io::BufReader::new(f), len))
                .unwrap_or_default();
            if n >= index::spans(&mut file, &index, len)?.len() {
                return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
            }
            Ok((file, Some((index, len, n))))
        })
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .map_err(|_: std::io::Error| StatusCode::NOT_FOUND)?
    };
    if let Some((index, len, n)) = index {
        // A window is the player's, not a download: not audited.
        return Ok(stream(
            move |out| {
                index::write_window(file, &index, len, n, out).map_err(|e| match e {
                    WindowError::Io(e) => e,
                    other => std::io::Error::other(other.to_string()),
                })
            },
            "application/x-asciicast",
            None,
        ));
    }
    let (suffix, kind) = match format {
        Format::V3 => ("cast", "application/x-asciicast"),
        Format::V2 => ("v2.cast", "application/x-asciicast"),
        Format::Text => ("txt", "text/plain; charset=utf-8"),
    };
    let detail = format!("{suffix} of {}'s session on {}", row.user_id, row.target);
    if let Err(e) = db::audit::record(
        &core.db,
        Some(&info.name),
        "recording.download",
        Some(id),
        Some(&detail),
    )
    .await
    {
        tracing::warn!("cannot audit a recording download: {e}");
    }
    let attachment = format!("attachment; filename=\"{id}.{suffix}\"");
    Ok(stream(
        move |out| {
            let input = std::io::BufReader::with_capacity(CHUNK, file);
            crate::recordings::export::export(format, input, out)
                .map_err(|e| std::io::Error::other(e.to_string()))
        },
        kind,
        Some(attachment),
    ))
}

/// A private response whose body `write` produces on a blocking thread,
/// handed to the client chunk by chunk as it fills.
fn stream(
    write: impl FnOnce(&mut ChunkWriter) -> std::io::Result<()> + Send + 'static,
    kind: &'static str,
    attachment: Option<String>,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = write(&mut out).and_then(|()| out.flush()) {
            // The client sees a cut response rather than a wrong one.
            let _ = tx.blocking_send(Err(e));
        }
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(v) = attachment.and_then(|a| HeaderValue::from_str(&a).ok()) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// A `Write` that sends full chunks down a channel (waiting while the
/// client is slow: memory stays bounded).
struct ChunkWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_paths_name_an_id_and_a_format() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            parse(&format!("/recordings/{id}.cast")),
            Some((id, Format::V3))
        );
        assert_eq!(
            parse(&format!("/recordings/{id}.v2.cast")),
            Some((id, Format::V2))
        );
        assert_eq!(
            parse(&format!("/recordings/{id}.txt")),
            Some((id, Format::Text))
        );
        assert_eq!(parse(&format!("/recordings/{id}")), None, "the player page");
        assert_eq!(parse("/recordings"), None);
        assert_eq!(parse("/pkg/recordings/x.cast"), None);
    }

    #[test]
    fn only_the_original_has_numbered_windows() {
        assert_eq!(window_param(None, Format::V3), Ok(None));
        assert_eq!(window_param(Some("t=3"), Format::V3), Ok(None));
        assert_eq!(window_param(Some("window=2"), Format::V3), Ok(Some(2)));
        assert_eq!(window_param(Some("x=1&window=0"), Format::V3), Ok(Some(0)));
        assert!(window_param(Some("window=-1"), Format::V3).is_err());
        assert!(window_param(Some("window=../a"), Format::V3).is_err());
        assert!(window_param(Some("window=1"), Format::Text).is_err());
    }
}
