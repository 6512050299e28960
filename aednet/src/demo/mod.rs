//! A deterministic synthetic demo city, shaped like Quzhou (衢州): the six districts of the
//! city's AED plan with their real populations and the plan's 1.5 AEDs per 10,000 target; in
//! each, a seat, towns and villages with streets, parks and rivers crossed by a few bridges
//! (an OSM-shaped [`Extract`] for the walking graph and the basemap); a population grid that
//! puts people where the streets are; a few hundred AEDs beside those streets with realistic
//! site types, opening hours and readiness; aid stations of every kind; certified volunteer
//! rescuers.
//!
//! Everything goes through the domain's `validate()` so the demo exercises real validation, and
//! the map features through the same builders as an OSM import. The same seed and `now` give
//! the same city. No third-party data is involved: positions of seats, towns and rivers are
//! near the real ones, everything else is generated.
//!
//! - `spec`: the tables (districts, towns, rivers, sites, names)
//! - `geo`: the local projection in metres, noise, irregular district boundaries
//! - `towns`: settlements with outlines, and rivers
//! - `streets`: the street network, parks and rivers as an [`Extract`]
//! - `population`: the population grid
//! - `records`: AEDs and stations

mod geo;
mod population;
mod records;
mod spec;
mod streets;
mod towns;

use std::sync::Arc;

use aednet_core::aed::AedData;
use aednet_core::district::{DistrictData, DistrictInput, DistrictLocator};
use aednet_core::osm::Extract;
use aednet_core::rescuer::{CertLevel, RescuerData, RescuerInput};
use aednet_core::station::{StationData, StationKind};
use aednet_core::{Secret, Tags};
use aednet_import::osm_extract::FeatureFilter;
use aednet_store::{Store, UpsertOutcome};
use chrono::{DateTime, Duration, Utc};
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

pub use population::{csv as population_csv, PopulationCell};
use records::{pick, Gen};
use spec::{BUS_ROUTES, DISTRICTS, GIVEN, ROADS, SCENIC, SITES, SKILLS, SOURCE, SURNAMES, TEAMS};

