//! The OpenAPI 3.1 document served at `/api/openapi.json`, generated from the handlers'
//! annotations so it cannot drift from the code.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{aeds, districts, enrolment, error, geocode, import, rescuers, stations, tokens};

#[derive(OpenApi)]
#[openapi(
    info(title = "aednet API", description = "AED registry, stations, rescuers and districts. Public reads need no token; writes need a bearer token with a suitable role."),
    paths(
        aeds::list_aeds, aeds::get_aed, aeds::create_aed, aeds::replace_aed, aeds::delete_aed, aeds::set_readiness,
        stations::list_stations, stations::get_station, stations::create_station, stations::replace_station,
        stations::delete_station,
        rescuers::list_rescuers, rescuers::get_rescuer, rescuers::create_rescuer, rescuers::replace_rescuer,
        rescuers::delete_rescuer, enrolment::enrol,
        districts::list_districts, districts::get_district, districts::create_district, districts::replace_district,
        districts::delete_district,
        tokens::create_token, tokens::list_tokens, tokens::revoke_token, tokens::change_token, tokens::whoami,
        import::import,
        geocode::geocode,
    ),
    components(schemas(error::ErrorBody, aednet_core::LatLon, geocode::GeocodeResult)),
    modifiers(&BearerAuth),
    tags((name = "aeds"), (name = "stations"), (name = "rescuers"), (name = "districts"), (name = "tokens"), (name = "import"), (name = "geocode"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON, with the paths of another crate's routers merged in.
pub fn document(extra: Option<utoipa::openapi::OpenApi>) -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    if let Some(extra) = extra {
        doc.merge(extra);
    }
    serde_json::to_value(&doc).unwrap_or_default()
}
