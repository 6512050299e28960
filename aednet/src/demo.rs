//! A deterministic synthetic demo city, shaped like Quzhou (衢州): the six districts of the
//! city's AED plan with their real populations and the plan's 1.5 AEDs per 10,000 target, a few
//! hundred AEDs clustered around the district seats with realistic site types, opening hours and
//! readiness, aid stations of every kind, and certified volunteer rescuers.
//!
//! Everything goes through the domain's `validate()` so the demo exercises real validation. The
//! same seed and `now` give the same city. No third-party data is involved: boundaries are
//! simplified rectangles around the real district seats.

use aednet_core::aed::{Access, AedData, AedInput, ReadinessStatus};
use aednet_core::district::{DistrictData, DistrictInput, DistrictLocator};
use aednet_core::rescuer::{CertLevel, RescuerData, RescuerInput};
use aednet_core::station::{ScenicRating, StationData, StationInput, StationKind};
use aednet_core::{Secret, Tags};
use aednet_store::{Store, UpsertOutcome};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

const SOURCE: &str = "demo";

struct DistrictSpec {
    name: &'static str,
    code: &'static str,
    population: i64,
    /// Exterior ring, (lon, lat).
    ring: &'static [(f64, f64)],
    /// District seat (lat, lon): the urban core AEDs cluster around.
    seat: (f64, f64),
    /// Share of the AED target already installed: the plan is not finished everywhere.
    built: f64,
    towns: &'static [&'static str],
}

/// The six districts tile 118.2–119.4 E × 28.4–29.4 N around their real seats.
const DISTRICTS: &[DistrictSpec] = &[
    DistrictSpec {
        name: "柯城区",
        code: "330802",
        population: 440_000,
        ring: &[
            (118.60, 28.85),
            (118.90, 28.85),
            (118.90, 29.40),
            (118.60, 29.40),
        ],
        seat: (28.970, 118.870),
        built: 0.95,
        towns: &["府山街道", "荷花街道", "信安街道", "航埠镇"],
    },
    DistrictSpec {
        name: "衢江区",
        code: "330803",
        population: 400_000,
        ring: &[
            (118.90, 28.85),
            (119.05, 28.85),
            (119.05, 29.40),
            (118.90, 29.40),
        ],
        seat: (28.980, 118.960),
        built: 0.80,
        towns: &["樟潭街道", "浮石街道", "上方镇", "莲花镇"],
    },
    DistrictSpec {
        name: "龙游县",
        code: "330825",
        population: 400_000,
        ring: &[
            (119.05, 28.85),
            (119.40, 28.85),
            (119.40, 29.40),
            (119.05, 29.40),
        ],
        seat: (29.030, 119.170),
        built: 0.75,
        towns: &["龙洲街道", "东华街道", "湖镇镇", "溪口镇"],
    },
    DistrictSpec {
        name: "江山市",
        code: "330881",
        population: 610_000,
        ring: &[
            (118.20, 28.40),
            (119.40, 28.40),
            (119.40, 28.85),
            (118.60, 28.85),
            (118.60, 28.70),
            (118.20, 28.70),
        ],
        seat: (28.740, 118.630),
        built: 0.85,
        towns: &["双塔街道", "虎山街道", "贺村镇", "石门镇"],
    },
    DistrictSpec {
        name: "常山县",
        code: "330822",
        population: 340_000,
        ring: &[
            (118.20, 28.70),
            (118.60, 28.70),
            (118.60, 29.00),
            (118.20, 29.00),
        ],
        seat: (28.900, 118.510),
        built: 0.72,
        towns: &["天马街道", "紫港街道", "球川镇", "辉埠镇"],
    },
    DistrictSpec {
        name: "开化县",
        code: "330824",
        population: 360_000,
        ring: &[
            (118.20, 29.00),
            (118.60, 29.00),
            (118.60, 29.40),
            (118.20, 29.40),
        ],
        seat: (29.140, 118.410),
        built: 0.78,
        towns: &["芹阳办事处", "华埠镇", "马金镇", "池淮镇"],
    },
];

/// A kind of place that hosts an AED, with the hours and placement typical for it.
struct Site {
    names: &'static [&'static str],
    hours: &'static str,
    indoor: bool,
    where_: &'static [&'static str],
    /// Relative frequency.
    weight: u32,
    /// Probability the site restricts access (customers or staff only).
    restricted: f64,
}

