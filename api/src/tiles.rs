//! The street basemap over HTTP: `/tiles/{z}/{x}/{y}.pbf` (Mapbox Vector Tiles, gzip) and
//! `/tiles/basemap.json` (TileJSON-like: zooms, bounds, attribution, the archive's version)
//! from the `basemap` artifact held in memory ([`crate::artifacts::follow`]). A later import
//! swaps the archive whole; a request keeps the copy it started with.
//!
//! Caching as martin does it: a tile URL carries the archive version (`?v=`), and a versioned
//! URL of the version in use is `immutable` for a year; every answer has an ETag of version
//! and content fingerprint, so an unversioned URL revalidates to a 304. An empty tile inside
//! the zoom range is 204 (MapLibre draws nothing and does not retry); bad coordinates are 400
//! naming the field.

use std::sync::Arc;

use aednet_basemap::Archive;
use aednet_store::artifacts::kind;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use sha2::Digest;

use crate::artifacts::{follow, ArtifactSlot};
use crate::{ApiError, AppState};

/// A decoded archive with its content fingerprint (two databases may both be at version 1).
#[derive(Debug)]
pub struct Basemap {
    pub archive: Archive,
    pub fingerprint: String,
}

pub fn decode(bytes: &[u8]) -> Result<Basemap, String> {
    let archive = Archive::decode(bytes).map_err(|e| e.to_string())?;
    let d = sha2::Sha256::digest(bytes);
    let fingerprint = d[..6].iter().map(|b| format!("{b:02x}")).collect();
    Ok(Basemap {
        archive,
        fingerprint,
    })
}

pub type Tiles = Arc<ArtifactSlot<Basemap>>;

/// Loads the basemap now and follows later imports.
pub fn start(state: &AppState) -> Tiles {
    follow(state, kind::BASEMAP, decode)
}

pub fn router(tiles: Tiles) -> Router<AppState> {
    let t2 = tiles.clone();
    Router::new()
        .route(
            "/tiles/basemap.json",
            get(move |h: HeaderMap| {
                let t = t2.clone();
                async move { tilejson(&t, &h) }
            }),
        )
        .route(
            "/tiles/{z}/{x}/{file}",
            get(
                move |Path((z, x, file)): Path<(String, String, String)>,
                      Query(q): Query<TileQuery>,
                      h: HeaderMap| {
                    let t = tiles.clone();
                    async move { tile(&t, &z, &x, &file, q.v, &h) }
                },
            ),
        )
}

#[derive(Debug, Deserialize)]
pub struct TileQuery {
    /// The archive version the client's TileJSON named; enables `immutable`.
    v: Option<i64>,
}

fn no_basemap() -> Response {
    ApiError::NotFound.into_response()
}

