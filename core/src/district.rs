//! Districts: the administrative areas that plans set targets for (Quzhou: 1.5 AEDs per 10,000
//! people per district), with their boundary for point-in-polygon assignment.

use chrono::{DateTime, Utc};
use geo::{Area, BoundingRect, Contains, InteriorPoint, MultiPolygon, Rect};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::geo_util::LatLon;
use crate::validate::{clean, max_len, FieldError, Validated};
use crate::Tags;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DistrictData {
    pub source: String,
    pub external_ref: Option<String>,
    pub name: String,
    /// Administrative code (行政区划代码) or any stable code of the source.
    pub code: Option<String>,
    pub admin_level: Option<i32>,
    pub population: Option<i64>,
    /// Polygon or MultiPolygon, GeoJSON geometry in WGS84.
    #[schema(value_type = Option<Object>)]
    pub boundary: Option<geojson::Geometry>,
    pub target_aeds_per_10k: Option<f64>,
    pub target_rescuers: Option<i64>,
    #[schema(value_type = Object)]
    pub tags: Tags,
}

impl DistrictData {
    /// Target AED count: population × rate / 10,000, rounded up (a plan cannot place half a
    /// unit, and rounding down would let a district meet its target short).
    pub fn target_aeds(&self) -> Option<i64> {
        let (pop, rate) = (self.population?, self.target_aeds_per_10k?);
        Some((pop as f64 * rate / 10_000.0 - 1e-9).ceil() as i64)
    }

    /// Where the district's name belongs on a map: a point inside its largest polygon by area.
    /// The centroid (or the bounding box's centre) of a district with exclaves can land in
    /// another town — Vaduz's and Schaan's exclaves in Liechtenstein pull theirs into a
    /// neighbour — and a concave outline's centroid can lie outside it.
    pub fn label_point(&self) -> Option<LatLon> {
        let mp = self.multipolygon()?;
        let largest =
            mp.0.iter()
                .max_by(|a, b| a.unsigned_area().total_cmp(&b.unsigned_area()))?;
        let p = largest.interior_point()?;
        Some(LatLon {
            lat: p.y(),
            lon: p.x(),
        })
    }