const SITES: &[Site] = &[
    Site {
        names: &["{t}户外AED急救柜", "{r}公交站AED柜", "{t}文化广场AED柜"],
        hours: "24/7",
        indoor: false,
        where_: &["广场东侧公交站旁", "便利店门口", "路口报刊亭旁"],
        weight: 30,
        restricted: 0.0,
    },
    Site {
        names: &[
            "{d}人民医院门诊楼",
            "{d}中医院急诊科",
            "{t}社区卫生服务中心",
        ],
        hours: "24/7",
        indoor: true,
        where_: &["门诊大厅导医台旁", "急诊科入口", "一楼挂号处旁"],
        weight: 10,
        restricted: 0.0,
    },
    Site {
        names: &["衢州站候车大厅", "{d}汽车客运站", "{t}公交枢纽站"],
        hours: "Mo-Su 05:30-23:00",
        indoor: true,
        where_: &["候车大厅安检口旁", "售票厅服务台旁"],
        weight: 8,
        restricted: 0.0,
    },
    Site {
        names: &["{t}万达广场", "{t}银泰百货", "{r}购物中心"],
        hours: "Mo-Su 10:00-22:00",
        indoor: true,
        where_: &["一楼服务台旁", "二楼扶梯口", "地下一层停车场电梯厅"],
        weight: 12,
        restricted: 0.2,
    },
    Site {
        names: &["{d}政务服务中心", "{t}便民服务中心", "{d}图书馆"],
        hours: "Mo-Fr 08:30-12:00,14:00-17:30; PH off",
        indoor: true,
        where_: &["一楼大厅咨询台旁", "入口安检处"],
        weight: 10,
        restricted: 0.0,
    },
    Site {
        names: &["{d}第一中学体育馆", "{t}中心小学", "衢州学院体育馆"],
        hours: "Mo-Fr 07:00-17:30; PH off",
        indoor: true,
        where_: &["体育馆入口左侧", "教学楼一楼医务室"],
        weight: 10,
        restricted: 0.5,
    },
    Site {
        names: &["{d}体育中心", "{t}全民健身中心"],
        hours: "Mo-Su 06:00-21:00",
        indoor: true,
        where_: &["游泳馆前台", "健身房入口"],
        weight: 6,
        restricted: 0.1,
    },
    Site {
        names: &["{t}工业园区管委会", "{r}写字楼"],
        hours: "Mo-Fr 08:00-18:00",
        indoor: true,
        where_: &["一楼前台", "电梯厅"],
        weight: 8,
        restricted: 0.6,
    },
    Site {
        names: &["{t}社区居委会", "{t}老年活动中心"],
        hours: "Mo-Su 08:00-20:00",
        indoor: true,
        where_: &["一楼活动室门口", "值班室"],
        weight: 6,
        restricted: 0.0,
    },
];

/// Values a real registry contains and that do not parse: kept, flagged, treated as unknown.
const MALFORMED_HOURS: &[&str] = &[
    "周一至周五 8:00-17:00",
    "Mo - Fr 7:00 - 17:00",
    "工作日白天",
];

const ROADS: &[&str] = &[
    "荷花路",
    "新桥街",
    "县学街",
    "衢化路",
    "花园大道",
    "人民路",
    "解放路",
    "文化路",
    "通衢路",
];
const OPERATORS: &[&str] = &[
    "衢州市红十字会",
    "衢州市急救中心",
    "市卫生健康委员会",
    "街道办事处",
    "物业服务中心",
];
const MODELS: &[&str] = &[
    "Philips HeartStart HS1",
    "Mindray BeneHeart C2",
    "ZOLL AED Plus",
    "Cardiac Science Powerheart G5",
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "郑", "毛", "余", "叶", "汪", "方", "邵", "祝", "童", "程", "姜", "徐",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "建华", "志强", "海燕", "晓东", "文斌", "丽萍", "俊杰",
    "雨涵",
];
const TEAMS: &[Option<&str>] = &[
    Some("蓝天救援队"),
    Some("衢州市红十字救护志愿服务队"),
    Some("公羊救援队"),
    None,
    None,
];
const SKILLS: &[&str] = &["CPR", "AED", "创伤救护", "止血包扎", "溺水急救", "心理援助"];

