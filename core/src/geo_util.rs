//! Coordinates and distances on the sphere.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{FieldError, Validated};

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS84 position. Constructed only through [`LatLon::new`], so a value in hand is valid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

impl LatLon {
    /// Validates ranges and rejects NaN/∞. `field_prefix` names the fields in the error
    /// (`"lat"`, `"location.lat"`).
    pub fn new(lat: f64, lon: f64) -> Validated<Self> {
        Self::named(lat, lon, "lat", "lon")
    }

    pub fn named(lat: f64, lon: f64, lat_field: &str, lon_field: &str) -> Validated<Self> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(FieldError::new(
                lat_field,
                "latitude must be a number between -90 and 90",
            ));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(FieldError::new(
                lon_field,
                "longitude must be a number between -180 and 180",
            ));
        }
        Ok(Self { lat, lon })
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(&self, other: &LatLon) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }

    pub fn to_point(self) -> geo::Point<f64> {
        geo::Point::new(self.lon, self.lat)
    }
}

/// A bounding box in degrees, as `min_lon,min_lat,max_lon,max_lat` (the GeoJSON/OGC order).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

impl BBox {
    pub fn parse(field: &str, s: &str) -> Validated<Self> {
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| FieldError::new(field, "expected min_lon,min_lat,max_lon,max_lat"))?;
        let [min_lon, min_lat, max_lon, max_lat] = parts[..] else {
            return Err(FieldError::new(
                field,
                "expected four numbers: min_lon,min_lat,max_lon,max_lat",
            ));
        };
        LatLon::named(min_lat, min_lon, field, field)?;
        LatLon::named(max_lat, max_lon, field, field)?;
        if min_lat > max_lat || min_lon > max_lon {
            return Err(FieldError::new(field, "minimum must not exceed maximum"));
        }
        Ok(Self {
            min_lon,
            min_lat,
            max_lon,
            max_lat,
        })
    }

    pub fn contains(&self, p: &LatLon) -> bool {
        p.lat >= self.min_lat
            && p.lat <= self.max_lat
            && p.lon >= self.min_lon
            && p.lon <= self.max_lon
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range_and_nan() {
        assert_eq!(LatLon::new(91.0, 0.0).unwrap_err().field, "lat");
        assert_eq!(LatLon::new(0.0, -180.5).unwrap_err().field, "lon");
        assert!(LatLon::new(f64::NAN, 0.0).is_err());
        assert!(LatLon::new(-90.0, 180.0).is_ok());
    }

    #[test]
    fn haversine_matches_known_distance() {
        // Vaduz town hall to Schaan church, about 2.8 km apart.
        let vaduz = LatLon::new(47.1410, 9.5209).unwrap();
        let schaan = LatLon::new(47.1650, 9.5097).unwrap();
        let d = vaduz.distance_m(&schaan);
        assert!((2_600.0..2_900.0).contains(&d), "{d}");
        // A degree of latitude is ~111.2 km everywhere.
        let a = LatLon::new(10.0, 50.0).unwrap();
        let b = LatLon::new(11.0, 50.0).unwrap();
        assert!((a.distance_m(&b) - 111_195.0).abs() < 50.0);
        // Across the antimeridian the short way round is used.
        let e = LatLon::new(0.0, 179.9).unwrap();
        let w = LatLon::new(0.0, -179.9).unwrap();
        assert!((e.distance_m(&w) - 22_239.0).abs() < 10.0);
    }

    #[test]
    fn bbox_parses_and_validates() {
        let b = BBox::parse("bbox", "9.4,47.0,9.6,47.3").unwrap();
        assert!(b.contains(&LatLon::new(47.1, 9.5).unwrap()));
        assert_eq!(BBox::parse("bbox", "1,2,3").unwrap_err().field, "bbox");
        assert!(BBox::parse("bbox", "9.6,47.0,9.4,47.3").is_err());
        assert!(BBox::parse("bbox", "a,b,c,d").is_err());
    }
}
