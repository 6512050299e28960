//! `aednet plan`: where the next AEDs should go, from the database without a server — the same
//! coverage map and greedy placement as `POST /api/v1/plan`.

use std::path::{Path, PathBuf};

use aednet_api::coverage::{offline_map, plan_request, CoverageConfig, PlanInput};
use aednet_store::Store;
use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// New units to place (with `--target-share`: at most; default then 10 000).
    #[arg(long)]
    pub add: Option<u32>,
    /// The inverse question: the fewest new AEDs that bring this share of the people (0–1)
    /// within the budget, and how many rescuers must be on duty.
    #[arg(long)]
    pub target_share: Option<f64>,
    /// Only this district (name or id).
    #[arg(long)]
    pub district: Option<String>,
    /// Candidate sites instead of every cell centre: CSV with lat, lon and optional name
    /// columns, or GeoJSON points (name from properties.name).
    #[arg(long)]
    pub candidates: Option<PathBuf>,
    /// Existing units that may be moved to better sites.
    #[arg(long, default_value_t = 0)]
    pub relocate: u32,
    /// Also list AEDs worth converting to 24/7 outdoor cabinets.
    #[arg(long)]
    pub suggest_24_7: bool,
    /// The network as it is at this time (RFC 3339; default now).
    #[arg(long)]
    pub at: Option<DateTime<Utc>>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Candidate sites from a CSV or GeoJSON file, as the API's input.
pub fn read_candidates(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8(bytes).context("candidates file is not UTF-8")?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if ext == "geojson" || ext == "json" || text.trim_start().starts_with('{') {
        let gj: geojson::GeoJson = text.parse().context("candidates: not GeoJSON")?;
        let features = match gj {
            geojson::GeoJson::FeatureCollection(fc) => fc.features,
            geojson::GeoJson::Feature(f) => vec![f],
            geojson::GeoJson::Geometry(_) => anyhow::bail!("candidates: expected features"),
        };
        let mut out = Vec::new();
        for (i, f) in features.into_iter().enumerate() {
            let Some(geojson::Value::Point(c)) = f.geometry.as_ref().map(|g| g.value.clone())
            else {
                anyhow::bail!("candidates: feature {i} is not a Point");
            };
            let name = f
                .property("name")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            out.push(serde_json::json!({"lat": c.get(1), "lon": c.first(), "name": name}));
        }
        return Ok(out);
    }
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let lat = col(&["lat", "latitude"]).context("candidates CSV needs a lat column")?;
    let lon = col(&["lon", "lng", "longitude"]).context("candidates CSV needs a lon column")?;
    let name = col(&["name"]);
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec?;
        let num = |c: usize| -> anyhow::Result<f64> {
            rec.get(c)
                .unwrap_or_default()
                .parse::<f64>()
                .with_context(|| format!("candidates row {}: bad coordinate", i + 2))
        };
        out.push(serde_json::json!({
            "lat": num(lat)?, "lon": num(lon)?,
            "name": name.and_then(|c| rec.get(c)).filter(|s| !s.is_empty()),
        }));
    }
    Ok(out)
}

pub async fn run(
    store: &dyn Store,
    config: &CoverageConfig,
    walk: aednet_geoindex::WalkModel,
    args: PlanArgs,
) -> anyhow::Result<()> {
    let at = args.at.unwrap_or_else(Utc::now);
    let (map, districts, tz) = offline_map(store, config, walk, at)
        .await
        .map_err(anyhow::Error::msg)?;
    let district_id = match &args.district {
        None => None,
        Some(d) => Some(
            districts
                .iter()
                .find(|x| x.id.to_string() == *d || x.data.name == *d)
                .map(|x| x.id)
                .with_context(|| format!("no district named or numbered {d}"))?,
        ),
    };
    let candidates = args
        .candidates
        .as_deref()
        .map(read_candidates)
        .transpose()?;
    let add = args.add.unwrap_or(if args.target_share.is_some() {
        10_000
    } else {
        10
    });
    let input: PlanInput = serde_json::from_value(serde_json::json!({
        "add": add,
        "target_share": args.target_share,
        "district_id": district_id,
        "candidates": candidates,
        "relocate": args.relocate,
        "suggest_24_7": args.suggest_24_7,
    }))
    .context("candidates")?;
    let mut limits = config.clone();
    // The command line is the operator's own machine: no per-request caps beyond sanity.
    limits.max_plan_add = limits.max_plan_add.max(10_000);
    limits.max_candidates = limits.max_candidates.max(10_000_000);
    let req = plan_request(input, &limits, |d| districts.iter().any(|x| x.id == d), tz)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(target) = args.target_share {
        let t = aednet_coverage::plan_for_share(
            &map,
            &req,
            target,
            &aednet_coverage::RescuerModel::default(),
        );
        return print_target(&t, args.json);
    }
    let p = aednet_coverage::plan(&map, &req);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
        return Ok(());
    }
    let scope = district_id
        .and_then(|d| districts.iter().find(|x| x.id == d))
        .map_or_else(|| "all districts".to_string(), |d| d.data.name.clone());
    println!(
        "{scope}: {} cells at res {}, {} AEDs, {} {} s, at {}",
        map.grid()
            .cells
            .iter()
            .filter(|c| district_id.is_none_or(|d| c.district == Some(d)))
            .count(),
        config.res,
        map.aed_count(),
        map.params().mode.as_str(),
        map.params().budget_s,
        at.to_rfc3339()
    );
    println!(
        "before: {:.1} % ({:.0} of {:.0} people)",
        p.before.share * 100.0,
        p.before.covered_population,
        p.before.population
    );
    println!(
        "after:  {:.1} % ({:.0} of {:.0} people) with {} new site(s) from {} candidates, {} relocation(s)",
        p.after.share * 100.0,
        p.after.covered_population,
        p.after.population,
        p.sites.len(),
        p.candidates,
        p.relocations.len()
    );
    for (i, s) in p.sites.iter().enumerate() {
        println!(
            "  {:>3}. {:.6},{:.6}  cell {}  +{:.0} people{}",
            i + 1,
            s.lat,
            s.lon,
            s.cell,
            s.gain_population,
            s.name
                .as_deref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        );
    }
    for r in &p.relocations {
        println!(
            "  move AED {} from {:.6},{:.6} to {:.6},{:.6}: net +{:.0} people",
            r.aed_id, r.from.lat, r.from.lon, r.to.lat, r.to.lon, r.gain_population
        );
    }
    for c in &p.conversions_24_7 {
        println!(
            "  24/7: AED {} {}: +{:.0} people on average, +{:.0} at night",
            c.aed_id,
            c.name.as_deref().unwrap_or(""),
            c.gain,
            c.night_gain
        );
    }
    Ok(())
}