fn fresh(req: &HeaderMap, etag: &str) -> bool {
    req.get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn tilejson(tiles: &Tiles, req: &HeaderMap) -> Response {
    let Some(loaded) = tiles.get() else {
        return no_basemap();
    };
    let m = &loaded.value.archive.meta;
    let etag = format!("\"{}-{}\"", loaded.info.version, loaded.value.fingerprint);
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    if fresh(req, &etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let body = serde_json::json!({
        "tilejson": "3.0.0",
        // Relative: the page makes it absolute (MapLibre fetches tiles from a worker).
        "tiles": [format!("/tiles/{{z}}/{{x}}/{{y}}.pbf?v={}", loaded.info.version)],
        "version": loaded.info.version,
        "minzoom": m.minzoom,
        "maxzoom": m.maxzoom,
        "bounds": m.bounds,
        "center": m.center,
        "attribution": m.attribution,
        "origin": m.origin,
        "vector_layers": m.layers.iter().map(|l| serde_json::json!({"id": l})).collect::<Vec<_>>(),
        "built_at": loaded.info.built_at,
    });
    (headers, Json(body)).into_response()
}

fn tile(tiles: &Tiles, z: &str, x: &str, file: &str, v: Option<i64>, req: &HeaderMap) -> Response {
    let parsed = (|| {
        let z: u8 = z
            .parse()
            .ok()
            .filter(|z| *z <= 30)
            .ok_or_else(|| ApiError::bad_request("z", "z must be a zoom level 0–30"))?;
        let n = 1u64 << z;
        let x: u32 = x
            .parse()
            .ok()
            .filter(|x| u64::from(*x) < n)
            .ok_or_else(|| {
                ApiError::bad_request("x", format!("x must be 0–{} at zoom {z}", n - 1))
            })?;
        let y: u32 = file
            .strip_suffix(".pbf")
            .or_else(|| file.strip_suffix(".mvt"))
            .ok_or_else(|| ApiError::bad_request("y", "the tile must be {y}.pbf"))?
            .parse()
            .ok()
            .filter(|y| u64::from(*y) < n)
            .ok_or_else(|| {
                ApiError::bad_request("y", format!("y must be 0–{} at zoom {z}", n - 1))
            })?;
        Ok::<_, ApiError>((z, x, y))
    })();
    let (z, x, y) = match parsed {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let Some(loaded) = tiles.get() else {
        return no_basemap();
    };
    let a = &loaded.value.archive;
    if z < a.meta.minzoom || z > a.meta.maxzoom {
        return ApiError::bad_request(
            "z",
            format!(
                "the basemap has zooms {}–{}",
                a.meta.minzoom, a.meta.maxzoom
            ),
        )
        .into_response();
    }
    let etag = format!("\"{}-{}\"", loaded.info.version, loaded.value.fingerprint);
    let mut headers = HeaderMap::new();
    // Only a URL naming the version in use may be kept for good; a stale or missing `v` is
    // revalidated, so a client never keeps an old import's tile forever.
    let cache = if v == Some(loaded.info.version) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    if fresh(req, &etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let Some(gz) = a.tile(z, x, y) else {
        return (StatusCode::NO_CONTENT, headers).into_response();
    };
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.mapbox-vector-tile"),
    );
    let gzip_ok = req
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    if gzip_ok {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return (headers, gz.to_vec()).into_response();
    }
    match aednet_basemap::archive::gunzip(gz) {
        Ok(raw) => (headers, raw).into_response(),
        Err(e) => ApiError::Internal(format!("basemap tile {z}/{x}/{y}: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aednet_core::event::{Event, LocalBus};
    use aednet_core::osm::{Extract, Origin, Way};
    use aednet_core::{LatLon, SystemClock};
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn town(name: &str) -> Vec<u8> {
        let coords = vec![
            LatLon {
                lat: 47.14,
                lon: 9.50,
            },
            LatLon {
                lat: 47.15,
                lon: 9.53,
            },
        ];
        let e = Extract {
            ways: vec![Way {
                id: 1,
                tags: [("highway", "primary"), ("name", name)]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                nodes: vec![1, 2],
                coords,
            }],
            origin: Origin::Osm,
            ..Default::default()
        };
        aednet_basemap::build(&e, &aednet_basemap::TileOptions::default(), |_| {}).bytes
    }

    async fn get(app: &Router, uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::get(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        app.clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn body(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), 1 << 24)
            .await
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn tiles_cache_headers_errors_and_a_swap() {
        let store = aednet_store::connect("sqlite::memory:").await.unwrap();
        let state = AppState::new(
            store.clone(),
            Arc::new(LocalBus::default()),
            Arc::new(SystemClock),
        );
        let tiles = start(&state);
        let app = router(tiles.clone()).with_state(state.clone());
        // Nothing imported yet.
        assert_eq!(
            get(&app, "/tiles/basemap.json", &[]).await.status(),
            StatusCode::NOT_FOUND
        );
        let v1 = store
            .put_artifact(kind::BASEMAP, "{}", &town("Landstrasse"))
            .await
            .unwrap();
        state.bus.publish(Event::ArtifactReplaced {
            kind: kind::BASEMAP.into(),
            version: v1,
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while tiles.get().is_none() {
            assert!(std::time::Instant::now() < deadline, "basemap loaded");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let tj: serde_json::Value =
            serde_json::from_slice(&body(get(&app, "/tiles/basemap.json", &[]).await).await)
                .unwrap();
        assert_eq!(tj["minzoom"], 8);
        assert_eq!(tj["attribution"], "© OpenStreetMap contributors");
        let tile_url = tj["tiles"][0]
            .as_str()
            .unwrap()
            .replace("{z}/{x}/{y}", "14/8625/5752");
        assert!(tile_url.ends_with(&format!("?v={v1}")), "{tile_url}");

        // A stored tile: gzip when accepted, immutable under its version, ETag revalidation.
        let r = get(&app, &tile_url, &[("accept-encoding", "gzip, br")]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(r.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable"));
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
        let gz = body(r).await;
        let raw = aednet_basemap::archive::gunzip(&gz).unwrap();
        let feats = aednet_basemap::mvt::decode_tile(&raw).unwrap();
        assert!(feats.iter().any(|f| f.layer == "transportation"));
        let plain = get(&app, "/tiles/14/8625/5752.pbf", &[]).await;
        assert_eq!(plain.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(body(plain).await, raw);
        let r = get(&app, "/tiles/14/8625/5752.pbf", &[("if-none-match", &etag)]).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

        // Empty inside the range: 204. Bad coordinates: 400 naming the field.
        assert_eq!(
            get(&app, "/tiles/14/0/0.pbf", &[]).await.status(),
            StatusCode::NO_CONTENT
        );
        for (uri, field) in [
            ("/tiles/14/16384/0.pbf", "x"),
            ("/tiles/14/0/99999.pbf", "y"),
            ("/tiles/99/0/0.pbf", "z"),
            ("/tiles/x/0/0.pbf", "z"),
            ("/tiles/14/0/0.png", "y"),
            ("/tiles/20/0/0.pbf", "z"),
        ] {
            let r = get(&app, uri, &[]).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri}");
            let b: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
            assert_eq!(b["field"], field, "{uri}");
        }

        // A later import swaps the archive whole: new version, new ETag, new content.
        let v2 = store
            .put_artifact(kind::BASEMAP, "{}", &town("Hauptstrasse"))
            .await
            .unwrap();
        state.bus.publish(Event::ArtifactReplaced {
            kind: kind::BASEMAP.into(),
            version: v2,
        });
        while tiles.get().map(|l| l.info.version) != Some(v2) {
            assert!(std::time::Instant::now() < deadline, "new basemap loaded");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let r = get(&app, "/tiles/14/8625/5752.pbf", &[("if-none-match", &etag)]).await;
        assert_eq!(r.status(), StatusCode::OK, "the old ETag no longer matches");
        let feats = aednet_basemap::mvt::decode_tile(&body(r).await).unwrap();
        assert!(feats
            .iter()
            .any(|f| f.props.get("name")
                == Some(&aednet_basemap::mvt::Prop::Str("Hauptstrasse".into()))));
    }
}
