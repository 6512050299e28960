//! Municipal AED lists in CSV. Real lists differ in everything: separator (`,` `;` tab),
//! encoding (UTF-8 with or without BOM, GBK/GB18030 from Chinese office software, Windows-1252),
//! column names (English, German, Chinese…), and coordinate formats (decimal, decimal comma,
//! degrees-minutes-seconds, one "lat,lon" column). All of it is detected, and can be overridden.
//!
//! A row without an id column gets a stable `external_ref` from its name and position rounded
//! to ~1 m, so re-importing the same list is idempotent.

use aednet_core::Tags;
use encoding_rs::Encoding;
use sha2::{Digest, Sha256};

use crate::tags::aed_from_tags;
use crate::{CsvOptions, ImportError, Parsed, Rejection};

/// Column-name aliases per canonical OSM key, compared after lower-casing and trimming.
pub(crate) const ALIASES: &[(&str, &[&str])] = &[
    (
        "lat",
        &[
            "lat",
            "latitude",
            "y",
            "breite",
            "breitengrad",
            "纬度",
            "wgs84_lat",
            "lat_wgs84",
            "gps_lat",
            "latitud",
            "緯度",
        ],
    ),
    (
        "lon",
        &[
            "lon",
            "lng",
            "long",
            "longitude",
            "x",
            "länge",
            "laenge",
            "längengrad",
            "经度",
            "wgs84_lon",
            "lon_wgs84",
            "gps_lon",
            "longitud",
            "經度",
        ],
    ),
    (
        "coords",
        &[
            "coordinates",
            "coordinate",
            "coords",
            "坐标",
            "经纬度",
            "位置坐标",
            "koordinaten",
            "gps",
            "lat,lon",
            "latlon",
        ],
    ),
    (
        "name",
        &[
            "name",
            "名称",
            "站点名称",
            "设备名称",
            "点位名称",
            "单位名称",
            "bezeichnung",
            "nom",
            "nombre",
            "title",
            "standortname",
        ],
    ),
    (
        "address",
        &[
            "address",
            "addr",
            "地址",
            "安装地址",
            "详细地址",
            "adresse",
            "strasse",
            "straße",
            "direccion",
            "dirección",
        ],
    ),
    (
        "opening_hours",
        &[
            "opening_hours",
            "hours",
            "开放时间",
            "使用时间",
            "öffnungszeiten",
            "oeffnungszeiten",
            "horaires",
            "horario",
        ],
    ),
    (
        "ref",
        &[
            "id",
            "ref",
            "编号",
            "设备编号",
            "序号",
            "nr",
            "nummer",
            "identifier",
        ],
    ),
    (
        "operator",
        &[
            "operator",
            "管理单位",
            "运营单位",
            "责任单位",
            "betreiber",
            "exploitant",
        ],
    ),
    (
        "phone",
        &["phone", "tel", "telephone", "电话", "联系电话", "telefon"],
    ),
    (
        "defibrillator:location",
        &[
            "location",
            "具体位置",
            "放置位置",
            "安放位置",
            "standort",
            "lage",
            "emplacement",
            "defibrillator:location",
        ],
    ),
    ("indoor", &["indoor", "室内", "室内外"]),
    ("level", &["level", "floor", "楼层", "etage", "stockwerk"]),
    ("access", &["access", "zugang", "开放对象"]),
];

/// Picks the separator that splits the header line into the most fields.
pub fn detect_delimiter(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    [b',', b';', b'\t', b'|']
        .into_iter()
        .max_by_key(|d| header.matches(char::from(*d)).count())
        .filter(|d| header.contains(char::from(*d)))
        .unwrap_or(b',')
}

pub(crate) fn decode(bytes: &[u8], label: Option<&str>) -> Result<String, ImportError> {
    if let Some(label) = label {
        let enc = Encoding::for_label(label.trim().as_bytes())
            .ok_or_else(|| ImportError::Csv(format!("unknown encoding '{label}'")))?;
        let (text, _, had_errors) = enc.decode(bytes);
        if had_errors {
            return Err(ImportError::Csv(format!(
                "the file is not valid {}",
                enc.name()
            )));
        }
        return Ok(text.into_owned());
    }
    // BOM sniffing handles UTF-8/UTF-16 with a BOM; otherwise UTF-8 if it decodes cleanly, and
    // GB18030 (a superset of GBK) — the usual encoding of Chinese spreadsheets — if not.
    if let Some((enc, bom)) = Encoding::for_bom(bytes) {
        return Ok(enc
            .decode_without_bom_handling(&bytes[bom..])
            .0
            .into_owned());
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => {
            let (text, _, had_errors) = encoding_rs::GB18030.decode(bytes);
            if had_errors {
                Err(ImportError::Csv(
                    "not UTF-8 or GB18030; pass --encoding".into(),
                ))
            } else {
                Ok(text.into_owned())
            }
        }
    }
}

