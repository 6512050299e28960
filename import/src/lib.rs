//! Importers: OpenStreetMap PBF, municipal CSV lists and GeoJSON, into the store.
//!
//! Every format is parsed into the same [`Parsed`] records (tag maps in OSM vocabulary plus a
//! position), then one pipeline validates them, assigns districts by point-in-polygon, and
//! upserts on (source, external_ref) — so importing the same file twice changes nothing. A bad
//! record never aborts an import unless `strict` is set; then nothing at all is written. The
//! [`ImportReport`] lists every rejection with its reason, the malformed `opening_hours` values
//! and the AEDs without a usable `access` tag.

pub mod address_register;
mod basemap_step;
mod csv_import;
pub mod derived;
mod geocode_step;
mod geojson_import;
mod osm;
pub mod osm_extract;
mod tags;
pub mod walk_graph;

use std::path::Path;
use std::time::Instant;

use aednet_core::aed::AedData;
use aednet_core::district::{DistrictData, DistrictLocator};
use aednet_core::station::StationData;
use aednet_store::{ListQuery, Store, StoreError, UpsertOutcome};
use chrono::Utc;
use indicatif::ProgressBar;
use serde::Serialize;
use utoipa::ToSchema;

pub use csv_import::{detect_delimiter, parse_coordinate};

/// Records per store call: large enough to amortise round trips, small enough to show progress.
const CHUNK: usize = 1000;

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Source recorded on every record (default `osm`, `csv:<name>`, `geojson:<name>`).
    pub source: Option<String>,
    /// Write nothing if any record is rejected.
    pub strict: bool,
    /// Time zone for opening hours instead of the one at each record's position.
    pub tz: Option<chrono_tz::Tz>,
    /// `admin_level` of OSM boundary relations imported as districts.
    pub admin_level: u8,
    pub csv: CsvOptions,
    /// Force the kind of every GeoJSON feature instead of detecting it.
    pub geojson_kind: Option<GeoJsonKind>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            source: None,
            strict: false,
            tz: None,
            admin_level: 8,
            csv: CsvOptions::default(),
            geojson_kind: None,
        }
    }
}

/// Explicit CSV settings; anything left `None` is detected.
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    pub lat_col: Option<String>,
    pub lon_col: Option<String>,
    pub name_col: Option<String>,
    pub address_col: Option<String>,
    pub id_col: Option<String>,
    pub delimiter: Option<char>,
    /// An encoding label (`utf-8`, `gbk`, `gb18030`, `windows-1252`, …).
    pub encoding: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoJsonKind {
    Aeds,
    Stations,
    Districts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
}

impl Counts {
    fn add(&mut self, o: UpsertOutcome) {
        match o {
            UpsertOutcome::Inserted(_) => self.inserted += 1,
            UpsertOutcome::Updated(_) => self.updated += 1,
            UpsertOutcome::Unchanged(_) => self.unchanged += 1,
        }
    }
}

/// One record that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Rejection {
    /// `node/123`, `row 17`, `feature 4`.
    pub record: String,
    pub field: Option<String>,
    pub reason: String,
}

