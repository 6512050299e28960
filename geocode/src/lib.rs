//! Offline address and place search for the dispatcher: what was typed on a call ("Aeulestr 5
//! vaduz", "柯城区人民路12号", "Lidl Landstrasse") to a point on the map, with no external
//! service.
//!
//! [`Place`]s come from an import's map features ([`from_extract`]: `addr:*` on nodes,
//! buildings and entrances, named POIs and places, named streets, every `name:*` variant) and
//! from a city's address register (CSV, read by `import/`); each set is stored as an artifact
//! ([`encode`]/[`decode`]) and indexed in memory on the serving nodes ([`Index`]). No I/O here.

mod extract;
mod index;
pub mod synthetic;
pub mod text;

use aednet_core::geo_util::LatLon;
use serde::{Deserialize, Serialize};

pub use extract::{filter_area, filter_node, filter_way, from_extract, ExtractSummary};
pub use index::{Hit, Index};

/// Bumped when the stored form changes; a node refuses a format it does not know.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A house number on a street (or an `addr:full`, or a register entry).
    Address,
    /// A named amenity, shop, station, school, AED, …
    Poi,
    /// A named street; answers with its point nearest the map view.
    Street,
    /// A city, town, village, suburb or hamlet.
    Place,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Address => "address",
            Kind::Poi => "poi",
            Kind::Street => "street",
            Kind::Place => "place",
        }
    }
}

/// One searchable thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Place {
    /// What the dispatcher reads in the result list ("Äulestrasse 5, 9490 Vaduz").
    pub label: String,
    pub kind: Kind,
    /// The POI's or place's type (`pharmacy`, `supermarket`, `village`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub lat: f64,
    pub lon: f64,
    /// Other texts it is found by: `name:*` variants, its street and town, `addr:full`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<String>,
    /// A street's vertices `[lat, lon]` (its nearest one to the map view is the answer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub line: Vec<[f64; 2]>,
}

impl Place {
    pub fn pos(&self) -> LatLon {
        LatLon {
            lat: self.lat,
            lon: self.lon,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    places: Vec<Place>,
}

/// The stored form: versioned JSON, gzip-compressed.
pub fn encode(places: &[Place]) -> Vec<u8> {
    use std::io::Write;
    #[derive(Serialize)]
    struct StoredRef<'a> {
        format: u32,
        places: &'a [Place],
    }
    let json = serde_json::to_vec(&StoredRef {
        format: FORMAT_VERSION,
        places,
    })
    .expect("places serialise");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&json).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Place>, String> {
    use std::io::Read;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut json)
        .map_err(|e| format!("geocode artifact: not gzip ({e})"))?;
    let stored: Stored =
        serde_json::from_slice(&json).map_err(|e| format!("geocode artifact: {e}"))?;
    if stored.format != FORMAT_VERSION {
        return Err(format!(
            "geocode artifact format {} (this build reads {FORMAT_VERSION})",
            stored.format
        ));
    }
    Ok(stored.places)
}

#[cfg(test)]
mod tests;
