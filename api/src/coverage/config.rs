//! `[coverage]` settings and the population grid file they may name.

use std::path::PathBuf;

use aednet_core::LatLon;
use aednet_coverage::{Mode, Params, PopulationPoint};
use aednet_geoindex::{HoursPolicy, ReadinessFilter, WalkModel};
use serde::{Deserialize, Serialize};

/// `[coverage]` in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoverageConfig {
    /// `round_trip` (cell → AED → cell), `one_way` or `radius`.
    pub mode: Mode,
    pub budget_s: f64,
    /// For `mode = "radius"`.
    pub radius_m: f64,
    /// Times shown up to this; cells beyond have `time_s: null`.
    pub horizon_s: f64,
    /// H3 resolution of the live map (9, or 10 for ~0.015 km² cells).
    pub res: u8,
    pub readiness: ReadinessFilter,
    pub hours: HoursPolicy,
    pub include_restricted: bool,
    /// `network` (walks on the walking network when one is loaded) or `straight_line`.
    pub walk: aednet_geoindex::WalkKind,
    /// CSV `lat,lon,population` (e.g. a 250 m census grid); without it each district's
    /// population is spread evenly over its cells.
    pub population_grid: Option<PathBuf>,
    /// Most units one plan request may add, and most candidate sites it may send.
    pub max_plan_add: usize,
    pub max_candidates: usize,
    /// Public map requests (`/coverage`, `/coverage/weekly`, `/districts/summary`,
    /// `/ws/coverage`) per client per minute, and the burst before that rate applies; a
    /// budget of its own, so a planner's map does not use up a caller's nearest queries.
    /// 0 turns it off.
    pub per_minute: u32,
    pub burst: u32,
    /// Answers computed at once (a map for other parameters takes tens of milliseconds to
    /// seconds and tens of megabytes, on the background threads); beyond this, an earlier
    /// answer (`stale_s`) or 503 `busy` with `Retry-After`.
    pub max_concurrent: usize,
    /// Answers kept, keyed by their parameters and the live map's version (any change to the
    /// live map is a new version), at most this many and this many bytes, each for at most
    /// `cache_ttl_s`.
    pub cache_entries: usize,
    pub cache_bytes: usize,
    pub cache_ttl_s: u64,
    /// While every slot is busy, an earlier answer to the same question (for an older version
    /// of the map) at most this old is sent instead of 503 (`x-aednet-cache: stale`); 0 never.
    pub stale_s: u64,
    /// Most hexagons in one `/api/v1/coverage` answer; beyond it, 422 naming `bbox` (ask for a
    /// district or a box).
    pub max_cells: usize,
}

impl Default for CoverageConfig {
    fn default() -> Self {
        let p = Params::default();
        Self {
            mode: p.mode,
            budget_s: p.budget_s,
            radius_m: p.radius_m,
            horizon_s: p.horizon_s,
            res: 9,
            readiness: p.readiness,
            hours: p.hours,
            include_restricted: p.include_restricted,
            walk: p.walk_on,
            population_grid: None,
            max_plan_add: 200,
            max_candidates: 20_000,
            per_minute: 60,
            burst: 20,
            max_concurrent: 1,
            cache_entries: 32,
            cache_bytes: 128 * 1024 * 1024,
            cache_ttl_s: 60,
            stale_s: 30,
            max_cells: 150_000,
        }
    }
}

impl CoverageConfig {
    pub fn params(&self, walk: WalkModel) -> Params {
        Params {
            mode: self.mode,
            budget_s: self.budget_s,
            radius_m: self.radius_m,
            horizon_s: self.horizon_s,
            readiness: self.readiness,
            hours: self.hours,
            include_restricted: self.include_restricted,
            walk_on: self.walk,
            walk,
        }
    }

    /// Names the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_concurrent == 0 {
            return Err("coverage.max_concurrent must be at least 1".into());
        }
        if !(7..=11).contains(&self.res) {
            return Err("coverage.res must be between 7 and 11 (9 is the default)".into());
        }
        self.params(WalkModel::default())
            .validate()
            .map_err(|(f, m)| format!("coverage.{f}: {m}"))
    }
}

/// Reads a population grid CSV: a header naming `lat`, `lon` and `population` columns (any
/// order, extra columns ignored). Rows that do not parse are skipped and counted.
pub fn read_population_csv(text: &str) -> Result<(Vec<PopulationPoint>, usize), String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or("empty population grid")?
        .split(',')
        .map(|h| h.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let col = |names: &[&str]| {
        header
            .iter()
            .position(|h| names.contains(&h.as_str()))
            .ok_or_else(|| format!("population grid has no {} column", names[0]))
    };
    let (la, lo, po) = (
        col(&["lat", "latitude", "y"])?,
        col(&["lon", "lng", "longitude", "x"])?,
        col(&["population", "pop", "people"])?,
    );
    let (mut out, mut bad) = (Vec::new(), 0);
    for line in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let num = |i: usize| {
            f.get(i)
                .and_then(|v| v.trim_matches('"').parse::<f64>().ok())
        };
        match (num(la), num(lo), num(po)) {
            (Some(lat), Some(lon), Some(p)) if p.is_finite() && p >= 0.0 => {
                match LatLon::new(lat, lon) {
                    Ok(pos) => out.push(PopulationPoint { pos, population: p }),
                    Err(_) => bad += 1,
                }
            }
            _ => bad += 1,
        }
    }
    Ok((out, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_csv_any_column_order_bad_rows_counted() {
        let text = "id,lat,lon,population\n0,60.16,24.90,389\n1,91.0,24.9,5\n2,60.1,x,3\n\n3,60.17,24.91,0\n";
        let (pts, bad) = read_population_csv(text).unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(bad, 2);
        assert_eq!(pts[0].population, 389.0);
        let (pts, _) = read_population_csv("POP,LON,LAT\n7,24.9,60.1\n").unwrap();
        assert_eq!((pts[0].pos.lat, pts[0].population), (60.1, 7.0));
        assert!(read_population_csv("a,b\n1,2\n")
            .unwrap_err()
            .contains("lat"));
        assert!(read_population_csv("").is_err());
    }

    #[test]
    fn config_validation_names_the_key() {
        let bad = CoverageConfig {
            budget_s: 0.0,
            ..CoverageConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("budget_s"));
        let bad = CoverageConfig {
            res: 15,
            ..CoverageConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("coverage.res"));
        assert!(CoverageConfig::default().validate().is_ok());
    }
}