/// A record imported with a value worth a human look.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Flagged {
    pub record: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ImportReport {
    pub source: String,
    pub aeds: Counts,
    pub stations: Counts,
    pub districts: Counts,
    pub rejections: Vec<Rejection>,
    /// Kept verbatim and treated as "hours unknown".
    pub malformed_opening_hours: Vec<Flagged>,
    /// AEDs with no `access` tag (imported as `unknown`).
    pub missing_access: Vec<String>,
    /// AEDs whose `access` value is not one aednet knows (imported as `unknown`, raw value kept
    /// in the tags).
    pub unknown_access: Vec<Flagged>,
    /// Districts skipped or imported without population, and why.
    pub district_notes: Vec<Flagged>,
    /// What was built from the extract's map features (walking graph, basemap, address index).
    pub derived: Vec<derived::DerivedLine>,
    pub elapsed_ms: u64,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "import from {} finished in {} ms",
            self.source, self.elapsed_ms
        )?;
        writeln!(f, "              inserted  updated  unchanged  rejected")?;
        for (name, c) in [
            ("AEDs", self.aeds),
            ("stations", self.stations),
            ("districts", self.districts),
        ] {
            writeln!(
                f,
                "  {name:<10} {:>9} {:>8} {:>10} {:>9}",
                c.inserted, c.updated, c.unchanged, c.rejected
            )?;
        }
        let section =
            |f: &mut std::fmt::Formatter<'_>, title: &str, n: usize| writeln!(f, "{title} ({n}):");
        if !self.rejections.is_empty() {
            section(f, "rejected", self.rejections.len())?;
            for r in &self.rejections {
                let field = r
                    .field
                    .as_deref()
                    .map(|x| format!(" [{x}]"))
                    .unwrap_or_default();
                writeln!(f, "  {}{field}: {}", r.record, r.reason)?;
            }
        }
        if !self.malformed_opening_hours.is_empty() {
            section(
                f,
                "malformed opening_hours, kept verbatim, treated as unknown",
                self.malformed_opening_hours.len(),
            )?;
            for m in &self.malformed_opening_hours {
                writeln!(f, "  {}: {:?}", m.record, m.value)?;
            }
        }
        if !self.unknown_access.is_empty() {
            section(
                f,
                "unrecognised access values, imported as unknown",
                self.unknown_access.len(),
            )?;
            for m in &self.unknown_access {
                writeln!(f, "  {}: {:?}", m.record, m.value)?;
            }
        }
        if !self.missing_access.is_empty() {
            section(
                f,
                "AEDs without an access tag, imported as unknown",
                self.missing_access.len(),
            )?;
            // A municipal list may have no access column at all: hundreds of row numbers
            // help nobody. A few examples; the JSON report (`--report`) has them all.
            const SHOWN: usize = 10;
            let shown: Vec<&str> = self
                .missing_access
                .iter()
                .take(SHOWN)
                .map(String::as_str)
                .collect();
            let more = self.missing_access.len().saturating_sub(SHOWN);
            if more > 0 {
                writeln!(
                    f,
                    "  {}, … and {more} more (all in the JSON report, --report FILE)",
                    shown.join(", ")
                )?;
            } else {
                writeln!(f, "  {}", shown.join(", "))?;
            }
        }
        if !self.district_notes.is_empty() {
            section(f, "district notes", self.district_notes.len())?;
            for m in &self.district_notes {
                writeln!(f, "  {}: {}", m.record, m.value)?;
            }
        }
        for d in &self.derived {
            writeln!(f, "{}: {}", d.kind, d.summary)?;
            for w in &d.warnings {
                writeln!(f, "  warning: {w}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a readable OSM PBF file: {0}")]
    Pbf(String),
    #[error("not a readable CSV file: {0}")]
    Csv(String),
    #[error("not a readable GeoJSON file: {0}")]
    GeoJson(String),
    #[error("strict import: {} record(s) rejected, nothing written (first: {first})", report.rejections.len())]
    Strict {
        report: Box<ImportReport>,
        first: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    /// Whether the fault is in the submitted file (a 4xx over HTTP) rather than the server.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            ImportError::Pbf(_)
                | ImportError::Csv(_)
                | ImportError::GeoJson(_)
                | ImportError::Strict { .. }
        )
    }
}

/// What a parser produces: records to validate, and problems found while parsing.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub aeds: Vec<(String, aednet_core::aed::AedInput)>,
    pub stations: Vec<(String, aednet_core::station::StationInput)>,
    pub districts: Vec<(String, aednet_core::district::DistrictInput)>,
    pub rejections: Vec<Rejection>,
    pub unknown_access: Vec<Flagged>,
    pub missing_access: Vec<String>,
    pub district_notes: Vec<Flagged>,
}

pub async fn import_osm(
    store: &dyn Store,
    path: &Path,
    opts: &ImportOptions,
    pb: &ProgressBar,
) -> Result<ImportReport, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    import_osm_bytes(store, &bytes, opts, pb).await
}

/// The same as [`import_osm`] for a PBF already in memory (an HTTP upload): the registry
/// records, then the derived artifacts (walking graph, basemap, address index) from the same
/// extract.
pub async fn import_osm_bytes(
    store: &dyn Store,
    bytes: &[u8],
    opts: &ImportOptions,
    pb: &ProgressBar,
) -> Result<ImportReport, ImportError> {
    let start = Instant::now();
    pb.set_message("reading OSM data");
    let parsed = osm::parse(bytes, opts)?;
    let mut report = apply(
        store,
        parsed,
        opts.source.clone().unwrap_or_else(|| "osm".into()),
        opts,
        pb,
        start,
    )
    .await?;
    let filters = derived::feature_filters();
    if !filters.is_empty() {
        pb.set_message("reading map features");
        let (extract, notes) = osm_extract::read_extract(bytes, &filters, |_| pb.tick())?;
        if notes.areas_skipped > 0 {
            report.district_notes.push(Flagged {
                record: "map features".into(),
                value: format!(
                    "{} area relation(s) skipped: member ways missing from the extract or rings not closing",
                    notes.areas_skipped
                ),
            });
        }
        report.derived = derived::build_and_store(store, std::sync::Arc::new(extract), pb).await?;
        report.elapsed_ms = start.elapsed().as_millis() as u64;
    }
    Ok(report)
}

pub async fn import_csv(
    store: &dyn Store,
    bytes: &[u8],
    name: &str,
    opts: &ImportOptions,
    pb: &ProgressBar,
) -> Result<ImportReport, ImportError> {
    let start = Instant::now();
    let parsed = csv_import::parse(bytes, &opts.csv)?;
    apply(
        store,
        parsed,
        opts.source.clone().unwrap_or_else(|| format!("csv:{name}")),
        opts,
        pb,
        start,
    )
    .await
}

