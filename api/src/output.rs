//! Response shapes shared by the list and item endpoints: JSON pages with a cursor, and GeoJSON
//! (`Accept: application/geo+json` or `?format=geojson`) for anything with a location.

use aednet_core::geo_util::{BBox, LatLon};
use aednet_store::{ListQuery, Page};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::Params;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;
const GEOJSON: &str = "application/geo+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    GeoJson,
}

impl Format {
    /// `?format=` wins over the `Accept` header.
    pub fn negotiate(headers: &HeaderMap, params: &Params) -> ApiResult<Format> {
        match params.get("format") {
            Some("json") => return Ok(Format::Json),
            Some("geojson") => return Ok(Format::GeoJson),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "format",
                    "format must be json or geojson",
                ))
            }
            None => {}
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(if accept.contains(GEOJSON) {
            Format::GeoJson
        } else {
            Format::Json
        })
    }
}

/// A page of results in JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageBody<T> {
    pub items: Vec<T>,
    /// Opaque cursor for the next page (`?cursor=`); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Something that can be drawn on a map.
pub trait Geo: Serialize {
    fn id(&self) -> i64;
    fn geometry(&self) -> Option<Value>;
    /// Keys to drop from the GeoJSON properties because the geometry carries them.
    const GEOMETRY_KEYS: &'static [&'static str] = &["location"];
    /// Properties only the GeoJSON form carries (e.g. where a map puts a district's name).
    fn extra_properties(&self, _props: &mut serde_json::Map<String, Value>) {}
}

pub fn point(p: LatLon) -> Value {
    json!({"type": "Point", "coordinates": [p.lon, p.lat]})
}

fn feature<T: Geo>(item: &T) -> Value {
    let mut props = serde_json::to_value(item).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut props {
        for k in T::GEOMETRY_KEYS {
            m.remove(*k);
        }
        item.extra_properties(m);
    }
    json!({"type": "Feature", "id": item.id(), "geometry": item.geometry(), "properties": props})
}

fn geojson_response(body: Value) -> Response {
    ([(header::CONTENT_TYPE, GEOJSON)], body.to_string()).into_response()
}

pub fn item_response<T: Geo>(item: &T, format: Format) -> Response {
    match format {
        Format::Json => axum::Json(item).into_response(),
        Format::GeoJson => geojson_response(feature(item)),
    }
}

pub fn page_response<T: Geo>(page: Page<T>, format: Format) -> Response {
    let next_cursor = page.next_after.map(|id| id.to_string());
    match format {
        Format::Json => axum::Json(PageBody {
            items: page.items,
            next_cursor,
        })
        .into_response(),
        Format::GeoJson => {
            let features: Vec<Value> = page.items.iter().map(feature).collect();
            let mut fc = json!({"type": "FeatureCollection", "features": features});
            if let Some(c) = next_cursor {
                // A GeoJSON "foreign member": allowed by RFC 7946 §6.1, ignored by map libraries.
                fc["next_cursor"] = Value::String(c);
            }
            geojson_response(fc)
        }
    }
}

/// Parses the common list parameters: `bbox`, `district_id`, `cursor`, `limit`, `source`.
/// Entity-specific filters (`status`, `kind`) are added by the caller.
pub fn list_query(params: &Params) -> ApiResult<ListQuery> {
    let limit = params
        .parse::<u32>("limit", "an integer from 1 to 1000")?
        .unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            "limit must be an integer from 1 to 1000",
        ));
    }
    let bbox = params
        .get("bbox")
        .map(|b| BBox::parse("bbox", b))
        .transpose()?;
    Ok(ListQuery {
        bbox,
        district_id: params.parse("district_id", "an integer")?,
        after_id: params.parse("cursor", "a cursor returned by a previous page")?,
        source: params.get("source").map(str::to_string),
        limit,
        ..ListQuery::default()
    })
}