    pub fn multipolygon(&self) -> Option<MultiPolygon<f64>> {
        let geom: geo::Geometry<f64> = self.boundary.clone()?.try_into().ok()?;
        match geom {
            geo::Geometry::Polygon(p) => Some(MultiPolygon::new(vec![p])),
            geo::Geometry::MultiPolygon(mp) => Some(mp),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct District {
    pub id: i64,
    #[serde(flatten)]
    pub data: DistrictData,
    /// Derived from population and rate.
    pub target_aeds: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DistrictInput {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub external_ref: Option<String>,
    pub name: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub admin_level: Option<i32>,
    #[serde(default)]
    pub population: Option<i64>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub boundary: Option<geojson::Geometry>,
    #[serde(default)]
    pub target_aeds_per_10k: Option<f64>,
    #[serde(default)]
    pub target_rescuers: Option<i64>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tags: Tags,
}

impl DistrictInput {
    pub fn validate(self) -> Validated<DistrictData> {
        let name = self.name.trim().to_string();
        if name.is_empty() {
            return Err(FieldError::new("name", "must not be empty"));
        }
        max_len("name", &Some(name.clone()), 200)?;
        if self.population.is_some_and(|p| p < 0) {
            return Err(FieldError::new("population", "must not be negative"));
        }
        if self
            .target_aeds_per_10k
            .is_some_and(|r| !r.is_finite() || r < 0.0)
        {
            return Err(FieldError::new(
                "target_aeds_per_10k",
                "must be a non-negative number",
            ));
        }
        if self.target_rescuers.is_some_and(|r| r < 0) {
            return Err(FieldError::new("target_rescuers", "must not be negative"));
        }
        let data = DistrictData {
            source: clean(self.source).unwrap_or_else(|| "api".to_string()),
            external_ref: clean(self.external_ref),
            name,
            code: clean(self.code),
            admin_level: self.admin_level,
            population: self.population,
            boundary: self.boundary,
            target_aeds_per_10k: self.target_aeds_per_10k,
            target_rescuers: self.target_rescuers,
            tags: self.tags,
        };
        if data.boundary.is_some() {
            let mp = data
                .multipolygon()
                .ok_or_else(|| FieldError::new("boundary", "must be a Polygon or MultiPolygon"))?;
            let rect = mp
                .bounding_rect()
                .ok_or_else(|| FieldError::new("boundary", "must not be empty"))?;
            for c in [rect.min(), rect.max()] {
                LatLon::named(c.y, c.x, "boundary", "boundary")?;
            }
        }
        Ok(data)
    }
}

/// Finds the district containing a point. Districts are tried smallest first, so where
/// levels nest the most specific one wins.
#[derive(Debug, Default)]
pub struct DistrictLocator {
    areas: Vec<(i64, Rect<f64>, MultiPolygon<f64>)>,
}

impl DistrictLocator {
    pub fn new<'a>(districts: impl IntoIterator<Item = (i64, &'a DistrictData)>) -> Self {
        use geo::Area;
        let mut areas: Vec<_> = districts
            .into_iter()
            .filter_map(|(id, d)| {
                let mp = d.multipolygon()?;
                let rect = mp.bounding_rect()?;
                Some((id, rect, mp))
            })
            .collect();
        areas.sort_by(|a, b| a.2.unsigned_area().total_cmp(&b.2.unsigned_area()));
        Self { areas }
    }

    pub fn locate(&self, p: LatLon) -> Option<i64> {
        let pt = p.to_point();
        self.areas
            .iter()
            .find(|(_, rect, mp)| rect.contains(&pt) && mp.contains(&pt))
            .map(|(id, _, _)| *id)
    }

    pub fn is_empty(&self) -> bool {
        self.areas.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x0: f64, y0: f64, size: f64) -> geojson::Geometry {
        geojson::Geometry::new(geojson::Value::Polygon(vec![vec![
            vec![x0, y0],
            vec![x0 + size, y0],
            vec![x0 + size, y0 + size],
            vec![x0, y0 + size],
            vec![x0, y0],
        ]]))
    }

    #[test]
    fn label_point_sits_in_the_largest_part_not_between_exclaves() {
        // A big square at x 0..10 and a small exclave far east at x 40..41: the centroid and
        // the bounding box's centre (x ≈ 2.9 and 20.5) are not where the town is drawn.
        let mp = geojson::Geometry::new(geojson::Value::MultiPolygon(vec![
            match square(40.0, 0.0, 1.0).value {
                geojson::Value::Polygon(p) => p,
                _ => unreachable!(),
            },
            match square(0.0, 0.0, 10.0).value {
                geojson::Value::Polygon(p) => p,
                _ => unreachable!(),
            },
        ]));
        let d = district("Vaduz", 5_000, Some(mp));
        let p = d.label_point().unwrap();
        assert!(
            (0.0..=10.0).contains(&p.lon) && (0.0..=10.0).contains(&p.lat),
            "{p:?}"
        );
        // An L-shaped district: the label lies inside the outline, not in the notch.
        let l = geojson::Geometry::new(geojson::Value::Polygon(vec![vec![
            vec![0.0, 0.0],
            vec![10.0, 0.0],
            vec![10.0, 1.0],
            vec![1.0, 1.0],
            vec![1.0, 10.0],
            vec![0.0, 10.0],
            vec![0.0, 0.0],
        ]]));
        let d = district("L", 1, Some(l));
        let p = d.label_point().unwrap();
        let poly = d.multipolygon().unwrap();
        assert!(
            poly.contains(&geo::Point::new(p.lon, p.lat)),
            "{p:?} outside the L"
        );
        assert_eq!(district("none", 1, None).label_point(), None);
    }

    fn district(name: &str, pop: i64, boundary: Option<geojson::Geometry>) -> DistrictData {
        DistrictInput {
            source: None,
            external_ref: None,
            name: name.into(),
            code: None,
            admin_level: None,
            population: Some(pop),
            boundary,
            target_aeds_per_10k: Some(1.5),
            target_rescuers: None,
            tags: Tags::new(),
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn quzhou_targets_match_the_plan() {
        for (name, pop, target) in [
            ("柯城区", 440_000, 66),
            ("衢江区", 400_000, 60),
            ("龙游县", 400_000, 60),
            ("江山市", 610_000, 92),
            ("常山县", 340_000, 51),
            ("开化县", 360_000, 54),
        ] {
            assert_eq!(
                district(name, pop, None).target_aeds(),
                Some(target),
                "{name}"
            );
        }
    }

    #[test]
    fn locator_prefers_the_smallest_containing_district() {
        let big = district("big", 1, Some(square(0.0, 0.0, 10.0)));
        let small = district("small", 1, Some(square(1.0, 1.0, 1.0)));
        let loc = DistrictLocator::new([(1, &big), (2, &small)]);
        assert_eq!(loc.locate(LatLon::new(1.5, 1.5).unwrap()), Some(2));
        assert_eq!(loc.locate(LatLon::new(5.0, 5.0).unwrap()), Some(1));
        assert_eq!(loc.locate(LatLon::new(50.0, 50.0).unwrap()), None);
    }

    #[test]
    fn boundary_must_be_areal() {
        let mut i = DistrictInput {
            source: None,
            external_ref: None,
            name: "x".into(),
            code: None,
            admin_level: None,
            population: None,
            boundary: Some(geojson::Geometry::new(geojson::Value::Point(vec![
                1.0, 2.0,
            ]))),
            target_aeds_per_10k: None,
            target_rescuers: None,
            tags: Tags::new(),
        };
        assert_eq!(i.clone().validate().unwrap_err().field, "boundary");
        i.boundary = None;
        i.population = Some(-1);
        assert_eq!(i.validate().unwrap_err().field, "population");
    }
}
