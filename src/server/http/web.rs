//! The built web client: the browser app's files, or a note saying how to build them.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The built web client: files of `dir` (hashed assets cached for a year), and `index.html` for
/// the app's routes `/`, `/live/*`, `/room/*`, `/console/*` (the app routes in the browser).
/// Without a built client every page answers a short note saying how to build it.
pub fn web_client(dir: &std::path::Path) -> Router {
    use tower_http::services::{ServeDir, ServeFile};
    use tower_http::set_header::SetResponseHeaderLayer;
    let index = dir.join("index.html");
    if !index.is_file() {
        tracing::warn!(dir = %dir.display(), "web client not built; serving build instructions");
        return Router::new().fallback(get(not_built));
    }
    let pages = Router::new()
        .route_service("/", ServeFile::new(&index))
        .route_service("/index.html", ServeFile::new(&index))
        .route_service("/live/{*rest}", ServeFile::new(&index))
        .route_service("/room/{*rest}", ServeFile::new(&index))
        .route_service("/console/{*rest}", ServeFile::new(&index))
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
    pages
        .merge(assets)
        .fallback_service(ServeDir::new(dir))
}

async fn not_built() -> Response {
    let body = "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>商量 shangliang</title>\
<h1>商量 shangliang</h1>\
<p>网页客户端尚未构建 / The web client is not built. In the repository, run:</p>\
<pre>npm --prefix web-client ci &amp;&amp; npm --prefix web-client run build</pre>\
<p>then restart <code>cargo run --release -- serve</code> (or pass <code>--web-dir</code>). \
The API (<a href=\"/api/activities\">/api/activities</a>) and the websocket (<code>/ws</code>) work without it.</p></html>";
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