pub async fn import_geojson(
    store: &dyn Store,
    bytes: &[u8],
    name: &str,
    opts: &ImportOptions,
    pb: &ProgressBar,
) -> Result<ImportReport, ImportError> {
    let start = Instant::now();
    let parsed = geojson_import::parse(bytes, opts.geojson_kind)?;
    apply(
        store,
        parsed,
        opts.source
            .clone()
            .unwrap_or_else(|| format!("geojson:{name}")),
        opts,
        pb,
        start,
    )
    .await
}

/// The shared pipeline: validate everything first (so strict mode can refuse before any
/// write), then districts, then AEDs and stations with their district assigned.
async fn apply(
    store: &dyn Store,
    parsed: Parsed,
    source: String,
    opts: &ImportOptions,
    pb: &ProgressBar,
    start: Instant,
) -> Result<ImportReport, ImportError> {
    let now = Utc::now();
    let mut report = ImportReport {
        source: source.clone(),
        rejections: parsed.rejections,
        unknown_access: parsed.unknown_access,
        missing_access: parsed.missing_access,
        district_notes: parsed.district_notes,
        ..Default::default()
    };
    let mut districts: Vec<DistrictData> = Vec::new();
    for (record, mut input) in parsed.districts {
        input.source = Some(source.clone());
        match input.validate() {
            Ok(d) => districts.push(d),
            Err(e) => {
                report.districts.rejected += 1;
                report.rejections.push(Rejection {
                    record,
                    field: Some(e.field),
                    reason: e.message,
                });
            }
        }
    }
    let mut aeds: Vec<AedData> = Vec::new();
    for (record, mut input) in parsed.aeds {
        input.source = Some(source.clone());
        if input.time_zone.is_none() {
            input.time_zone = opts.tz;
        }
        match input.validate(now) {
            Ok(d) => {
                if let (Some(raw), false) = (&d.opening_hours, d.opening_hours_valid) {
                    report.malformed_opening_hours.push(Flagged {
                        record,
                        value: raw.clone(),
                    });
                }
                aeds.push(d);
            }
            Err(e) => {
                report.aeds.rejected += 1;
                report.rejections.push(Rejection {
                    record,
                    field: Some(e.field),
                    reason: e.message,
                });
            }
        }
    }
    let mut stations: Vec<StationData> = Vec::new();
    for (record, mut input) in parsed.stations {
        input.source = Some(source.clone());
        if input.time_zone.is_none() {
            input.time_zone = opts.tz;
        }
        match input.validate(now) {
            Ok(s) => stations.push(s),
            Err(e) => {
                report.stations.rejected += 1;
                report.rejections.push(Rejection {
                    record,
                    field: Some(e.field),
                    reason: e.message,
                });
            }
        }
    }
    // Parse-time rejections (no usable coordinates) count against AEDs: only AED rows lack them.
    let parse_rejects = report.rejections.len() as u64
        - report.aeds.rejected
        - report.stations.rejected
        - report.districts.rejected;
    report.aeds.rejected += parse_rejects;
    if opts.strict && !report.rejections.is_empty() {
        let r = &report.rejections[0];
        let first = format!("{}: {}", r.record, r.reason);
        report.elapsed_ms = start.elapsed().as_millis() as u64;
        return Err(ImportError::Strict {
            report: Box::new(report),
            first,
        });
    }

    pb.set_length((districts.len() + aeds.len() + stations.len()) as u64);
    pb.set_message("districts");
    for o in store.upsert_districts(&districts).await? {
        report.districts.add(o);
    }
    pb.inc(districts.len() as u64);

    let locator = district_locator(store).await?;
    if !locator.is_empty() {
        for a in aeds.iter_mut().filter(|a| a.district_id.is_none()) {
            a.district_id = locator.locate(a.location);
        }
        for s in stations.iter_mut().filter(|s| s.district_id.is_none()) {
            s.district_id = locator.locate(s.location);
        }
    }
    pb.set_message("AEDs");
    for chunk in aeds.chunks(CHUNK) {
        for o in store.upsert_aeds(chunk).await? {
            report.aeds.add(o);
        }
        pb.inc(chunk.len() as u64);
    }
    pb.set_message("stations");
    for chunk in stations.chunks(CHUNK) {
        for o in store.upsert_stations(chunk).await? {
            report.stations.add(o);
        }
        pb.inc(chunk.len() as u64);
    }
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    tracing::info!(source = %report.source, aeds = ?report.aeds, districts = ?report.districts, "import finished");
    Ok(report)
}

/// Every district with a boundary, from the store (all pages).
async fn district_locator(store: &dyn Store) -> Result<DistrictLocator, StoreError> {
    let all = aednet_store::collect_all(ListQuery::default(), |q| async move {
        store.list_districts(&q).await
    })
    .await?;
    Ok(DistrictLocator::new(all.iter().map(|d| (d.id, &d.data))))
}
