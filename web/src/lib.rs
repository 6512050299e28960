//! The consoles as static assets embedded in the binary: the public AED map at `/`, the
//! dispatcher console at `/dispatch`, the maintenance board at `/maintenance`, the planner at
//! `/planner`, the admin's rescuer list with QR enrolment at `/rescuers`, and the responder app
//! (an installable PWA with its service worker and manifest) at `/responder`. Plain ES modules (no build step, no CDN) sharing `assets/common.js` (zh-CN/en
//! strings, login with a role token kept in `sessionStorage`, API and WebSocket helpers, the
//! Leaflet map over the street basemap, `assets/basemap.js`) with Leaflet, MapLibre GL JS and
//! its Leaflet binding vendored by `scripts/vendor-web.sh` and `scripts/vendor-maplibre.sh`.
//! `e2e/` drives all four in Debian's chromium against the real binary.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file: its bytes, content type and whether it may be cached for a day (the
/// vendored library, which changes only with the binary's version) or must be revalidated.
struct Asset {
    path: &'static str,
    body: &'static [u8],
    content_type: &'static str,
}

macro_rules! asset {
    ($path:literal, $ct:expr) => {
        Asset {
            path: $path,
            body: include_bytes!(concat!("../assets/", $path)),
            content_type: $ct,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const MANIFEST: &str = "application/manifest+json";

static ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("dispatch.html", HTML),
    asset!("maintenance.html", HTML),
    asset!("planner.html", HTML),
    asset!("rescuers.html", HTML),
    asset!("rescuers.js", JS),
    asset!("responder.html", HTML),
    asset!("responder.js", JS),
    asset!("responder.css", CSS),
    asset!("responder-sw.js", JS),
    asset!("responder.webmanifest", MANIFEST),
    asset!("responder-192.png", "image/png"),
    asset!("responder-512.png", "image/png"),
    asset!("app.css", CSS),
    asset!("common.js", JS),
    asset!("i18n.js", JS),
    asset!("public.js", JS),
    asset!("dispatch.js", JS),
    asset!("maintenance.js", JS),
    asset!("planner.js", JS),
    asset!("basemap.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("vendor/leaflet/leaflet.js", JS),
    asset!("vendor/leaflet/leaflet.css", CSS),
    asset!("vendor/leaflet/LICENSE", "text/plain; charset=utf-8"),
    asset!("vendor/leaflet/images/layers.png", "image/png"),
    asset!("vendor/leaflet/images/layers-2x.png", "image/png"),
    asset!("vendor/leaflet/images/marker-icon.png", "image/png"),
    asset!("vendor/leaflet/images/marker-icon-2x.png", "image/png"),
    asset!("vendor/leaflet/images/marker-shadow.png", "image/png"),
    // The street basemap's renderer (scripts/vendor-maplibre.sh); loaded only with WebGL.
    asset!("vendor/maplibre-gl/maplibre-gl.mjs", JS),
    asset!("vendor/maplibre-gl/maplibre-gl-worker.mjs", JS),
    asset!("vendor/maplibre-gl/maplibre-gl.css", CSS),
    asset!(
        "vendor/maplibre-gl/LICENSE.txt",
        "text/plain; charset=utf-8"
    ),
    asset!("vendor/maplibre-gl-leaflet/leaflet-maplibre-gl.mjs", JS),
    asset!(
        "vendor/maplibre-gl-leaflet/LICENSE",
        "text/plain; charset=utf-8"
    ),
];

/// Strong validators, computed once: a changed binary gets new ETags, so browsers revalidate
/// cheaply (304) instead of keeping a stale console.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            // FNV-1a: not a security hash, only a fingerprint of embedded bytes.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in a.body {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            format!("\"{h:016x}\"")
        })
        .collect()
});

/// The pages' content security policy: everything from this origin, nothing from elsewhere
/// (no CDN, no third-party tiles; the basemap's tiles and MapLibre's module worker come from
/// this origin); `unsafe-inline` styles only because Leaflet positions its panes with inline
/// styles. WebSockets to this origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// Routes for the embedded pages; generic over the state so any app can merge it.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { serve("index.html", &h) }),
        )
        .route(
            "/dispatch",
            get(|h: HeaderMap| async move { serve("dispatch.html", &h) }),
        )
        .route(
            "/maintenance",
            get(|h: HeaderMap| async move { serve("maintenance.html", &h) }),
        )
        .route(
            "/planner",
            get(|h: HeaderMap| async move { serve("planner.html", &h) }),
        )
        .route(
            "/rescuers",
            get(|h: HeaderMap| async move { serve("rescuers.html", &h) }),
        )
        // The responder app; its service worker and manifest sit at the root so their scope
        // covers `/responder`.
        .route(
            "/responder",
            get(|h: HeaderMap| async move { serve("responder.html", &h) }),
        )
        .route(
            "/responder-sw.js",
            get(|h: HeaderMap| async move { serve("responder-sw.js", &h) }),
        )
        .route(
            "/responder.webmanifest",
            get(|h: HeaderMap| async move { serve("responder.webmanifest", &h) }),
        )
        .route(
            "/favicon.ico",
            get(|h: HeaderMap| async move { serve("favicon.svg", &h) }),
        )
        .route(
            "/assets/{*path}",
            get(|Path(p): Path<String>, h: HeaderMap| async move { serve(&p, &h) }),
        )
}

fn serve(path: &str, req: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"not_found","message":"no such asset","field":null}"#,
        )
            .into_response();
    };
    let a = &ASSETS[i];
    let etag = &ETAGS[i];
    let cache = if path.starts_with("vendor/") {
        "public, max-age=86400"
    } else {
        "no-cache"
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, v);
    }
    if a.content_type == HTML {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, a.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_matching_content_type() {
        for a in ASSETS {
            let ext = a.path.rsplit('.').next().unwrap_or("");
            let want = match ext {
                "html" => HTML,
                "js" | "mjs" => JS,
                "css" => CSS,
                "png" => "image/png",
                "svg" => "image/svg+xml",
                "webmanifest" => MANIFEST,
                _ => "text/plain; charset=utf-8",
            };
            assert_eq!(a.content_type, want, "{}", a.path);
            assert!(!a.body.is_empty(), "{} is empty", a.path);
        }
    }

    #[test]
    fn pages_load_nothing_from_other_origins() {
        for a in ASSETS.iter().filter(|a| a.content_type == HTML) {
            let text = std::str::from_utf8(a.body).unwrap();
            assert!(!text.contains("http://"), "{}", a.path);
            assert!(!text.contains("https://"), "{}", a.path);
            assert!(!text.contains("<script>"), "{}: inline script", a.path);
        }
    }

    #[test]
    fn etag_revalidation() {
        let r = serve("app.css", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        let etag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve("app.css", &h).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            serve("../Cargo.toml", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
