//! `POST /api/v1/import/{format}`: the same importers as `aednet import`, over HTTP. The body is
//! the file itself (PBF, CSV or GeoJSON); options are query parameters. Answers with the import
//! report. Admin and planner only. The import runs on a blocking thread, not the async
//! workers.

use aednet_core::{Event, Role};
use aednet_import::{CsvOptions, ImportOptions, ImportReport};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::post;
use axum::{Json, Router};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Params;
use crate::state::AppState;

/// Imports are whole files: a city's OSM extract is tens of megabytes.
pub const MAX_IMPORT_BODY: usize = 256 * 1024 * 1024;

const IMPORTERS: &[Role] = &[Role::Admin, Role::Planner];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/import/{format}", post(import))
        // The role is checked before the (large) body is read, not after.
        .route_layer(axum::middleware::from_fn(|req, next| {
            crate::auth::require_roles(IMPORTERS, req, next)
        }))
        .layer(DefaultBodyLimit::max(MAX_IMPORT_BODY))
}

/// Import a file. `format` is `osm` (PBF), `csv` or `geojson`.
#[utoipa::path(post, path = "/api/v1/import/{format}", tag = "import",
    params(("format" = String, Path, description = "osm | csv | geojson"),
        ("source" = Option<String>, Query), ("strict" = Option<bool>, Query),
        ("tz" = Option<String>, Query), ("admin_level" = Option<u8>, Query),
        ("name" = Option<String>, Query, description = "file name used in the default source"),
        ("lat_col" = Option<String>, Query), ("lon_col" = Option<String>, Query),
        ("name_col" = Option<String>, Query), ("address_col" = Option<String>, Query),
        ("id_col" = Option<String>, Query), ("delimiter" = Option<String>, Query),
        ("encoding" = Option<String>, Query)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("bearer" = [])),
    responses((status = 200, body = ImportReport), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller, params, body), fields(bytes = body.len()))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Path(format): Path<String>,
    params: Params,
    body: Bytes,
) -> ApiResult<Json<ImportReport>> {
    caller.require(IMPORTERS)?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "body",
            "the request body must be the file to import",
        ));
    }
    if !matches!(format.as_str(), "osm" | "csv" | "geojson") {
        return Err(ApiError::bad_request(
            "format",
            "format must be osm, csv or geojson",
        ));
    }
    let opts = options(&params)?;
    let name = params.get("name").unwrap_or("upload").to_string();
    // Parsing a city's extract is seconds of CPU between the store's awaits: run it on a
    // background thread (driving its store calls there) so the async workers keep answering
    // callers meanwhile, and at a low priority so it does not take their cores either.
    let store = state.store.clone();
    let (kind, job_opts) = (format.clone(), opts.clone());
    let runtime = tokio::runtime::Handle::current();
    let result = state
        .background
        .run(move || {
            let pb = indicatif::ProgressBar::hidden();
            let store = store.as_ref();
            runtime.block_on(async {
                match kind.as_str() {
                    "osm" => aednet_import::import_osm_bytes(store, &body, &job_opts, &pb).await,
                    "csv" => aednet_import::import_csv(store, &body, &name, &job_opts, &pb).await,
                    _ => aednet_import::import_geojson(store, &body, &name, &job_opts, &pb).await,
                }
            })
        })
        .await?;
    let report = result.map_err(import_error)?;
    state.bus.publish(Event::BulkChange {
        source: opts.source.clone().unwrap_or(format),
    });
    for d in &report.derived {
        if let Some(version) = d.version {
            state.bus.publish(Event::ArtifactReplaced {
                kind: d.kind.clone(),
                version,
            });
        }
    }
    state.metrics.aeds.set(state.store.count_aeds().await?);
    Ok(Json(report))
}

fn options(params: &Params) -> ApiResult<ImportOptions> {
    let tz = params
        .get("tz")
        .map(|t| {
            t.parse::<chrono_tz::Tz>()
                .map_err(|_| ApiError::bad_request("tz", format!("unknown time zone '{t}'")))
        })
        .transpose()?;
    let delimiter = match params.get("delimiter") {
        None => None,
        Some("tab" | "\\t") => Some('\t'),
        Some(d) if d.chars().count() == 1 => d.chars().next(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "delimiter",
                "delimiter must be one character or 'tab'",
            ))
        }
    };
    let s = |k: &str| params.get(k).map(str::to_string);
    Ok(ImportOptions {
        source: s("source"),
        strict: params
            .parse::<bool>("strict", "true or false")?
            .unwrap_or(false),
        tz,
        admin_level: params
            .parse::<u8>("admin_level", "an integer from 1 to 11")?
            .unwrap_or(8),
        csv: CsvOptions {
            lat_col: s("lat_col"),
            lon_col: s("lon_col"),
            name_col: s("name_col"),
            address_col: s("address_col"),
            id_col: s("id_col"),
            delimiter,
            encoding: s("encoding"),
        },
        ..ImportOptions::default()
    })
}

/// Whole-file failures: the file is unreadable (400), strict mode found bad records (422), or
/// the store failed (500, detail logged).
fn import_error(e: aednet_import::ImportError) -> ApiError {
    use aednet_import::ImportError as E;
    match e {
        E::Store(s) => ApiError::from(s),
        other if other.is_client_error() => {
            ApiError::Invalid(aednet_core::FieldError::new("body", other.to_string()))
        }
        other => ApiError::Internal(other.to_string()),
    }
}