/// The inverse plan, for people or as JSON.
fn print_target(t: &aednet_coverage::TargetPlan, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(t)?);
        return Ok(());
    }
    println!(
        "target: {:.1} % of {:.0} people within the budget; today {:.1} %",
        t.target_share * 100.0,
        t.before.population,
        t.before.share * 100.0
    );
    println!(
        "{}: {} new AED(s) → {:.1} % ({:.0} people)",
        if t.reached {
            "reached"
        } else {
            "NOT reached with the AEDs allowed"
        },
        t.aeds_to_add,
        t.after.share * 100.0,
        t.after.covered_population
    );
    if let Some(r) = &t.rescuers {
        println!(
            "rescuers: {:.0} on duty at any time ({:.2} per 1 000 people; {:.0} per km² where the \
             sparsest covered people live, {:.0}/km²), i.e. {:.0} registered ({:.1} per 1 000) at \
             a 25 % on-duty share — for a 90 % chance that an accepting rescuer (30 %) is within \
             {:.0} m",
            r.on_duty,
            r.on_duty_per_1000,
            r.on_duty_per_km2,
            r.sparsest_density_per_km2,
            r.registered,
            r.registered_per_1000,
            r.reach_m
        );
        if r.registered_per_1000 > 1000.0 {
            println!(
                "  (more rescuers than people: at this density volunteers alone cannot bring an \
                 AED in time to that share; see `aednet simulate sweep`)"
            );
        }
    }
    for (i, s) in t.sites.iter().enumerate().take(50) {
        println!(
            "  {:>3}. {:.6},{:.6}  cell {}  +{:.0} people",
            i + 1,
            s.lat,
            s.lon,
            s.cell,
            s.gain_population
        );
    }
    if t.sites.len() > 50 {
        println!("  … {} more (--json for all)", t.sites.len() - 50);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_from_csv_and_geojson() {
        let dir = tempfile::tempdir().unwrap();
        let csv_path = dir.path().join("c.csv");
        std::fs::write(
            &csv_path,
            "Name,Latitude,Longitude\n\"School, north\",47.14,9.52\n,47.15,9.53\n",
        )
        .unwrap();
        let c = read_candidates(&csv_path).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["name"], "School, north");
        assert_eq!(c[0]["lat"], 47.14);
        assert!(c[1]["name"].is_null());
        let gj = dir.path().join("c.geojson");
        std::fs::write(
            &gj,
            r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"Rathaus"},"geometry":{"type":"Point","coordinates":[9.52,47.14]}}]}"#,
        )
        .unwrap();
        let c = read_candidates(&gj).unwrap();
        assert_eq!(
            (c[0]["lat"].as_f64(), c[0]["lon"].as_f64()),
            (Some(47.14), Some(9.52))
        );
        assert_eq!(c[0]["name"], "Rathaus");
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "lat,lon\nx,9\n").unwrap();
        assert!(read_candidates(&bad)
            .unwrap_err()
            .to_string()
            .contains("row 2"));
        let no_lat = dir.path().join("nolat.csv");
        std::fs::write(&no_lat, "a,b\n1,2\n").unwrap();
        assert!(read_candidates(&no_lat).is_err());
    }
}
