//! A city's address register in CSV (`aednet import addresses FILE.csv`): one address point a
//! row, as a 门牌 register or a cadastre export has them — either one address column or the
//! parts (province, city, district, sub-district, street, house number, postcode) in columns
//! of their own, plus latitude and longitude. Separator and encoding are detected as for the
//! AED lists ([`crate::csv_import`]). The whole register is stored as the `address_register`
//! artifact, replacing the previous one, and searched beside the map's own addresses.

use aednet_geocode::{Kind, Place};
use aednet_store::{artifacts::kind, Store};
use serde::Serialize;
use utoipa::ToSchema;

use crate::csv_import::{normalise, open_csv, parse_coordinate, ALIASES};
use crate::{CsvOptions, ImportError, Rejection};

/// Address columns by their usual names (compared lower-cased and trimmed).
const PARTS: &[(&str, &[&str])] = &[
    (
        "address",
        &[
            "address",
            "full_address",
            "addr",
            "adresse",
            "anschrift",
            "label",
            "地址",
            "门牌地址",
            "标准地址",
            "详细地址",
            "地址全称",
            "完整地址",
        ],
    ),
    ("province", &["province", "state", "省", "省份"]),
    (
        "city",
        &["city", "town", "ort", "gemeinde", "市", "城市", "地市"],
    ),
    (
        "district",
        &[
            "district", "county", "区", "县", "区县", "县区", "区/县", "bezirk",
        ],
    ),
    (
        "subdistrict",
        &["subdistrict", "suburb", "街道", "乡镇", "街道/乡镇", "镇街"],
    ),
    (
        "street",
        &[
            "street",
            "road",
            "strasse",
            "straße",
            "路",
            "街路巷",
            "道路",
            "路名",
            "街路巷名",
        ],
    ),
    (
        "housenumber",
        &[
            "housenumber",
            "house_number",
            "number",
            "hausnummer",
            "门牌号",
            "门牌",
            "号",
        ],
    ),
    (
        "postcode",
        &["postcode", "postal_code", "plz", "zip", "邮编"],
    ),
    ("name", &["name", "building", "名称", "建筑名称", "小区"]),
];

/// What became of a register.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct AddressReport {
    pub source: String,
    /// Address points stored.
    pub addresses: u64,
    pub rejections: Vec<Rejection>,
    /// The `address_register` artifact's version, `None` when nothing was stored.
    pub version: Option<i64>,
    pub elapsed_ms: u64,
}

impl std::fmt::Display for AddressReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "address register {}", self.source)?;
        writeln!(
            f,
            "  addresses: {} stored{}, {} rejected",
            self.addresses,
            self.version
                .map(|v| format!(" (version {v})"))
                .unwrap_or_default(),
            self.rejections.len()
        )?;
        for r in self.rejections.iter().take(20) {
            writeln!(
                f,
                "    {}{}: {}",
                r.record,
                r.field
                    .as_ref()
                    .map(|x| format!(" [{x}]"))
                    .unwrap_or_default(),
                r.reason
            )?;
        }
        if self.rejections.len() > 20 {
            writeln!(f, "    … {} more", self.rejections.len() - 20)?;
        }
        write!(f, "  took {} ms", self.elapsed_ms)
    }
}

fn column_key(h: &str) -> Option<&'static str> {
    let h = normalise(h);
    ALIASES
        .iter()
        .filter(|(k, _)| matches!(*k, "lat" | "lon" | "coords"))
        .chain(PARTS.iter())
        .find(|(_, names)| names.contains(&h.as_str()))
        .map(|(k, _)| *k)
}

fn has_cjk(s: &str) -> bool {
    s.chars().any(aednet_geocode::text::is_cjk)
}

