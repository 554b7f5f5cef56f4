//! The built web client: embedded in the binary (what `build.rs` built into `web-client/dist`),
//! or the files of a directory (`--web-dir`), or a note saying how to build it.
//!
//! Release builds carry the files (`rust-embed`: `include_bytes!` of every file at compile
//! time), so the binary is the whole product wherever it is copied; debug builds read the same
//! folder from disk at run time, so a `npm run build` shows without recompiling the hub.

use std::borrow::Cow;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// `web-client/dist` as `build.rs` left it (empty when the client could not be built).
#[derive(rust_embed::RustEmbed)]
#[folder = "web-client/dist/"]
#[allow_missing = true]
#[exclude = "*.map"]
struct Dist;

/// Why the client is not in this binary, as `build.rs` found it (empty when it is).
const BUILD_NOTE: &str = env!("SHANGLIANG_WEB_BUILD_NOTE");

/// Where the web client comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebSource {
    /// The files embedded at build time (the default).
    Embedded,
    /// The files of a directory (`--web-dir`; relative paths against the working directory).
    Dir(std::path::PathBuf),
}

impl WebSource {
    /// Whether the source holds a built client (an `index.html`).
    pub fn is_built(&self) -> bool {
        match self {
            WebSource::Embedded => Dist::get("index.html").is_some(),
            WebSource::Dir(dir) => dir.join("index.html").is_file(),
        }
    }

    /// For the start-up banner.
    pub fn describe(&self) -> String {
        match self {
            WebSource::Embedded => "embedded in the binary".into(),
            WebSource::Dir(dir) => format!("from {}", dir.display()),
        }
    }
}

/// The web client's routes: the files (hashed assets cached for a year), and `index.html` for
/// the app's routes `/`, `/live/*`, `/room/*`, `/console/*`, `/replay/*` (the app routes in the browser).
/// Without a built client every page answers a short note saying how to build it.
pub fn web_client(source: &WebSource) -> Router {
    if !source.is_built() {
        tracing::warn!(source = %source.describe(), note = BUILD_NOTE, "web client not built; serving build instructions");
        return Router::new().fallback(get(not_built));
    }
    match source {
        WebSource::Embedded => Router::new().fallback(get(embedded)),
        WebSource::Dir(dir) => from_dir(dir),
    }
}

/// Whether `path` is one of the app's pages (served as `index.html`).
fn is_app_route(path: &str) -> bool {
    path == "/"
        || path == "/index.html"
        || path == "/organise"
        || ["/live/", "/room/", "/console/", "/replay/", "/join/"].iter().any(|p| path.starts_with(p) && path.len() > p.len())
}

async fn embedded(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let (name, immutable) = if is_app_route(path) {
        (Cow::Borrowed("index.html"), false)
    } else {
        let name = path.trim_start_matches('/');
        (Cow::Owned(name.to_owned()), name.starts_with("assets/"))
    };
    let Some(file) = Dist::get(&name) else {
        return (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, "no-cache")], "not found").into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut builder = Response::builder()
        .header(header::CACHE_CONTROL, cache)
        .header(header::ETAG, &etag);
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return builder.status(StatusCode::NOT_MODIFIED).body(Body::empty()).expect("valid response");
    }
    let mime = mime_guess::from_path(name.as_ref()).first_or_octet_stream();
    let content_type = if mime.type_() == mime_guess::mime::TEXT || mime.subtype() == "javascript" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    builder = builder.header(header::CONTENT_TYPE, HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")));
    builder.body(Body::from(file.data)).expect("valid response")
}

fn from_dir(dir: &std::path::Path) -> Router {
    use tower_http::services::{ServeDir, ServeFile};
    use tower_http::set_header::SetResponseHeaderLayer;
    let index = dir.join("index.html");
    let pages = Router::new()
        .route_service("/", ServeFile::new(&index))
        .route_service("/index.html", ServeFile::new(&index))
        .route_service("/live/{*rest}", ServeFile::new(&index))
        .route_service("/room/{*rest}", ServeFile::new(&index))
        .route_service("/console/{*rest}", ServeFile::new(&index))
        .route_service("/replay/{*rest}", ServeFile::new(&index))
        .route_service("/join/{*rest}", ServeFile::new(&index))
        .route_service("/organise", ServeFile::new(&index))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-cache"),
        ));
    // Vite names assets by content hash: they never change.
    let assets = Router::new().nest_service("/assets", ServeDir::new(dir.join("assets"))).layer(
        SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
    );
    pages.merge(assets).fallback_service(ServeDir::new(dir))
}

/// The marker the "not built" page carries (tests look for it).
pub const NOT_BUILT_MARKER: &str = "网页客户端尚未构建";

async fn not_built() -> Response {
    let why = if BUILD_NOTE.is_empty() { String::new() } else { format!("<p>Why: {}.</p>", html_escape(BUILD_NOTE)) };
    let body = format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>商量 shangliang</title>\
<h1>商量 shangliang</h1>\
<p>{NOT_BUILT_MARKER} / The web client is not built into this hub.</p>{why}\
<p>Install Node.js (&ge; 20.19, with npm) and build the hub again — <code>cargo run --release -- serve</code> \
builds the client by itself when npm is on the <code>PATH</code>. Or build it by hand and point the hub at it:</p>\
<pre>npm --prefix web-client ci &amp;&amp; npm --prefix web-client run build\n\
cargo run --release -- serve --web-dir web-client/dist</pre>\
<p>The API (<a href=\"/api/activities\">/api/activities</a>) and the websocket (<code>/ws</code>) work without it.</p></html>"
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_routes_are_the_four_faces() {
        for p in ["/", "/index.html", "/live/demo", "/room/demo-room", "/console/demo"] {
            assert!(is_app_route(p), "{p}");
        }
        for p in ["/live/", "/assets/index-abc.js", "/favicon.ico", "/livex"] {
            assert!(!is_app_route(p), "{p}");
        }
    }
}