#[derive(Debug, Clone)]
pub struct DemoStation {
    pub data: StationData,
    /// Indices into [`DemoCity::aeds`] of the AEDs kept at this station.
    pub aed_indices: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct DemoCity {
    pub districts: Vec<DistrictData>,
    /// Streets, parks, rivers and places, as an OSM import reads them.
    pub extract: Extract,
    /// Where people live; each district's cells add up to its population.
    pub population: Vec<PopulationCell>,
    /// With the index of their district in `districts`.
    pub aeds: Vec<(usize, AedData)>,
    pub stations: Vec<(usize, DemoStation)>,
    pub rescuers: Vec<(usize, RescuerData)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub districts: usize,
    pub aeds: usize,
    pub stations: usize,
    pub rescuers: usize,
    /// Street ways (roads, streets, bridges, footways, steps) in the extract.
    pub streets: usize,
    pub population_cells: usize,
    /// What the builders of derived data made of the streets (walking graph, basemap, …).
    pub derived: Vec<String>,
}

/// The part of `extract` the builders want, as an import reads it: a feature any of
/// `filters` accepts. Without builders, nothing (an import then skips the step too).
fn wanted(extract: &Extract, filters: &[FeatureFilter]) -> Extract {
    Extract {
        nodes: extract
            .nodes
            .iter()
            .filter(|n| filters.iter().any(|f| (f.node)(&n.tags)))
            .cloned()
            .collect(),
        ways: extract
            .ways
            .iter()
            .filter(|w| filters.iter().any(|f| (f.way)(&w.tags)))
            .cloned()
            .collect(),
        areas: extract
            .areas
            .iter()
            .filter(|a| filters.iter().any(|f| (f.area)(&a.tags)))
            .cloned()
            .collect(),
        origin: extract.origin,
        ways_with_missing_nodes: extract.ways_with_missing_nodes,
    }
}

fn polygon(ring: &[(f64, f64)]) -> geojson::Geometry {
    let mut coords: Vec<Vec<f64>> = ring.iter().map(|&(lon, lat)| vec![lon, lat]).collect();
    coords.push(coords[0].clone());
    geojson::Geometry::new(geojson::Value::Polygon(vec![coords]))
}

pub fn generate(seed: u64, now: DateTime<Utc>) -> DemoCity {
    let corners: Vec<(f64, f64)> = DISTRICTS
        .iter()
        .flat_map(|d| d.ring.iter().copied())
        .collect();
    let districts: Vec<DistrictData> = DISTRICTS
        .iter()
        .map(|d| {
            DistrictInput {
                source: Some(SOURCE.into()),
                external_ref: Some(format!("demo-district-{}", d.code)),
                name: d.name.into(),
                code: Some(d.code.into()),
                admin_level: Some(6),
                population: Some(d.population),
                boundary: Some(polygon(&geo::irregular_ring(d.ring, &corners))),
                target_aeds_per_10k: Some(1.5),
                // The plans' target: 2 % of the population registered as trained rescuers
                // (Quzhou: ≥ 1.5 % in the last plan, ≥ 2 % in this one).
                target_rescuers: Some(d.population * 2 / 100),
                tags: Tags::new(),
            }
            .validate()
            .expect("demo districts are valid")
        })
        .collect();
    let locator = DistrictLocator::new(districts.iter().enumerate().map(|(i, d)| (i as i64, d)));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rivers = towns::rivers();
    let towns = towns::settlements(&mut rng, &locator, &rivers);
    let streets = streets::build(&towns, &rivers, &mut rng);
    let totals: Vec<i64> = districts
        .iter()
        .map(|d| d.population.unwrap_or(0))
        .collect();
    let population = population::grid(&towns, &towns::RiverIndex::new(&rivers), &locator, &totals);
    let mut g = Gen {
        rng,
        now,
        locator,
        towns,
        segments: streets.segments,
        last_place: String::new(),
        last_street: String::new(),
    };
    let total_weight: u32 = SITES.iter().map(|s| s.weight).sum();

    let mut aeds = Vec::new();
    for (di, spec) in DISTRICTS.iter().enumerate() {
        let target = districts[di].target_aeds().unwrap_or(0) as f64;
        // Station AEDs (one per 博爱驿站 below) count towards the district's total.
        let count = (target * spec.built).round() as usize - 2;
        for n in 0..count {
            let mut w = g.rng.gen_range(0..total_weight);
            let site = SITES.iter().find(|s| {
                if w < s.weight {
                    true
                } else {
                    w -= s.weight;
                    false
                }
            });
            let site = site.unwrap_or(&SITES[0]);
            let at = g.point(di);
            let road = *pick(&mut g.rng, ROADS);
            let road = g.street_or(road);
            let name = pick(&mut g.rng, site.names)
                .replace("{t}", &g.last_place)
                .replace("{d}", spec.name)
                .replace("{r}", &road);
            let aed = g.aed(di, n, site, name, at);
            aeds.push((di, aed));
        }
    }

    let mut stations = Vec::new();
    for (di, spec) in DISTRICTS.iter().enumerate() {
        // Two 博爱驿站 per district, each an outdoor cabinet with its own locked AED.
        for k in 0..2 {
            let at = g.point(di);
            let name = format!("博爱驿站（{}）", g.last_place);
            let mut aed = g.aed(di, 9000 + k, &SITES[0], format!("{name}AED"), at);
            aed.cabinet_locked = true;
            aed.cabinet_code = Some(Secret::new(format!("{:04}", g.rng.gen_range(0..10_000))));
            aeds.push((di, aed));
            let s = g.station(StationKind::BoaiStation, name, at, "24/7", None);
            stations.push((
                di,
                DemoStation {
                    data: s,
                    aed_indices: vec![aeds.len() - 1],
                },
            ));
        }
        let at = g.point(di);
        let s = g.station(
            StationKind::SchoolStation,
            format!("{}第一中学校园救护站", spec.name),
            at,
            "Mo-Fr 07:00-17:30; PH off",
            None,
        );
        stations.push((
            di,
            DemoStation {
                data: s,
                aed_indices: vec![],
            },
        ));
        let at = g.point(di);
        let s = g.station(
            StationKind::CommunityStation,
            format!("{}社区救护站", spec.towns[0].name),
            at,
            "Mo-Su 08:00-20:00",
            None,
        );
        stations.push((
            di,
            DemoStation {
                data: s,
                aed_indices: vec![],
            },
        ));
    }
    let locate = |lat: f64, lon: f64| {
        aednet_core::LatLon::new(lat, lon)
            .ok()
            .and_then(|p| g.locator.locate(p))
            .map(|i| i as usize)
    };
    let mut scenic = Vec::new();
    for &(name, rating, lat, lon) in SCENIC {
        if let Some(di) = locate(lat, lon) {
            scenic.push((di, name, rating, lat, lon));
        }
    }
    for (di, name, rating, lat, lon) in scenic {
        let s = g.station(
            StationKind::ScenicAidStation,
            name.to_string(),
            (lat, lon),
            "Mo-Su 08:00-17:30",
            Some(rating),
        );
        stations.push((
            di,
            DemoStation {
                data: s,
                aed_indices: vec![],
            },
        ));
    }
    for route in BUS_ROUTES {
        let at = g.point(0);
        let s = g.station(
            StationKind::BusKit,
            format!("{route}车载急救包"),
            at,
            "Mo-Su 06:00-22:00",
            None,
        );
        stations.push((
            0,
            DemoStation {
                data: s,
                aed_indices: vec![],
            },
        ));
    }

    let mut rescuers = Vec::new();
    let mut serial = 0;
    for (di, d) in districts.iter().enumerate() {
        // Certified in the app so far: about one per 1 000 people, well short of the target
        // (`aednet simulate dispatch` generates rescuers at the target instead).
        let n = (d.population.unwrap_or(0) as f64 / 1000.0 * g.rng.gen_range(0.55..0.9)) as usize;
        for _ in 0..n {
            serial += 1;
            let issued = (now - Duration::days(g.rng.gen_range(0..1570))).date_naive();
            let level = match g.rng.gen_range(0..100) {
                0..=84 => CertLevel::FirstAider,
                85..=96 => CertLevel::Instructor,
                _ => CertLevel::Trainer,
            };
            let skills: Vec<String> = SKILLS
                .iter()
                .filter(|_| g.rng.gen_bool(0.5))
                .map(|s| s.to_string())
                .collect();
            let r = RescuerInput {
                name: format!("{}{}", pick(&mut g.rng, SURNAMES), pick(&mut g.rng, GIVEN)),
                phone: Some(format!("1990570{:04}", g.rng.gen_range(0..10_000))),
                certificate_no: format!("ZJQZ-{}-{serial:06}", issued.format("%Y")),
                level,
                cert_issued: issued,
                // Red Cross first-aid certificates are valid for four years.
                cert_expires: issued + Duration::days(4 * 365),
                team: pick(&mut g.rng, TEAMS).map(str::to_string),
                skills,
                on_duty: g.rng.gen_bool(0.3),
                location_consent: g.rng.gen_bool(0.85),
                district_id: None,
            }
            .validate()
            .expect("demo rescuers are valid");
            rescuers.push((di, r));
        }
    }
    DemoCity {
        districts,
        extract: streets.extract,
        population,
        aeds,
        stations,
        rescuers,
    }
}

/// Writes the city into an (empty) store, districts first so everything else can refer to them.
pub async fn load(store: &dyn Store, city: &DemoCity) -> anyhow::Result<DemoSummary> {
    let mut district_ids = Vec::with_capacity(city.districts.len());
    for d in &city.districts {
        district_ids.push(store.create_district(d).await?.id);
    }
    let aeds: Vec<AedData> = city
        .aeds
        .iter()
        .map(|(di, a)| {
            let mut a = a.clone();
            a.district_id = Some(district_ids[*di]);
            a
        })
        .collect();
    let aed_ids: Vec<i64> = store
        .upsert_aeds(&aeds)
        .await?
        .into_iter()
        .map(|o| match o {
            UpsertOutcome::Inserted(id)
            | UpsertOutcome::Updated(id)
            | UpsertOutcome::Unchanged(id) => id,
        })
        .collect();
    for (di, s) in &city.stations {
        let mut data = s.data.clone();
        data.district_id = Some(district_ids[*di]);
        data.aed_ids = s.aed_indices.iter().map(|i| aed_ids[*i]).collect();
        store.create_station(&data).await?;
    }
    let rescuers: Vec<RescuerData> = city
        .rescuers
        .iter()
        .map(|(di, r)| {
            let mut r = r.clone();
            r.district_id = Some(district_ids[*di]);
            r
        })
        .collect();
    store.insert_rescuers_bulk(&rescuers).await?;
    // The streets go through the import's own step: the same builders, the same artifacts.
    let filters = aednet_import::derived::feature_filters();
    let derived = if filters.is_empty() {
        Vec::new()
    } else {
        let extract = Arc::new(wanted(&city.extract, &filters));
        aednet_import::derived::build_and_store(store, extract, &ProgressBar::hidden())
            .await?
            .into_iter()
            .map(|d| format!("{}: {}", d.kind, d.summary))
            .collect()
    };
    Ok(DemoSummary {
        districts: city.districts.len(),
        aeds: city.aeds.len(),
        stations: city.stations.len(),
        rescuers: city.rescuers.len(),
        streets: city
            .extract
            .ways
            .iter()
            .filter(|w| streets::is_street(w))
            .count(),
        population_cells: city.population.len(),
        derived,
    })
}

#[cfg(test)]
mod tests;
