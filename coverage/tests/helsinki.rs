//! Population weighting on real data: Helsinki's 250 m population grid (HSY 2020, CC BY 4.0,
//! from ../shared/data) over the bounding box of its points. The data has no AEDs, so we place
//! them ourselves at five public places in the centre (railway station, Kamppi, Stockmann,
//! Market Square, the Cathedral), all 24/7 outdoor cabinets for the test. The population-
//! weighted share differs from the unweighted (area) share because people do not live evenly:
//! the stations and shops are where few people live.
//!
//! `cargo test -p aednet-coverage --test helsinki -- --nocapture` prints the figures.

use std::path::PathBuf;
use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::LatLon;
use aednet_coverage::{
    plan, CoverageMap, DistrictArea, Grid, Mode, Params, PlanRequest, PopulationPoint,
    PopulationSource,
};
use aednet_geoindex::{AedDetail, AedEntry, Schedules};
use chrono::{TimeZone, Utc};
use geo::{polygon, MultiPolygon};

fn points() -> Vec<PopulationPoint> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/helsinki-population-grid.csv");
    assert!(p.exists(), "{} is missing", p.display());
    let mut rdr = csv::Reader::from_path(&p).unwrap();
    rdr.deserialize::<(u32, f64, f64, f64)>()
        .map(|r| {
            let (_, lat, lon, population) = r.unwrap();
            PopulationPoint {
                pos: LatLon::new(lat, lon).unwrap(),
                population,
            }
        })
        .collect()
}

#[test]
fn helsinki_population_weighted_share_differs_from_area_share() {
    let pts = points();
    let total: f64 = pts.iter().map(|p| p.population).sum();
    assert_eq!(total, 71_724.0);
    // The points' bounding box grown by half a grid cell (125 m).
    let (dlat, dlon) = (
        125.0 / 111_320.0,
        125.0 / (111_320.0 * 60.165f64.to_radians().cos()),
    );
    let min_lat = pts.iter().map(|p| p.pos.lat).fold(f64::MAX, f64::min) - dlat;
    let max_lat = pts.iter().map(|p| p.pos.lat).fold(f64::MIN, f64::max) + dlat;
    let min_lon = pts.iter().map(|p| p.pos.lon).fold(f64::MAX, f64::min) - dlon;
    let max_lon = pts.iter().map(|p| p.pos.lon).fold(f64::MIN, f64::max) + dlon;
    let area = MultiPolygon::new(vec![polygon![
        (x: min_lon, y: min_lat), (x: max_lon, y: min_lat), (x: max_lon, y: max_lat),
        (x: min_lon, y: max_lat), (x: min_lon, y: min_lat)
    ]]);
    let tz: chrono_tz::Tz = "Europe/Helsinki".parse().unwrap();
    let sites = [
        ("Helsinki Central Station", 60.1719, 24.9414),
        ("Kamppi", 60.1688, 24.9320),
        ("Stockmann", 60.1685, 24.9421),
        ("Market Square", 60.1675, 24.9525),
        ("Cathedral", 60.1702, 24.9521),
    ];
    let mut schedules = Schedules::default();
    let entries: Vec<AedEntry> = sites
        .iter()
        .enumerate()
        .map(|(i, (name, lat, lon))| {
            let pos = LatLon::new(*lat, *lon).unwrap();
            AedEntry {
                id: i as i64 + 1,
                pos,
                access: Access::Yes,
                status: ReadinessStatus::Ready,
                indoor: Some(false),
                floor: None,
                cabinet_locked: false,
                schedule: schedules.get(Some("24/7"), tz, pos),
                detail: Arc::new(AedDetail {
                    name: Some((*name).into()),
                    ..Default::default()
                }),
            }
        })
        .collect();
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
    for res in [9u8, 10] {
        let grid = Arc::new(
            Grid::for_districts(
                &[DistrictArea {
                    id: 1,
                    population: None,
                    area: area.clone(),
                }],
                aednet_coverage::resolution(res).unwrap(),
                &pts,
            )
            .unwrap(),
        );
        assert_eq!(grid.sources[&1], PopulationSource::Grid);
        let in_grid: f64 = grid.cells.iter().map(|c| c.population).sum();
        assert!((in_grid + grid.unassigned_population - total).abs() < 1e-6);
        for mode in [Mode::RoundTrip, Mode::OneWay] {
            let params = Params {
                mode,
                ..Params::default()
            };
            let map = CoverageMap::build(grid.clone(), params, entries.clone(), at);
            let s = map.summary(|_| true);
            let area_share = s.covered_cells as f64 / s.cells as f64;
            println!(
                "Helsinki res {res} {}: {} cells, {:.0} people in them ({:.0} outside the box); \
                 covered {:.1} % of people vs {:.1} % of cells",
                mode.as_str(),
                s.cells,
                s.population,
                grid.unassigned_population,
                s.share * 100.0,
                area_share * 100.0
            );
            assert!(s.share > 0.0 && s.share < 1.0);
            assert!(
                (s.share - area_share).abs() > 0.005,
                "weighting must matter here: {} vs {area_share}",
                s.share
            );
            // And the placement it suggests for 5 more units gains people.
            let p = plan(
                &map,
                &PlanRequest {
                    add: 5,
                    ..Default::default()
                },
            );
            println!(
                "  + 5 greedy sites: {:.1} % → {:.1} % of people",
                p.before.share * 100.0,
                p.after.share * 100.0
            );
            assert!(p.after.share > p.before.share);
        }
    }
}