/// The address of a row from its parts: Chinese order without spaces, else "street number,
/// postcode city".
fn compose(get: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(a) = get("address") {
        return Some(a);
    }
    let street = get("street");
    let hn = get("housenumber");
    if street.as_deref().is_some_and(has_cjk) || get("district").as_deref().is_some_and(has_cjk) {
        let mut l = String::new();
        for k in ["province", "city", "district", "subdistrict", "street"] {
            if let Some(v) = get(k) {
                l.push_str(&v);
            }
        }
        if let Some(h) = hn {
            let numeric = h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            l.push_str(&h);
            if numeric {
                l.push('号');
            }
        }
        return (!l.is_empty()).then_some(l);
    }
    let mut l = match (street, hn) {
        (Some(s), Some(h)) => format!("{s} {h}"),
        (Some(s), None) => s,
        (None, Some(h)) => h,
        (None, None) => String::new(),
    };
    let town = [get("postcode"), get("city")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !town.is_empty() {
        if !l.is_empty() {
            l.push_str(", ");
        }
        l.push_str(&town);
    }
    (!l.is_empty()).then_some(l)
}

/// Reads a register into places; rows without an address or a readable position are
/// rejected with the reason.
pub fn parse(bytes: &[u8], opts: &CsvOptions) -> Result<(Vec<Place>, Vec<Rejection>), ImportError> {
    let (mut reader, headers) = open_csv(bytes, opts)?;
    let explicit =
        |col: &Option<String>, h: &str| col.as_ref().is_some_and(|c| normalise(c) == normalise(h));
    let keys: Vec<Option<&'static str>> = headers
        .iter()
        .map(|h| {
            if explicit(&opts.lat_col, h) {
                Some("lat")
            } else if explicit(&opts.lon_col, h) {
                Some("lon")
            } else if explicit(&opts.address_col, h) {
                Some("address")
            } else {
                column_key(h)
            }
        })
        .collect();
    let has = |k: &str| keys.contains(&Some(k));
    if !(has("coords") || has("lat") && has("lon")) {
        return Err(ImportError::Csv(format!(
            "no latitude/longitude columns found (pass --lat-col and --lon-col); columns are: {}",
            headers.join(", ")
        )));
    }
    if !(has("address") || has("street") || has("housenumber")) {
        return Err(ImportError::Csv(format!(
            "no address column found (pass --address-col, or have street and house number columns); columns are: {}",
            headers.join(", ")
        )));
    }
    let mut places = Vec::new();
    let mut rejections = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let record = format!("row {}", i + 2);
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                rejections.push(Rejection {
                    record,
                    field: None,
                    reason: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let get = |k: &str| -> Option<String> {
            keys.iter()
                .position(|c| *c == Some(k))
                .and_then(|j| row.get(j))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let (lat, lon) = match get("coords") {
            Some(c) => {
                let parts: Vec<&str> = c.split([',', ' ', ';']).filter(|p| !p.is_empty()).collect();
                match parts[..] {
                    [a, b] => (parse_coordinate(a), parse_coordinate(b)),
                    _ => (None, None),
                }
            }
            None => (
                get("lat").as_deref().and_then(parse_coordinate),
                get("lon").as_deref().and_then(parse_coordinate),
            ),
        };
        let pos = match (lat, lon) {
            (Some(lat), Some(lon)) => aednet_core::geo_util::LatLon::new(lat, lon).ok(),
            _ => None,
        };
        let Some(pos) = pos else {
            let field = if lat.is_some_and(|v| (-90.0..=90.0).contains(&v)) {
                "lon"
            } else {
                "lat"
            };
            rejections.push(Rejection {
                record,
                field: Some(field.into()),
                reason: format!(
                    "no readable coordinate ({:?})",
                    get(field).or_else(|| get("coords")).unwrap_or_default()
                ),
            });
            continue;
        };
        let Some(label) = compose(&get) else {
            rejections.push(Rejection {
                record,
                field: Some("address".into()),
                reason: "no address text in this row".into(),
            });
            continue;
        };
        let texts = ["name", "city", "district", "subdistrict", "postcode"]
            .into_iter()
            .filter_map(&get)
            .filter(|v| !label.contains(v.as_str()))
            .collect();
        places.push(Place {
            label,
            kind: Kind::Address,
            category: None,
            lat: pos.lat,
            lon: pos.lon,
            texts,
            line: vec![],
        });
    }
    Ok((places, rejections))
}

/// Reads the register and stores it whole; with `strict`, any rejected row stores nothing.
pub async fn import_addresses(
    store: &dyn Store,
    bytes: &[u8],
    name: &str,
    opts: &CsvOptions,
    strict: bool,
) -> Result<AddressReport, ImportError> {
    let start = std::time::Instant::now();
    let (places, rejections) = parse(bytes, opts)?;
    let mut report = AddressReport {
        source: format!("csv:{name}"),
        addresses: 0,
        rejections,
        version: None,
        elapsed_ms: 0,
    };
    let refuse = strict && !report.rejections.is_empty();
    if !places.is_empty() && !refuse {
        let meta = serde_json::json!({
            "format": aednet_geocode::FORMAT_VERSION,
            "source": report.source,
            "places": places.len(),
        })
        .to_string();
        let bytes = aednet_geocode::encode(&places);
        report.version = Some(
            store
                .put_artifact(kind::ADDRESS_REGISTER, &meta, &bytes)
                .await?,
        );
        report.addresses = places.len() as u64;
    }
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GB18030 register with parts in their own columns and semicolons; bad rows named.
    #[tokio::test]
    async fn chinese_register_in_gb18030_with_part_columns() {
        let text = "区县;街道;街路巷;门牌号;纬度;经度\n\
                    柯城区;荷花街道;人民路;12;28.97;118.87\n\
                    柯城区;荷花街道;人民路;;28.97;118.87\n\
                    衢江区;樟潭街道;通衢大道;3;abc;118.9\n\
                    ;;;;28.9;118.9\n";
        let (bytes, _, _) = encoding_rs::GB18030.encode(text);
        let store = aednet_store::connect("sqlite::memory:").await.unwrap();
        let r = import_addresses(store.as_ref(), &bytes, "reg", &CsvOptions::default(), false)
            .await
            .unwrap();
        assert_eq!(r.addresses, 2, "{r}");
        assert_eq!(r.rejections.len(), 2, "{r}");
        assert_eq!(r.rejections[0].record, "row 4");
        assert_eq!(r.rejections[0].field.as_deref(), Some("lat"));
        assert_eq!(r.rejections[1].field.as_deref(), Some("address"));
        let stored = store
            .get_artifact(kind::ADDRESS_REGISTER)
            .await
            .unwrap()
            .unwrap();
        let places = aednet_geocode::decode(&stored.bytes).unwrap();
        assert_eq!(places[0].label, "柯城区荷花街道人民路12号");
        // Strict: a rejected row stores nothing (the version stays 1).
        let r = import_addresses(store.as_ref(), &bytes, "reg", &CsvOptions::default(), true)
            .await
            .unwrap();
        assert_eq!(r.version, None);
        let info = store.artifact_versions().await.unwrap();
        assert_eq!(
            info.iter()
                .find(|i| i.kind == kind::ADDRESS_REGISTER)
                .unwrap()
                .version,
            1
        );
    }

    #[test]
    fn one_address_column_with_commas_and_a_missing_position_column() {
        let csv = "Adresse,lat,lon\n\"Äulestrasse 5, 9490 Vaduz\",47.14,9.52\n";
        let (p, r) = parse(csv.as_bytes(), &CsvOptions::default()).unwrap();
        assert!(r.is_empty());
        assert_eq!(p[0].label, "Äulestrasse 5, 9490 Vaduz");
        let e = parse(b"Adresse,lat\nx,1\n", &CsvOptions::default()).unwrap_err();
        assert!(e.to_string().contains("latitude/longitude"), "{e}");
        let e = parse(b"foo,lat,lon\nx,1,2\n", &CsvOptions::default()).unwrap_err();
        assert!(e.to_string().contains("no address column"), "{e}");
    }
}
