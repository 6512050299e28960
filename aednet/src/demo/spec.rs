//! The demo city's tables: the six districts of Quzhou's AED plan with their seats, towns and
//! rivers (positions near the real ones, boundaries simplified), the kinds of sites that host
//! AEDs, and the names the generator draws from.

use aednet_core::station::ScenicRating;

pub(super) const SOURCE: &str = "demo";

/// What a settlement is, as OSM's `place` tag says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    City,
    Town,
    Village,
}

impl Kind {
    pub fn place(self) -> &'static str {
        match self {
            Kind::City => "city",
            Kind::Town => "town",
            Kind::Village => "village",
        }
    }
}

/// A named town of a district. `at: None` is a subdistrict (街道) of the seat: a `place=suburb`
/// label inside the seat's streets, not a settlement of its own.
pub(super) struct TownSpec {
    pub name: &'static str,
    pub en: &'static str,
    pub at: Option<(f64, f64)>,
}

pub(super) struct DistrictSpec {
    pub name: &'static str,
    pub code: &'static str,
    pub population: i64,
    /// Exterior ring, (lon, lat), axis-aligned: the generator makes the edges irregular.
    pub ring: &'static [(f64, f64)],
    /// District seat (lat, lon), its name, and its kind and radius in metres.
    pub seat: (f64, f64),
    pub seat_name: (&'static str, &'static str),
    pub seat_kind: Kind,
    pub seat_radius_m: f64,
    /// Share of the AED target already installed: the plan is not finished everywhere.
    pub built: f64,
    pub towns: &'static [TownSpec],
}

const fn sub(name: &'static str, en: &'static str) -> TownSpec {
    TownSpec { name, en, at: None }
}

const fn town(name: &'static str, en: &'static str, lat: f64, lon: f64) -> TownSpec {
    TownSpec {
        name,
        en,
        at: Some((lat, lon)),
    }
}

/// The six districts tile 118.2–119.4 E × 28.4–29.4 N around their real seats.
pub(super) const DISTRICTS: &[DistrictSpec] = &[
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
        seat_name: ("衢州", "Quzhou"),
        seat_kind: Kind::City,
        seat_radius_m: 3000.0,
        built: 0.95,
        towns: &[
            sub("府山街道", "Fushan Subdistrict"),
            sub("荷花街道", "Hehua Subdistrict"),
            sub("信安街道", "Xin'an Subdistrict"),
            town("航埠镇", "Hangbu", 28.930, 118.780),
        ],
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
        seat_name: ("衢江", "Qujiang"),
        seat_kind: Kind::Town,
        seat_radius_m: 2200.0,
        built: 0.80,
        towns: &[
            sub("樟潭街道", "Zhangtan Subdistrict"),
            sub("浮石街道", "Fushi Subdistrict"),
            town("上方镇", "Shangfang", 28.905, 119.000),
            town("莲花镇", "Lianhua", 29.090, 118.970),
        ],
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
        seat_name: ("龙游", "Longyou"),
        seat_kind: Kind::Town,
        seat_radius_m: 2300.0,
        built: 0.75,
        towns: &[
            sub("龙洲街道", "Longzhou Subdistrict"),
            sub("东华街道", "Donghua Subdistrict"),
            town("湖镇镇", "Huzhen", 29.110, 119.290),
            town("溪口镇", "Xikou", 28.910, 119.150),
        ],
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
        seat_name: ("江山", "Jiangshan"),
        seat_kind: Kind::Town,
        seat_radius_m: 2500.0,
        built: 0.85,
        towns: &[
            sub("双塔街道", "Shuangta Subdistrict"),
            sub("虎山街道", "Hushan Subdistrict"),
            town("贺村镇", "Hecun", 28.790, 118.710),
            town("石门镇", "Shimen", 28.560, 118.640),
        ],
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
        seat_name: ("常山", "Changshan"),
        seat_kind: Kind::Town,
        seat_radius_m: 2000.0,
        built: 0.72,
        towns: &[
            sub("天马街道", "Tianma Subdistrict"),
            sub("紫港街道", "Zigang Subdistrict"),
            town("球川镇", "Qiuchuan", 28.820, 118.300),
            town("辉埠镇", "Huibu", 28.950, 118.400),
        ],
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
        seat_name: ("开化", "Kaihua"),
        seat_kind: Kind::Town,
        seat_radius_m: 2000.0,
        built: 0.78,
        towns: &[
            sub("芹阳办事处", "Qinyang Subdistrict"),
            town("华埠镇", "Huabu", 29.050, 118.370),
            town("马金镇", "Majin", 29.260, 118.330),
            town("池淮镇", "Chihuai", 29.200, 118.470),
        ],
    },
];

/// A river: its names and width, and the points it runs through (lat, lon), upstream first.
/// They pass beside the district seats, as Quzhou's rivers do: the cities have bridges.
pub(super) struct RiverSpec {
    pub name: &'static str,
    pub en: &'static str,
    pub width_m: f64,
    pub through: &'static [(f64, f64)],
}

pub(super) const RIVERS: &[RiverSpec] = &[
    RiverSpec {
        name: "衢江",
        en: "Qu River",
        width_m: 180.0,
        through: &[
            (28.955, 118.835),
            (28.9735, 118.8662),
            (28.978, 118.930),
            (28.9838, 118.9583),
            (29.010, 119.060),
            (29.0342, 119.1677),
            (29.070, 119.280),
            (29.100, 119.420),
        ],
    },
    RiverSpec {
        name: "常山港",
        en: "Changshan River",
        width_m: 130.0,
        through: &[
            (29.300, 118.290),
            (29.1437, 118.4128),
            (29.020, 118.470),
            (28.9033, 118.5081),
            (28.925, 118.690),
            (28.955, 118.835),
        ],
    },
    RiverSpec {
        name: "江山港",
        en: "Jiangshan River",
        width_m: 130.0,
        through: &[
            (28.420, 118.580),
            (28.600, 118.605),
            (28.7433, 118.6283),
            (28.850, 118.760),
            (28.955, 118.835),
        ],
    },
];

