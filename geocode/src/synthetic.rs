//! Synthetic address registers for tests and benchmarks: a Chinese one in the shape of a
//! city's 门牌 register (province, city, district, sub-district, road, number) and a
//! German-speaking one with umlauts. Deterministic for a seed; no dependencies.

use crate::{Kind, Place};

const DISTRICTS: &[(&str, f64, f64)] = &[
    ("柯城区", 28.97, 118.87),
    ("衢江区", 28.98, 118.96),
    ("龙游县", 29.03, 119.17),
    ("江山市", 28.74, 118.63),
    ("常山县", 28.90, 118.51),
    ("开化县", 29.14, 118.41),
];
const SUBDISTRICTS: &[&str] = &[
    "荷花街道",
    "府山街道",
    "信安街道",
    "白云街道",
    "新新街道",
    "双港街道",
    "樟潭街道",
    "浮石街道",
];
const ROAD_STEMS: &[&str] = &[
    "人民", "荷花", "新华", "解放", "中山", "文化", "建设", "花园", "府山", "钟楼", "体育", "百汇",
    "白云", "三衢", "通衢", "兴华", "县学", "坊门", "水亭", "柯山", "航埠", "石室", "九华", "下街",
];
const ROAD_KINDS: &[&str] = &["路", "街", "大道", "巷", "东路", "西路", "北路", "南路"];

const LATIN_TOWNS: &[(&str, f64, f64)] = &[
    ("Vaduz", 47.141, 9.521),
    ("Schaan", 47.165, 9.508),
    ("Triesen", 47.107, 9.527),
    ("Balzers", 47.066, 9.502),
    ("Eschen", 47.211, 9.522),
    ("Mauren", 47.218, 9.543),
    ("Triesenberg", 47.118, 9.543),
    ("Ruggell", 47.238, 9.527),
];
const LATIN_STEMS: &[&str] = &[
    "Äule",
    "Bühel",
    "Land",
    "Feld",
    "Schloss",
    "Kirch",
    "Mühle",
    "Rösle",
    "Gänse",
    "Bahnhof",
    "Schul",
    "Wiesen",
    "Rhein",
    "Berg",
    "Grüt",
    "Zollhaus",
    "Lände",
    "Fürst-Franz-Josef-",
    "Haupt",
    "Dorf",
    "Winkel",
    "Tal",
    "Bäch",
    "Garten",
];
const LATIN_KINDS: &[&str] = &["strasse", "weg", "gasse", "platz"];

/// xorshift64*: enough randomness for test data, reproducible everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One register entry: the full address text and its point.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub text: String,
    /// The parts a dispatcher might type: district, road, number (Chinese), or street,
    /// number, town (Latin).
    pub parts: [String; 3],
    pub lat: f64,
    pub lon: f64,
}

impl Entry {
    pub fn place(&self) -> Place {
        Place {
            label: self.text.clone(),
            kind: Kind::Address,
            category: None,
            lat: self.lat,
            lon: self.lon,
            texts: vec![],
            line: vec![],
        }
    }
}

/// `n` distinct Chinese register entries ("浙江省衢州市柯城区荷花街道人民路12号").
pub fn chinese(n: usize, seed: u64) -> Vec<Entry> {
    let roads = ROAD_STEMS.len() * ROAD_KINDS.len();
    let per_road = n.div_ceil(DISTRICTS.len() * roads).max(1);
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(n);
    'outer: for (d, lat0, lon0) in DISTRICTS {
        for r in 0..roads {
            let road = format!(
                "{}{}",
                ROAD_STEMS[r % ROAD_STEMS.len()],
                ROAD_KINDS[r / ROAD_STEMS.len()]
            );
            let sub = SUBDISTRICTS[rng.below(SUBDISTRICTS.len())];
            // A road runs one way through its district.
            let (rlat, rlon) = (
                lat0 + rng.unit() * 0.06 - 0.03,
                lon0 + rng.unit() * 0.06 - 0.03,
            );
            let (dlat, dlon) = (rng.unit() * 0.0004 - 0.0002, rng.unit() * 0.0004 - 0.0002);
            for no in 1..=per_road {
                if out.len() == n {
                    break 'outer;
                }
                out.push(Entry {
                    text: format!("浙江省衢州市{d}{sub}{road}{no}号"),
                    parts: [d.to_string(), road.clone(), format!("{no}号")],
                    lat: rlat + dlat * no as f64 / 10.0,
                    lon: rlon + dlon * no as f64 / 10.0,
                });
            }
        }
    }
    out
}

/// `n` distinct German-spelt entries ("Äulestrasse 5, 9490 Vaduz").
pub fn latin(n: usize, seed: u64) -> Vec<Entry> {
    let streets = LATIN_STEMS.len() * LATIN_KINDS.len();
    let per_street = n.div_ceil(LATIN_TOWNS.len() * streets).max(1);
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(n);
    'outer: for (ti, (town, lat0, lon0)) in LATIN_TOWNS.iter().enumerate() {
        for s in 0..streets {
            let street = format!(
                "{}{}",
                LATIN_STEMS[s % LATIN_STEMS.len()],
                LATIN_KINDS[s / LATIN_STEMS.len()]
            );
            let (rlat, rlon) = (
                lat0 + rng.unit() * 0.02 - 0.01,
                lon0 + rng.unit() * 0.02 - 0.01,
            );
            for no in 1..=per_street {
                if out.len() == n {
                    break 'outer;
                }
                out.push(Entry {
                    text: format!("{street} {no}, {} {town}", 9480 + ti * 5),
                    parts: [street.clone(), no.to_string(), town.to_string()],
                    lat: rlat + 0.00002 * no as f64,
                    lon: rlon + 0.00001 * no as f64,
                });
            }
        }
    }
    out
}