/// Parses one coordinate: `47.1410`, `47,1410` (decimal comma), `47°08'27.6"N`,
/// `119°52′30″E`, `N 47° 8.46'`, `-9.5`. Hemisphere letters S and W negate.
pub fn parse_coordinate(raw: &str) -> Option<f64> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    let upper = s.to_uppercase();
    let negative =
        upper.contains('S') || upper.contains('W') || upper.contains('南') || upper.contains('西');
    let has_dms = s.contains(['°', '\'', '"', '′', '″', '度', '分', '秒']);
    let cleaned: String = upper
        .chars()
        .map(|c| {
            if "NSEW北南东西".contains(c) {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .to_string();
    let value = if has_dms {
        let nums: Vec<f64> = cleaned
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
            .filter(|p| !p.is_empty())
            .map(|p| p.replace(',', "."))
            .map(|p| p.parse::<f64>())
            .collect::<Result<_, _>>()
            .ok()?;
        match nums[..] {
            [d] => d,
            [d, m] => d + m / 60.0,
            [d, m, sec] => d + m / 60.0 + sec / 3600.0,
            _ => return None,
        }
    } else {
        let t = cleaned.replace(' ', "");
        // One comma and no dot is a decimal comma.
        let t = if t.matches(',').count() == 1 && !t.contains('.') {
            t.replace(',', ".")
        } else {
            t
        };
        t.parse::<f64>().ok()?
    };
    let value = if negative { -value.abs() } else { value };
    value.is_finite().then_some(value)
}

pub(crate) fn normalise(h: &str) -> String {
    h.trim().trim_start_matches('\u{feff}').to_lowercase()
}

/// Maps header indices to canonical keys: explicit options first, then aliases.
fn map_columns(
    headers: &[String],
    opts: &CsvOptions,
) -> Result<Vec<Option<&'static str>>, ImportError> {
    let mut map: Vec<Option<&'static str>> = vec![None; headers.len()];
    let explicit: [(&Option<String>, &'static str); 5] = [
        (&opts.lat_col, "lat"),
        (&opts.lon_col, "lon"),
        (&opts.name_col, "name"),
        (&opts.address_col, "address"),
        (&opts.id_col, "ref"),
    ];
    for (col, key) in explicit {
        if let Some(col) = col {
            let i = headers
                .iter()
                .position(|h| normalise(h) == normalise(col))
                .ok_or_else(|| {
                    ImportError::Csv(format!(
                        "column '{col}' not found; columns are: {}",
                        headers.join(", ")
                    ))
                })?;
            map[i] = Some(key);
        }
    }
    for (i, h) in headers.iter().enumerate() {
        if map[i].is_some() {
            continue;
        }
        let h = normalise(h);
        if let Some((key, _)) = ALIASES
            .iter()
            .find(|(key, names)| names.contains(&h.as_str()) && !map.contains(&Some(*key)))
        {
            map[i] = Some(key);
        }
    }
    let has = |k: &str| map.contains(&Some(k));
    if !(has("coords") || has("lat") && has("lon")) {
        return Err(ImportError::Csv(format!(
            "no latitude/longitude columns found (pass --lat-col and --lon-col); columns are: {}",
            headers.join(", ")
        )));
    }
    Ok(map)
}

fn stable_ref(name: Option<&str>, lat: f64, lon: f64) -> String {
    let key = format!("{}|{:.5}|{:.5}", name.unwrap_or(""), lat, lon);
    let d = Sha256::digest(key.as_bytes());
    format!(
        "h:{}",
        d.iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// A CSV file opened as the options say: decoded (the encoding given or detected), split on the
/// delimiter given or detected, cells trimmed, rows of any length; the reader stands after
/// the header row, whose names come with it.
pub(crate) fn open_csv(
    bytes: &[u8],
    opts: &CsvOptions,
) -> Result<(csv::Reader<std::io::Cursor<String>>, Vec<String>), ImportError> {
    let text = decode(bytes, opts.encoding.as_deref())?;
    let delimiter = match opts.delimiter {
        Some(c) if c.is_ascii() => c as u8,
        Some(c) => {
            return Err(ImportError::Csv(format!(
                "delimiter '{c}' is not a single-byte character"
            )))
        }
        None => detect_delimiter(&text),
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::Cursor::new(text));
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ImportError::Csv(e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    Ok((reader, headers))
}

pub(crate) fn parse(bytes: &[u8], opts: &CsvOptions) -> Result<Parsed, ImportError> {
    let (mut reader, headers) = open_csv(bytes, opts)?;
    let map = map_columns(&headers, opts)?;
    let mut parsed = Parsed::default();
    for (i, row) in reader.records().enumerate() {
        // Row numbers as a spreadsheet shows them: the header is row 1.
        let record = format!("row {}", i + 2);
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                parsed.rejections.push(Rejection {
                    record,
                    field: None,
                    reason: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let mut tags = Tags::new();
        let mut coords = None;
        let (mut lat_raw, mut lon_raw) = (None, None);
        for (j, value) in row.iter().enumerate() {
            if value.is_empty() {
                continue;
            }
            match map.get(j).copied().flatten() {
                Some("lat") => lat_raw = Some(value),
                Some("lon") => lon_raw = Some(value),
                Some("coords") => coords = Some(value),
                Some(key) => {
                    tags.insert(key.to_string(), value.to_string());
                }
                None => {
                    if let Some(h) = headers.get(j) {
                        tags.insert(h.trim().to_string(), value.to_string());
                    }
                }
            }
        }
        let (lat, lon) = if let Some(c) = coords {
            // "lat, lon" or "lat lon" in one cell (decimal dots assumed there).
            let parts: Vec<&str> = c.split([',', ' ', ';']).filter(|p| !p.is_empty()).collect();
            match parts[..] {
                [a, b] => (parse_coordinate(a), parse_coordinate(b)),
                _ => (None, None),
            }
        } else {
            (
                lat_raw.and_then(parse_coordinate),
                lon_raw.and_then(parse_coordinate),
            )
        };
        let (Some(lat), Some(lon)) = (lat, lon) else {
            let field = if lat.is_none() { "lat" } else { "lon" };
            let raw = if field == "lat" {
                lat_raw.or(coords)
            } else {
                lon_raw.or(coords)
            };
            parsed.rejections.push(Rejection {
                record,
                field: Some(field.into()),
                reason: format!("no readable coordinate ({:?})", raw.unwrap_or("")),
            });
            continue;
        };
        let external_ref = tags
            .remove("ref")
            .unwrap_or_else(|| stable_ref(tags.get("name").map(String::as_str), lat, lon));
        let input = aed_from_tags(&record, Some(external_ref), lat, lon, tags, &mut parsed);
        parsed.aeds.push((record, input));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_in_the_formats_real_lists_use() {
        assert_eq!(parse_coordinate("47.1410"), Some(47.141));
        assert_eq!(parse_coordinate("47,1410"), Some(47.141));
        assert_eq!(parse_coordinate(" -9.5 "), Some(-9.5));
        let dms = parse_coordinate("47°08'27.6\"N").unwrap();
        assert!((dms - 47.141).abs() < 1e-6, "{dms}");
        let w = parse_coordinate("9°31'15\"W").unwrap();
        assert!((w + 9.520_833).abs() < 1e-5, "{w}");
        let cn = parse_coordinate("119°52′30″").unwrap();
        assert!((cn - 119.875).abs() < 1e-9);
        let cn2 = parse_coordinate("东经118度52分12秒").unwrap();
        assert!((cn2 - 118.87).abs() < 1e-9, "{cn2}");
        assert_eq!(parse_coordinate("n/a"), None);
        assert_eq!(parse_coordinate(""), None);
    }

    #[test]
    fn german_list_with_semicolons_decimal_commas_and_bom() {
        let csv = "\u{feff}Nr;Bezeichnung;Adresse;Breite;Länge;Öffnungszeiten;Standort\n\
                   1;Rathaus;Städtle 6, Vaduz;47,1410;9,5209;Mo-Fr 08:00-17:00;Eingang links\n\
                   2;Kaputt;Irgendwo;91,5;9,5;;\n";
        let p = parse(csv.as_bytes(), &CsvOptions::default()).unwrap();
        // Latitude 91.5 parses as a number; the range check rejects it during validation.
        assert_eq!(p.aeds.len(), 2);
        assert!(p.aeds[1]
            .1
            .clone()
            .validate(chrono::Utc::now())
            .is_err_and(|e| e.field == "lat"));
        let (_, a) = &p.aeds[0];
        assert_eq!(a.external_ref.as_deref(), Some("1"));
        assert_eq!((a.lat, a.lon), (47.141, 9.5209));
        assert_eq!(a.name.as_deref(), Some("Rathaus"));
        assert_eq!(a.address.as_deref(), Some("Städtle 6, Vaduz"));
        assert_eq!(a.opening_hours.as_deref(), Some("Mo-Fr 08:00-17:00"));
        assert_eq!(a.location_description.as_deref(), Some("Eingang links"));
        assert!(p.rejections.is_empty());
    }

    #[test]
    fn gbk_encoded_chinese_list_is_detected() {
        let text = "编号,名称,地址,经度,纬度,开放时间\nQZ-001,衢州站候车大厅,柯城区荷花三路,118.8743,28.9512,Mo-Su 05:30-23:00\nQZ-002,坏行,无,abc,28.9,\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        assert!(
            std::str::from_utf8(&gbk).is_err(),
            "the test input really is not UTF-8"
        );
        let p = parse(&gbk, &CsvOptions::default()).unwrap();
        assert_eq!(p.aeds.len(), 1);
        let (_, a) = &p.aeds[0];
        assert_eq!(a.name.as_deref(), Some("衢州站候车大厅"));
        assert_eq!((a.lat, a.lon), (28.9512, 118.8743));
        assert_eq!(a.external_ref.as_deref(), Some("QZ-001"));
        assert_eq!(p.rejections.len(), 1);
        assert_eq!(p.rejections[0].record, "row 3");
        assert_eq!(p.rejections[0].field.as_deref(), Some("lon"));
    }

    #[test]
    fn explicit_columns_combined_coordinates_and_stable_refs() {
        let csv = "site\tpos\tcomment\nClinic\t47.1,9.5\tnear door\n";
        let opts = CsvOptions {
            name_col: Some("site".into()),
            ..Default::default()
        };
        let p = parse(csv.as_bytes(), &opts).unwrap_err();
        assert!(
            p.to_string().contains("latitude/longitude"),
            "pos is not a known alias"
        );
        let csv = "site\tcoordinates\tcomment\nClinic\t47.1, 9.5\tnear door\n";
        let p = parse(csv.as_bytes(), &opts).unwrap();
        let (_, a) = &p.aeds[0];
        assert_eq!(
            (a.lat, a.lon, a.name.as_deref()),
            (47.1, 9.5, Some("Clinic"))
        );
        assert_eq!(a.tags.get("comment").map(String::as_str), Some("near door"));
        let again = parse(csv.as_bytes(), &opts).unwrap();
        assert_eq!(
            again.aeds[0].1.external_ref, a.external_ref,
            "stable without an id column"
        );
        assert!(parse(
            b"a,b\n1,2\n",
            &CsvOptions {
                lat_col: Some("nope".into()),
                ..Default::default()
            }
        )
        .is_err());
    }

    #[test]
    fn delimiter_detection() {
        assert_eq!(detect_delimiter("a;b;c\n"), b';');
        assert_eq!(detect_delimiter("a,b,c\n"), b',');
        assert_eq!(detect_delimiter("a\tb\n"), b'\t');
        assert_eq!(detect_delimiter("single\n"), b',');
    }
}

/// Fuzzing with proptest (bounded cases): arbitrary bytes and CSV-shaped text never panic the
/// importer; a file it cannot read is a clear client error, and every row it keeps or rejects
/// is accounted for.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn check(bytes: &[u8], opts: &CsvOptions) {
        match parse(bytes, opts) {
            Ok(p) => {
                for (_, a) in &p.aeds {
                    assert!(a.lat.is_finite() && a.lon.is_finite());
                }
                for r in &p.rejections {
                    assert!(!r.reason.is_empty() && r.record.starts_with("row "));
                }
            }
            Err(e) => {
                assert!(e.is_client_error(), "a bad file is the client's: {e}");
                assert!(!e.to_string().trim().is_empty());
            }
        }
    }

    const CELLS: [&str; 16] = [
        "28.97",
        "118.87",
        "-0",
        "91",
        "1e400",
        "NaN",
        "28°58'12\"N",
        "118,87",
        "",
        "\"",
        "\"a,b\"",
        "衢州",
        "24/7",
        "yes",
        "\u{feff}",
        " ",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), gbk in any::<bool>()) {
            let opts = CsvOptions {
                encoding: gbk.then(|| "gbk".to_string()),
                ..CsvOptions::default()
            };
            check(&bytes, &opts);
        }

        #[test]
        fn csv_shaped_text(
            header in prop::sample::select(vec!["lat,lon,name", "纬度;经度;名称", "name\tcoords", "x,y", "lat|lon", ""]),
            rows in prop::collection::vec(prop::collection::vec(prop::sample::select(CELLS.to_vec()), 0..5), 0..8),
            sep in prop::sample::select(vec![",", ";", "\t", "|"]),
        ) {
            let mut text = format!("{header}\n");
            for r in rows {
                text.push_str(&r.join(sep));
                text.push('\n');
            }
            check(text.as_bytes(), &CsvOptions::default());
            let with_cols = CsvOptions {
                lat_col: Some("lat".into()),
                lon_col: Some("lon".into()),
                delimiter: Some(sep.chars().next().unwrap()),
                ..CsvOptions::default()
            };
            check(text.as_bytes(), &with_cols);
        }

        #[test]
        fn coordinates_never_panic(raw in ".{0,24}") {
            if let Some(v) = parse_coordinate(&raw) {
                prop_assert!(v.is_finite());
            }
        }
    }
}
