//! The network as the coverage map needs it, loaded from the store: districts, AED entries,
//! the H3 grid over them, and a map built without a server (`aednet plan`).

use std::sync::Arc;

use aednet_core::district::District;
use aednet_coverage::{CoverageMap, DistrictArea, Grid, PopulationPoint};
use aednet_geoindex::{GeoIndex, WalkModel};
use aednet_store::{ListQuery, Store};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::config::{read_population_csv, CoverageConfig};

/// The network as the map needs it, loaded from the store.
#[derive(Debug, Clone)]
pub struct Network {
    pub districts: Vec<District>,
    pub entries: Vec<aednet_geoindex::AedEntry>,
}

pub async fn load_districts(store: &dyn Store) -> aednet_store::Result<Vec<District>> {
    aednet_store::collect_all(ListQuery::default(), |q| async move {
        store.list_districts(&q).await
    })
    .await
}

pub async fn load_network(store: &dyn Store, geo: &GeoIndex) -> aednet_store::Result<Network> {
    let districts = load_districts(store).await?;
    let rows = store.load_aed_index().await?;
    let entries = geo.with_schedules(|s| {
        rows.into_iter()
            .map(|r| crate::geo_sync::entry_from_row(r, s))
            .collect()
    });
    Ok(Network { districts, entries })
}

pub fn district_areas(districts: &[District]) -> Vec<DistrictArea> {
    districts
        .iter()
        .filter_map(|d| {
            Some(DistrictArea {
                id: d.id,
                population: d.data.population.map(|p| p as f64),
                area: d.data.multipolygon()?,
            })
        })
        .collect()
}

/// About how many cells of resolution `res` the districts hold: their area over the area of
/// a cell where they are (H3 cells differ in size across the globe, little across a city).
/// `None` without district outlines (the grid then follows the population points).
pub fn estimated_cells(districts: &[District], res: u8) -> Option<f64> {
    use geo::{Centroid, ChamberlainDuquetteArea};
    let res = aednet_coverage::resolution(res)?;
    let areas = district_areas(districts);
    let mut area_m2 = 0.0;
    let mut at = None;
    for a in &areas {
        area_m2 += a.area.chamberlain_duquette_unsigned_area();
        at = at.or_else(|| a.area.centroid());
    }
    let at = at?;
    let cell = h3o::LatLng::new(at.y(), at.x()).ok()?.to_cell(res);
    Some(area_m2 / cell.area_m2())
}

/// The grid over the districts; without districts, the cells of the population grid.
pub fn build_grid(
    districts: &[District],
    res: u8,
    points: &[PopulationPoint],
) -> Result<Grid, String> {
    let res = aednet_coverage::resolution(res).ok_or("bad resolution")?;
    let areas = district_areas(districts);
    if areas.is_empty() {
        return Ok(Grid::from_points(points, res));
    }
    Grid::for_districts(&areas, res, points).map_err(|e| e.to_string())
}

/// The zone a week is counted in: where the first cell is (the network is one city).
pub(super) fn zone_of(grid: &Grid) -> Tz {
    grid.cells
        .first()
        .map_or(Tz::UTC, |c| aednet_core::hours::time_zone_at(c.center))
}

/// Builds a map of the store's network at `at` without a server (the `aednet plan` command).
pub async fn offline_map(
    store: &dyn Store,
    config: &CoverageConfig,
    walk: WalkModel,
    at: DateTime<Utc>,
) -> Result<(CoverageMap, Vec<District>, Tz), String> {
    config.validate()?;
    let population = match &config.population_grid {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("coverage.population_grid {}: {e}", path.display()))?;
            read_population_csv(&text)?.0
        }
        None => Vec::new(),
    };
    let geo = GeoIndex::default();
    let net = load_network(store, &geo).await.map_err(|e| e.to_string())?;
    let grid = Arc::new(build_grid(&net.districts, config.res, &population)?);
    let tz = zone_of(&grid);
    let params = config.params(walk);
    // The stored walking network, when walks are to be on it (`[coverage] walk`).
    let network = if params.walk_on == aednet_geoindex::WalkKind::Network {
        match store
            .get_artifact(aednet_store::artifacts::kind::WALK_GRAPH)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(a) => {
                let g = aednet_routing::Graph::decode(&a.bytes).map_err(|e| e.to_string())?;
                Some(Arc::new(aednet_coverage::CellNetwork::new(
                    Arc::new(g),
                    &grid,
                    &walk,
                )))
            }
            None => None,
        }
    } else {
        None
    };
    let map = CoverageMap::build_on(grid, params, net.entries, at, network);
    Ok((map, net.districts, tz))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aednet_core::district::DistrictData;

    fn district(id: i64, lat: f64, lon: f64, side: f64) -> District {
        let ring = vec![
            vec![lon, lat],
            vec![lon + side, lat],
            vec![lon + side, lat + side * 0.8],
            vec![lon + side * 0.4, lat + side],
            vec![lon, lat],
        ];
        District {
            id,
            data: DistrictData {
                source: "test".into(),
                external_ref: None,
                name: format!("d{id}"),
                code: None,
                admin_level: None,
                population: Some(1000),
                boundary: Some(geojson::Geometry::new(geojson::Value::Polygon(vec![ring]))),
                target_aeds_per_10k: None,
                target_rescuers: None,
                tags: Default::default(),
            },
            target_aeds: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn cell_estimate_is_close_to_the_built_grid() {
        // Quzhou, Vaduz and Helsinki latitudes; a few km² to a few hundred.
        for (lat, lon, side) in [(28.9, 118.8, 0.05), (47.1, 9.5, 0.02), (60.1, 24.9, 0.2)] {
            let ds = vec![
                district(1, lat, lon, side),
                district(2, lat + side * 1.5, lon, side),
            ];
            for res in [8, 9, 10] {
                let est = estimated_cells(&ds, res).unwrap();
                let built = build_grid(&ds, res, &[]).unwrap().len() as f64;
                // Cells are counted by centre: a few along the outline go either way.
                let err = (est - built).abs();
                assert!(
                    err <= 0.1 * built + 3.0,
                    "res {res} at {lat}: estimated {est:.0}, built {built}"
                );
            }
        }
        assert_eq!(estimated_cells(&[], 9), None);
    }
}