/// Scenic areas (A-rated) with their aid stations: name, rating, lat, lon.
const SCENIC: &[(&str, ScenicRating, f64, f64)] = &[
    ("江郎山景区救护站", ScenicRating::A5, 28.522, 118.566),
    (
        "根宫佛国文化旅游区救护站",
        ScenicRating::A5,
        28.925,
        118.545,
    ),
    ("龙游石窟景区救护站", ScenicRating::A4, 29.051, 119.196),
    ("钱江源国家公园救护站", ScenicRating::A4, 29.350, 118.250),
    ("药王山景区救护站", ScenicRating::A4, 29.300, 118.980),
];

const BUS_ROUTES: &[&str] = &["公交K1路", "公交2路", "公交5路", "公交101路"];

#[derive(Debug, Clone)]
pub struct DemoStation {
    pub data: StationData,
    /// Indices into [`DemoCity::aeds`] of the AEDs kept at this station.
    pub aed_indices: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct DemoCity {
    pub districts: Vec<DistrictData>,
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
}

fn polygon(ring: &[(f64, f64)]) -> geojson::Geometry {
    let mut coords: Vec<Vec<f64>> = ring.iter().map(|&(lon, lat)| vec![lon, lat]).collect();
    coords.push(coords[0].clone());
    geojson::Geometry::new(geojson::Value::Polygon(vec![coords]))
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

/// A standard normal sample (Box–Muller): town centres are dense, outskirts sparse.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

struct Gen {
    rng: ChaCha8Rng,
    now: DateTime<Utc>,
    locator: DistrictLocator,
}

impl Gen {
    /// A point in district `di`: 70 % around the seat (σ ≈ 2 km), the rest spread over the
    /// district, always inside its boundary.
    fn point(&mut self, di: usize, spread: bool) -> (f64, f64) {
        let spec = &DISTRICTS[di];
        loop {
            let (lat, lon) = if !spread && self.rng.gen_bool(0.7) {
                (
                    spec.seat.0 + normal(&mut self.rng) * 0.018,
                    spec.seat.1 + normal(&mut self.rng) * 0.02,
                )
            } else {
                let (mut lo, mut hi) = ((f64::MAX, f64::MAX), (f64::MIN, f64::MIN));
                for &(x, y) in spec.ring {
                    lo = (lo.0.min(x), lo.1.min(y));
                    hi = (hi.0.max(x), hi.1.max(y));
                }
                (
                    self.rng.gen_range(lo.1..hi.1),
                    self.rng.gen_range(lo.0..hi.0),
                )
            };
            if let Ok(p) = aednet_core::LatLon::new(lat, lon) {
                if self.locator.locate(p) == Some(di as i64) {
                    return (lat, lon);
                }
            }
        }
    }

    fn expiry(&mut self) -> NaiveDate {
        // Mostly years ahead; a few expiring this month or already expired.
        let days = if self.rng.gen_bool(0.1) {
            self.rng.gen_range(-20..30)
        } else {
            self.rng.gen_range(30..1200)
        };
        (self.now + Duration::days(days)).date_naive()
    }

    fn aed(&mut self, di: usize, n: usize, site: &Site, name: String, at: (f64, f64)) -> AedData {
        let spec = &DISTRICTS[di];
        let hours = if self.rng.gen_bool(0.01) || n == 7 && di < MALFORMED_HOURS.len() {
            pick(&mut self.rng, MALFORMED_HOURS).to_string()
        } else {
            site.hours.to_string()
        };
        let access = if self.rng.gen_bool(site.restricted) {
            if self.rng.gen_bool(0.5) {
                Access::Customers
            } else {
                Access::Private
            }
        } else {
            Access::Yes
        };
        let roll: f64 = self.rng.gen();
        let (status, reason) = match roll {
            r if r < 0.40 => (ReadinessStatus::Ready, Some("自检通过 self-test passed")),
            r if r < 0.45 => (
                ReadinessStatus::Degraded,
                Some("电池电量低 (18%) battery low"),
            ),
            r if r < 0.48 => (ReadinessStatus::Fault, Some("自检失败 E12 self-test fault")),
            r if r < 0.51 => (
                ReadinessStatus::Offline,
                Some("超过30分钟无心跳 no heartbeat for 30 min"),
            ),
            r if r < 0.52 => (
                ReadinessStatus::InUse,
                Some("柜门打开，AED已取出 removed from cabinet"),
            ),
            _ => (ReadinessStatus::Unknown, None),
        };
        let connected = status != ReadinessStatus::Unknown;
        let locked = !site.indoor && self.rng.gen_bool(0.4);
        let mut tags = Tags::new();
        tags.insert("emergency".into(), "defibrillator".into());
        let input = AedInput {
            source: Some(SOURCE.into()),
            external_ref: Some(format!("demo-aed-{di}-{n:04}")),
            lat: at.0,
            lon: at.1,
            name: Some(name),
            address: Some(format!(
                "浙江省衢州市{}{}{}号",
                spec.name,
                pick(&mut self.rng, ROADS),
                self.rng.gen_range(1..400)
            )),
            operator: Some(pick(&mut self.rng, OPERATORS).to_string()),
            phone: Some(format!("0570-{}", self.rng.gen_range(3_000_000..8_999_999))),
            indoor: Some(site.indoor),
            // OSM `level`: 0 is the ground floor (一楼 in Chinese usage).
            level: site.indoor.then(|| "0".to_string()),
            location_description: Some(pick(&mut self.rng, site.where_).to_string()),
            access: Some(access),
            opening_hours: Some(hours),
            time_zone: Some(chrono_tz::Asia::Shanghai),
            cabinet_locked: Some(locked),
            cabinet_code: locked
                .then(|| Secret::new(format!("{:04}", self.rng.gen_range(0..10_000)))),
            device_model: Some(pick(&mut self.rng, MODELS).to_string()),
            device_serial: connected
                .then(|| format!("SN{:08}", self.rng.gen_range(0..100_000_000))),
            pads_expiry: Some(self.expiry()),
            battery_expiry: Some(self.expiry()),
            readiness_status: Some(status),
            readiness_reason: reason.map(str::to_string),
            district_id: None,
            tags,
        };
        let mut data = input.validate(self.now).expect("demo AEDs are valid");
        // Readiness changed at some point in the last days, not all at generation time.
        data.readiness.since = self.now - Duration::minutes(self.rng.gen_range(5..7 * 24 * 60));
        data
    }

    fn station(
        &mut self,
        kind: StationKind,
        name: String,
        at: (f64, f64),
        hours: &str,
        rating: Option<ScenicRating>,
    ) -> StationData {
        let equipment: &[&str] = match kind {
            StationKind::BusKit => &["AED", "急救包", "止血带", "三角巾"],
            StationKind::ScenicAidStation => &["AED", "担架", "急救箱", "轮椅", "氧气袋"],
            _ => &["AED", "急救箱", "轮椅"],
        };
        StationInput {
            source: Some(SOURCE.into()),
            external_ref: Some(format!(
                "demo-station-{}-{:.4}-{:.4}",
                kind.as_str(),
                at.0,
                at.1
            )),
            kind,
            name,
            scenic_rating: rating,
            lat: at.0,
            lon: at.1,
            address: None,
            staffed_hours: Some(hours.to_string()),
            time_zone: Some(chrono_tz::Asia::Shanghai),
            contact_name: Some(format!("{}站长", pick(&mut self.rng, SURNAMES))),
            contact_phone: Some(format!("0570-{}", self.rng.gen_range(3_000_000..8_999_999))),
            equipment: equipment.iter().map(|s| s.to_string()).collect(),
            aed_ids: vec![],
            district_id: None,
            tags: Tags::new(),
        }
        .validate(self.now)
        .expect("demo stations are valid")
    }
}

pub fn generate(seed: u64, now: DateTime<Utc>) -> DemoCity {
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
                boundary: Some(polygon(d.ring)),
                target_aeds_per_10k: Some(1.5),
                // One certified rescuer per 1,000 people.
                target_rescuers: Some(d.population / 1000),
                tags: Tags::new(),
            }
            .validate()
            .expect("demo districts are valid")
        })
        .collect();
    let locator = DistrictLocator::new(districts.iter().enumerate().map(|(i, d)| (i as i64, d)));
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(seed),
        now,
        locator,
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
            let town = *pick(&mut g.rng, spec.towns);
            let road = *pick(&mut g.rng, ROADS);
            let name = pick(&mut g.rng, site.names)
                .replace("{t}", town)
                .replace("{d}", spec.name)
                .replace("{r}", road);
            let at = g.point(di, false);
            let aed = g.aed(di, n, site, name, at);
            aeds.push((di, aed));
        }
    }

    let mut stations = Vec::new();
    for (di, spec) in DISTRICTS.iter().enumerate() {
        // Two 博爱驿站 per district, each an outdoor cabinet with its own locked AED.
        for k in 0..2 {
            let at = g.point(di, false);
            let town = spec.towns[k % spec.towns.len()];
            let name = format!("博爱驿站（{town}）");
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
        let at = g.point(di, false);
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
        let at = g.point(di, false);
        let s = g.station(
            StationKind::CommunityStation,
            format!("{}社区救护站", spec.towns[0]),
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
        let at = g.point(0, false);
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
        let n = (d.target_rescuers.unwrap_or(0) as f64 * g.rng.gen_range(0.55..0.9)) as usize;
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
    Ok(DemoSummary {
        districts: city.districts.len(),
        aeds: city.aeds.len(),
        stations: city.stations.len(),
        rescuers: city.rescuers.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap()
    }

    #[test]
    fn same_seed_same_city() {
        let (a, b) = (generate(7, now()), generate(7, now()));
        assert_eq!(format!("{:?}", a.aeds), format!("{:?}", b.aeds));
        assert_eq!(format!("{:?}", a.rescuers), format!("{:?}", b.rescuers));
        let c = generate(8, now());
        assert_ne!(format!("{:?}", a.aeds), format!("{:?}", c.aeds));
    }

    #[test]
    fn districts_fall_short_of_their_targets_by_plausible_amounts() {
        let city = generate(crate::bootstrap::DEFAULT_SEED, now());
        let locator = DistrictLocator::new(
            city.districts
                .iter()
                .enumerate()
                .map(|(i, d)| (i as i64, d)),
        );
        for (di, d) in city.districts.iter().enumerate() {
            let n = city.aeds.iter().filter(|(i, _)| *i == di).count() as f64;
            let target = d.target_aeds().unwrap() as f64;
            assert!(
                (0.7 * target..=target).contains(&n),
                "{}: {n} of {target}",
                d.name
            );
        }
        for (di, a) in &city.aeds {
            assert_eq!(
                locator.locate(a.location),
                Some(*di as i64),
                "AED outside its district"
            );
        }
        assert!(city.aeds.len() >= 300, "{}", city.aeds.len());
    }

    #[test]
    fn realistic_mix_of_data() {
        let city = generate(crate::bootstrap::DEFAULT_SEED, now());
        for kind in [
            StationKind::ScenicAidStation,
            StationKind::BoaiStation,
            StationKind::SchoolStation,
            StationKind::CommunityStation,
            StationKind::BusKit,
        ] {
            assert!(
                city.stations.iter().any(|(_, s)| s.data.kind == kind),
                "{kind:?}"
            );
        }
        assert!(city
            .stations
            .iter()
            .any(|(_, s)| s.data.scenic_rating == Some(ScenicRating::A5)));
        assert!(
            city.aeds
                .iter()
                .any(|(_, a)| a.opening_hours.is_some() && !a.opening_hours_valid),
            "malformed hours"
        );
        assert!(
            city.aeds
                .iter()
                .filter(|(_, a)| a.cabinet_code.is_some())
                .count()
                >= 12
        );
        let always = city
            .aeds
            .iter()
            .filter(|(_, a)| a.opening_hours.as_deref() == Some("24/7"))
            .count() as f64;
        let share = always / city.aeds.len() as f64;
        assert!((0.25..0.55).contains(&share), "24/7 share {share}");
        let expired = city
            .rescuers
            .iter()
            .filter(|(_, r)| !r.is_certified_on(now().date_naive()))
            .count() as f64;
        let share = expired / city.rescuers.len() as f64;
        assert!((0.02..0.15).contains(&share), "expired share {share}");
        let unknown = city
            .aeds
            .iter()
            .filter(|(_, a)| a.readiness.status == ReadinessStatus::Unknown)
            .count() as f64;
        assert!(
            unknown / city.aeds.len() as f64 > 0.3,
            "most AEDs have no telemetry"
        );
    }
}