/// Words for street and park names, with their pinyin.
pub(super) const WORDS: &[(&str, &str)] = &[
    ("人民", "Renmin"),
    ("解放", "Jiefang"),
    ("新华", "Xinhua"),
    ("文化", "Wenhua"),
    ("建设", "Jianshe"),
    ("中山", "Zhongshan"),
    ("府山", "Fushan"),
    ("荷花", "Hehua"),
    ("花园", "Huayuan"),
    ("通衢", "Tongqu"),
    ("县学", "Xianxue"),
    ("新桥", "Xinqiao"),
    ("衢化", "Quhua"),
    ("劳动", "Laodong"),
    ("和平", "Heping"),
    ("胜利", "Shengli"),
    ("朝阳", "Chaoyang"),
    ("迎宾", "Yingbin"),
    ("振兴", "Zhenxing"),
    ("光明", "Guangming"),
    ("幸福", "Xingfu"),
    ("长安", "Chang'an"),
    ("学院", "Xueyuan"),
    ("体育", "Tiyu"),
    ("环城", "Huancheng"),
    ("滨江", "Binjiang"),
    ("钟楼", "Zhonglou"),
    ("水亭", "Shuiting"),
    ("坊门", "Fangmen"),
    ("北门", "Beimen"),
    ("南门", "Nanmen"),
    ("东门", "Dongmen"),
    ("西安", "Xi'an"),
    ("白云", "Baiyun"),
    ("紫荆", "Zijing"),
    ("丹桂", "Dangui"),
    ("香樟", "Xiangzhang"),
    ("芙蓉", "Furong"),
    ("桔海", "Juhai"),
    ("柑橘", "Ganju"),
    ("书院", "Shuyuan"),
    ("礼贤", "Lixian"),
    ("蛟池", "Jiaochi"),
    ("天宁", "Tianning"),
    ("锦绣", "Jinxiu"),
    ("百汇", "Baihui"),
    ("东港", "Donggang"),
    ("创新", "Chuangxin"),
    ("兴业", "Xingye"),
    ("世纪", "Shiji"),
    ("万田", "Wantian"),
    ("石梁", "Shiliang"),
    ("九华", "Jiuhua"),
    ("双港", "Shuanggang"),
    ("信安", "Xin'an"),
    ("仙霞", "Xianxia"),
    ("江郎", "Jianglang"),
    ("须江", "Xujiang"),
    ("鹿鸣", "Luming"),
    ("翠竹", "Cuizhu"),
];

/// Village names: a first and a second syllable, with pinyin.
pub(super) const VILLAGE_A: &[(&str, &str)] = &[
    ("上", "Shang"),
    ("下", "Xia"),
    ("东", "Dong"),
    ("西", "Xi"),
    ("大", "Da"),
    ("小", "Xiao"),
    ("新", "Xin"),
    ("高", "Gao"),
    ("黄", "Huang"),
    ("石", "Shi"),
];
pub(super) const VILLAGE_B: &[(&str, &str)] = &[
    ("塘", "tang"),
    ("坞", "wu"),
    ("溪", "xi"),
    ("岭", "ling"),
    ("源", "yuan"),
    ("坑", "keng"),
    ("山", "shan"),
    ("湖", "hu"),
    ("田", "tian"),
    ("桥", "qiao"),
];

pub(super) struct Site {
    pub names: &'static [&'static str],
    pub hours: &'static str,
    pub indoor: bool,
    pub where_: &'static [&'static str],
    /// Relative frequency.
    pub weight: u32,
    /// Probability the site restricts access (customers or staff only).
    pub restricted: f64,
}

pub(super) const SITES: &[Site] = &[
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
pub(super) const MALFORMED_HOURS: &[&str] = &[
    "周一至周五 8:00-17:00",
    "Mo - Fr 7:00 - 17:00",
    "工作日白天",
];

pub(super) const ROADS: &[&str] = &[
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
pub(super) const OPERATORS: &[&str] = &[
    "衢州市红十字会",
    "衢州市急救中心",
    "市卫生健康委员会",
    "街道办事处",
    "物业服务中心",
];
pub(super) const MODELS: &[&str] = &[
    "Philips HeartStart HS1",
    "Mindray BeneHeart C2",
    "ZOLL AED Plus",
    "Cardiac Science Powerheart G5",
];

pub(super) const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "郑", "毛", "余", "叶", "汪", "方", "邵", "祝", "童", "程", "姜", "徐",
];
pub(super) const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "建华", "志强", "海燕", "晓东", "文斌", "丽萍", "俊杰",
    "雨涵",
];
pub(super) const TEAMS: &[Option<&str>] = &[
    Some("蓝天救援队"),
    Some("衢州市红十字救护志愿服务队"),
    Some("公羊救援队"),
    None,
    None,
];
pub(super) const SKILLS: &[&str] = &["CPR", "AED", "创伤救护", "止血包扎", "溺水急救", "心理援助"];

/// Scenic areas (A-rated) with their aid stations: name, rating, lat, lon.
pub(super) const SCENIC: &[(&str, ScenicRating, f64, f64)] = &[
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

pub(super) const BUS_ROUTES: &[&str] = &["公交K1路", "公交2路", "公交5路", "公交101路"];
