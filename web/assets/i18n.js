// Every string the consoles show, in zh-CN and en. The language defaults to the browser's
// (zh* → Chinese, anything else → English); the switch is remembered in localStorage.
// Elements with data-i18n="key" get the string as text; data-i18n-attr="attr:key" sets an
// attribute (placeholders, aria-labels). Functions take arguments for counts and times.

const en = {
  navRescuers: "Rescuers", rescuersTitle: "Rescuers", more: "More",
  rescuersHelp: "Certified volunteers. “Enrol phone” issues a responder token for one of them and shows it as a QR code: the rescuer scans it with the phone's camera and the responder app opens signed in.",
  certRange: (a, b, ok) => `Certificate ${a} to ${b}${ok ? "" : " (not valid today)"}`, onDutyNow: "on duty", offDutyNow: "off duty",
  enrolPhone: "Enrol phone (QR code)", noRescuers: "No rescuers yet.", enrolTitle: n => `Enrol ${n}'s phone`,
  enrolSecret: "This QR code is a secret: whoever scans it is signed in as this rescuer. It is shown only once — let only the rescuer scan it, then close this window.",
  enrolHow: "On the rescuer's phone: open the camera, point it at the code and open the link; the responder app opens signed in (add it to the home screen from the browser's menu).",
  enrolShowLink: "Show the link instead", enrolRevoke: id => `A lost phone: revoke token #${id} (DELETE /api/v1/tokens/${id}) and enrol again.`,
  enrolDone: "Done — hide the code", enrolQrAlt: n => `Enrolment QR code for ${n}`,
  // shared
  brand: "aednet", navPublic: "AED map", navDispatch: "Dispatch", navMaintenance: "Maintenance",
  navPlanner: "Planner", otherLang: "中文", otherLangLabel: "Switch to Chinese",
  login: "Sign in", logout: "Sign out", loginTitle: "Staff sign-in", token: "Access token",
  loginHelp: "Paste the bearer token for your role (the demo prints one per role and saves them in aednet-data/demo-tokens.txt).",
  loginWrongRole: (have, want) => `This token is for the role “${have}”; this console needs ${want}.`,
  loginBad: "Unknown or revoked token.", loginAs: (n, r) => `${n} · ${r}`,
  live: "Live", offline: "Reconnecting…", connecting: "Connecting…", loading: "Loading…", close: "Close", cancel: "Cancel",
  save: "Save", error: m => `Error: ${m}`, min: s => s < 60 ? "< 1 min" : `${Math.round(s / 60)} min`,
  sec: s => `${Math.round(s)} s`, meters: m => m >= 1000 ? `${(m / 1000).toFixed(1)} km` : `${Math.round(m)} m`,
  walkMeters: (w, d) => `${w >= 1000 ? (w / 1000).toFixed(1) + " km" : Math.round(w) + " m"} on foot (${d >= 1000 ? (d / 1000).toFixed(1) + " km" : Math.round(d) + " m"} straight)`,
  walkStraight: "walks estimated as straight lines (no street network loaded)",
  walkOffNetwork: "walks estimated as straight lines (no walkable way nearby)",
  walkStraightOne: "the first walk is estimated as a straight line (no mapped way to it)",
  osm: "© OpenStreetMap contributors", mapLabel: "Map", none: "—",
  noWebgl: "The street map needs WebGL, which this browser does not offer: showing the plain map.",
  roles: { admin: "admin", dispatcher: "dispatcher", maintenance: "maintenance", planner: "planner", rescuer: "rescuer", device: "device", public: "public" },
  kinds: { scenic_aid_station: "Scenic-area aid station", boai_station: "Boai station (博爱驿站)", school_station: "School aid station",
    community_station: "Community aid station", bus_kit: "Bus first-aid kit", first_aid_post: "First-aid post" },
  status: { ready: "ready", degraded: "degraded", unknown: "not monitored", fault: "fault", offline: "offline", in_use: "in use",
    cabinet_open: "cabinet open", retired: "retired", pads_expiring: "pads expiring", battery_expiring: "battery expiring" },

  // public map
  tagline: "Find the nearest open, working AED — the golden four minutes",
  findTitle: "Nearest usable AED", locate: "Use my location", tapHint: "…or tap the map where the patient is.",
  lat: "Latitude", lon: "Longitude", search: "Find",
  findHelp: "Ranked by the walk to fetch it and bring it back: open now, working, accessible.",
  callFirst: "Call 120 first. Keep pressing hard and fast on the centre of the chest until the AED arrives.",
  searching: "Searching…", noneFound: "No usable AED within 10 km. Keep doing CPR and call 120.",
  badInput: (f, m) => `${f}: ${m}`, result: n => `${n} AEDs, fastest first`, best: "Fetch this one",
  walk: s => `${Math.max(1, Math.round(s / 60))} min walk`, roundTrip: s => `${Math.max(1, Math.round(s / 60))} min there and back`,
  open: "Open now", openClosesIn: m => `Open · closes in ${m} min`, unknownHours: "Hours unknown",
  closesBefore: "closes before you are back", indoor: "indoors",
  floor: f => f === 0 ? "ground floor" : f > 0 ? `floor ${f}` : `basement ${-f}`,
  locked: "locked cabinet (120 gives the code)", unverified: "not monitored", alternatives: "Alternatives",
  noGeo: "Location is not available; tap the map instead.", you: "Patient", stationsLegend: "Aid stations",
  aedsLegend: "AEDs", stats: (a, d) => `${a} AEDs in ${d} districts`, direction: d => `head ${d}`,
  dirs: ["north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west"],
  badLat: "Latitude must be a number between -90 and 90.", badLon: "Longitude must be a number between -180 and 180.",
  consoles: "Staff consoles", apiLink: "API (OpenAPI)",

  // dispatch
  dispatchTitle: "Dispatcher console", newIncident: "New incident", address: "Address", notes: "Notes",
  clickToPlace: "Type the address (or click the map, or type coordinates).", create: "Create and alert",
  addressSearch: "Address (search as you type)", addressHint: "street and number, place, POI…",
  geoKinds: { address: "address", poi: "POI", street: "street", place: "place" },
  geoNone: "No match: check the spelling, or click the map.", geoNoIndex: "No address index yet: import OSM data or an address register.",
  geoCount: n => `${n} matches: ↑/↓ to choose, Enter to place the patient`, geoPlaced: l => `Patient placed at ${l}`,
  cadIntake: (id, nature, src, acc) => `CAD call ${id} · ${nature} · position ${src}${acc ? ` ±${Math.round(acc)} m` : ""}`,
  positionSources: { aml: "from the caller's handset (AML)", cad: "from the CAD", geocoded: "from the address" },
  openIncidents: "Open incidents", noIncidents: "No open incidents.", incident: id => `Incident #${id}`,
  timeline: "Timeline", responders: "Responders", noResponders: "Nobody has accepted yet.", aedsAssigned: "AEDs assigned",
  aedsNearby: "AEDs within 1 km", standDown: "Cancel and stand everyone down", closeIncident: "Close with outcome",
  aedApplied: "AED applied", shockDelivered: "Shock delivered", handedToEms: "Handed to EMS",
  eta: (d, s) => `${d} away · ETA ${s}`, etaUnknown: "position expired", rescuer: id => `Rescuer #${id}`,
  fetching: id => `fetching AED #${id}`, cpr: "CPR", selectIncident: "Select an incident to see its timeline.",
  states: { created: "created", alerting: "alerting", en_route: "en route", on_scene: "on scene", closed: "closed", cancelled: "cancelled" },
  offerStates: { offered: "offered", accepted: "accepted", arrived: "arrived", declined: "declined", timed_out: "timed out", stood_down: "stood down" },
  ev: {
    created: e => `Incident created`,
    offered: e => `Offer ${e.offer} → rescuer #${e.rescuer_id} (${e.fetch_aed ? `fetch AED #${e.fetch_aed}` : "CPR"}, ETA ${Math.round(e.eta_s / 60)} min)`,
    accepted: e => `Rescuer #${e.rescuer_id} accepted offer ${e.offer}`,
    declined: e => `Rescuer #${e.rescuer_id} declined offer ${e.offer}`,
    timed_out: e => `Offer ${e.offer} to rescuer #${e.rescuer_id} timed out`,
    arrived: e => `Rescuer #${e.rescuer_id} arrived`,
    stood_down: e => `Rescuer #${e.rescuer_id} stood down`,
    code_revealed: e => `Cabinet code of AED #${e.aed_id} shown to rescuer #${e.rescuer_id}`,
    state: e => `State: ${en.states[e.from] || e.from} → ${en.states[e.to] || e.to}`,
    closed: e => `Closed: AED ${e.outcome.aed_applied ? "applied" : "not applied"}, shock ${e.outcome.shock_delivered ? "delivered" : "not delivered"}, ${e.outcome.handed_to_ems ? "handed to EMS" : "not handed to EMS"}`,
  },
  refresh: "Refresh", legendIncident: "patient", legendResponder: "responder", legendAssigned: "AED being fetched",
  legendAed: "AED (colour: readiness)", offersAll: n => `All offers (${n})`,
  channels: { ws: "app", web_push: "push", webhook: "SMS/vendor" },
  deliveryStates: { queued: "queued", sent: "sent", delivered: "on the phone", failed: "failed" },

  // maintenance
  maintTitle: "Maintenance board", filters: "Show", expiringDays: "Expiring within (days)", district: "District",
  allDistricts: "All districts", devices: n => `${n} devices need attention`, noDevices: "Nothing needs attention.",
  history: "Readiness history", workOrders: "Work orders", newOrder: "Open a work order", orderTitle: "Title",
  assign: "Assign", assignee: "Assignee", addNote: "Add note", note: "Note", resolution: "Resolution",
  closeOrder: "Close order", guardianCheck: "Guardian check", checkOk: "Check OK", checkFail: "Report a fault",
  since: t => `since ${t}`, padsExp: d => `pads ${d}`, batteryExp: d => `battery ${d}`, noOrders: "No work orders.",
  orderStatus: { open: "open", assigned: "assigned", closed: "closed" }, orderInput: "Assignee, note or resolution", source: s => `(${s})`,
  changed: (id, s) => `AED #${id} is now ${en.status[s] || s}`,

  // planner
  plannerTitle: "Planner", coverage: "Coverage", hourOfWeek: "Hour of week", mode: "Mode",
  modes: { round_trip: "fetch and return", one_way: "one way", radius: "radius" }, budget: "Budget (s)",
  covered: (p, s) => `${(s * 100).toFixed(1)} % of people (${p}) can get an AED within the budget`,
  weekly: "Coverage through the week", allHours: "all hours", onlyOpen: "AEDs open at that hour", always: "if every AED were 24/7",
  districtsTable: "Districts against targets", colDistrict: "District", colPop: "Population", colAeds: "AEDs (ready)",
  colPer10k: "per 10 000", colTarget: "target", colShortfall: "short", colRescuers: "rescuers / target", colNow: "covered now",
  colNight: "covered at night", placement: "Placement", addN: "New AEDs", suggest247: "Suggest 24/7 conversions",
  runPlan: "Run placement", planResult: (b, a) => `Coverage ${(b * 100).toFixed(1)} % → ${(a * 100).toFixed(1)} %`,
  targetShare: "Target share of people (%)", runTarget: "What it takes",
  targetResult: (n, share, ok) => `${n} new AEDs → ${(share * 100).toFixed(1)} % of people within the budget${ok ? "" : " (target not reached within the limit)"}`,
  rescuersNeeded: (onDuty, reg, per1000) => `Rescuers: ${Math.round(onDuty)} on duty at any time, about ${Math.round(reg)} registered (${per1000.toFixed(1)} per 1 000 people)`,
  site: (i, g) => `Site ${i}: +${g} people`, legend: "Time to AED", uncovered: "out of reach", days: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
  hourLabel: h => `${en.days[Math.floor(h / 24)]} ${String(h % 24).padStart(2, "0")}:00`, now: "Now", conversions: "Convert to 24/7",
  relocations: "Relocations", siteLegend: "proposed site", weeklyMax: p => `Top of the chart: ${p}`, gap: (p, s) => `${p} people · ${s}`, conversion: (id, n, g, ng) => `AED #${id} ${n}: +${g} people now, +${ng} at night`,
  relocation: (id, to, g) => `Move AED #${id} to ${to}: +${g} people`, gaps: "Largest gaps", planning: "Planning…",
};

const zh = {
  navRescuers: "救护员", rescuersTitle: "救护员管理", more: "更多",
  rescuersHelp: "持证志愿救护员名单。“登记手机”为其签发救护员令牌并显示为二维码：救护员用手机相机扫描后，救护员应用即以其身份登录。",
  certRange: (a, b, ok) => `证书有效期 ${a} 至 ${b}${ok ? "" : "（今天无效）"}`, onDutyNow: "值班中", offDutyNow: "未值班",
  enrolPhone: "登记手机（二维码）", noRescuers: "暂无救护员。", enrolTitle: n => `登记 ${n} 的手机`,
  enrolSecret: "此二维码是密钥：任何扫描者都会以该救护员身份登录。它只显示这一次——请只让救护员本人扫描，扫描后关闭此窗口。",
  enrolHow: "在救护员的手机上：打开相机对准二维码并打开链接，救护员应用即已登录（可在浏览器菜单中“添加到主屏幕”）。",
  enrolShowLink: "改为显示链接", enrolRevoke: id => `手机遗失时：撤销令牌 #${id}（DELETE /api/v1/tokens/${id}）后重新登记。`,
  enrolDone: "完成——隐藏二维码", enrolQrAlt: n => `${n} 的登记二维码`,
  brand: "aednet", navPublic: "AED 地图", navDispatch: "调度台", navMaintenance: "维护看板",
  navPlanner: "规划台", otherLang: "English", otherLangLabel: "切换到英文",
  login: "登录", logout: "退出", loginTitle: "工作人员登录", token: "访问令牌",
  loginHelp: "粘贴您角色的访问令牌（演示模式为每个角色生成一个，保存在 aednet-data/demo-tokens.txt）。",
  loginWrongRole: (have, want) => `此令牌的角色是“${have}”，本控制台需要：${want}。`,
  loginBad: "令牌无效或已撤销。", loginAs: (n, r) => `${n} · ${r}`,
  live: "实时", offline: "正在重连…", connecting: "正在连接…", loading: "正在加载…", close: "关闭", cancel: "取消",
  save: "保存", error: m => `错误：${m}`, min: s => s < 60 ? "不到 1 分钟" : `${Math.round(s / 60)} 分钟`,
  sec: s => `${Math.round(s)} 秒`, meters: m => m >= 1000 ? `${(m / 1000).toFixed(1)} 公里` : `${Math.round(m)} 米`,
  walkMeters: (w, d) => `步行 ${w >= 1000 ? (w / 1000).toFixed(1) + " 公里" : Math.round(w) + " 米"}（直线 ${d >= 1000 ? (d / 1000).toFixed(1) + " 公里" : Math.round(d) + " 米"}）`,
  walkStraight: "步行时间按直线估算（未加载道路网络）",
  walkOffNetwork: "步行时间按直线估算（附近没有可步行的道路）",
  walkStraightOne: "第一个结果的步行时间按直线估算（没有通往它的已知道路）",
  osm: "© OpenStreetMap contributors", mapLabel: "地图", none: "—",
  noWebgl: "此浏览器不支持 WebGL，无法显示街道底图：现为简易地图。",
  roles: { admin: "管理员", dispatcher: "调度员", maintenance: "维护人员", planner: "规划人员", rescuer: "救护员", device: "设备", public: "公众" },
  kinds: { scenic_aid_station: "景区救护站", boai_station: "博爱驿站", school_station: "校园救护站",
    community_station: "社区救护站", bus_kit: "公交车载急救包", first_aid_post: "急救点" },
  status: { ready: "就绪", degraded: "性能下降", unknown: "未联网监测", fault: "故障", offline: "离线", in_use: "使用中",
    cabinet_open: "柜门打开", retired: "已退役", pads_expiring: "电极片将过期", battery_expiring: "电池将过期" },

  tagline: "查找最近的开放且可用的 AED —— 黄金四分钟",
  findTitle: "最近的可用 AED", locate: "使用我的位置", tapHint: "……或在地图上点击患者所在位置。",
  lat: "纬度", lon: "经度", search: "查找",
  findHelp: "按“取回并送达”的往返步行时间排序：现在开放、可用、可进入。",
  callFirst: "先拨打 120。AED 到达前，用力、快速地持续按压胸部中央。",
  searching: "正在查找…", noneFound: "10 公里内没有可用的 AED。请继续心肺复苏并拨打 120。",
  badInput: (f, m) => `${f}：${m}`, result: n => `找到 ${n} 台，最快的在前`, best: "去取这一台",
  walk: s => `步行约 ${Math.max(1, Math.round(s / 60))} 分钟`, roundTrip: s => `往返约 ${Math.max(1, Math.round(s / 60))} 分钟`,
  open: "开放中", openClosesIn: m => `开放中 · ${m} 分钟后关闭`, unknownHours: "开放时间未知",
  closesBefore: "返回前会关闭", indoor: "室内",
  floor: f => f >= 0 ? `${f + 1} 楼` : `地下 ${-f} 层`,
  locked: "柜门上锁（120 提供密码）", unverified: "未联网监测", alternatives: "备选",
  noGeo: "无法获取位置，请在地图上点击。", you: "患者", stationsLegend: "救护站",
  aedsLegend: "AED", stats: (a, d) => `共 ${a} 台 AED，覆盖 ${d} 个行政区`, direction: d => `向${d}走`,
  dirs: ["北", "东北", "东", "东南", "南", "西南", "西", "西北"],
  badLat: "纬度必须是 -90 到 90 之间的数字。", badLon: "经度必须是 -180 到 180 之间的数字。",
  consoles: "工作人员控制台", apiLink: "接口文档（OpenAPI）",

  dispatchTitle: "调度台", newIncident: "新建事件", address: "地址", notes: "备注",
  clickToPlace: "输入地址（或在地图上点击，或输入坐标）。", create: "创建并呼叫",
  addressSearch: "地址（输入即搜索）", addressHint: "路名门牌号、地名、单位名称…",
  geoKinds: { address: "门牌", poi: "单位/地点", street: "道路", place: "地名" },
  geoNone: "没有匹配结果：请检查拼写，或在地图上点击。", geoNoIndex: "尚无地址索引：请导入 OSM 数据或门牌地址库。",
  geoCount: n => `${n} 个结果：↑/↓ 选择，回车放置患者位置`, geoPlaced: l => `患者位置已放在 ${l}`,
  cadIntake: (id, nature, src, acc) => `CAD 来电 ${id} · ${nature} · 位置${src}${acc ? ` ±${Math.round(acc)} 米` : ""}`,
  positionSources: { aml: "来自来电手机（AML）", cad: "来自 CAD", geocoded: "由地址解析" },
  openIncidents: "进行中的事件", noIncidents: "暂无进行中的事件。", incident: id => `事件 #${id}`,
  timeline: "时间线", responders: "响应人员", noResponders: "尚无人接受。", aedsAssigned: "已指派的 AED",
  aedsNearby: "1 公里内的 AED", standDown: "取消事件并通知所有人撤回", closeIncident: "结案并记录结果",
  aedApplied: "已使用 AED", shockDelivered: "已电击", handedToEms: "已移交 120",
  eta: (d, s) => `距离 ${d} · 预计 ${s} 到达`, etaUnknown: "位置已过期", rescuer: id => `救护员 #${id}`,
  fetching: id => `取 AED #${id}`, cpr: "心肺复苏", selectIncident: "选择一个事件查看时间线。",
  states: { created: "已创建", alerting: "呼叫中", en_route: "赶往中", on_scene: "已到达", closed: "已结案", cancelled: "已取消" },
  offerStates: { offered: "已呼叫", accepted: "已接受", arrived: "已到达", declined: "已拒绝", timed_out: "超时", stood_down: "已撤回" },
  ev: {
    created: e => `事件已创建`,
    offered: e => `呼叫 ${e.offer} → 救护员 #${e.rescuer_id}（${e.fetch_aed ? `取 AED #${e.fetch_aed}` : "心肺复苏"}，预计 ${Math.round(e.eta_s / 60)} 分钟）`,
    accepted: e => `救护员 #${e.rescuer_id} 接受了呼叫 ${e.offer}`,
    declined: e => `救护员 #${e.rescuer_id} 拒绝了呼叫 ${e.offer}`,
    timed_out: e => `对救护员 #${e.rescuer_id} 的呼叫 ${e.offer} 超时`,
    arrived: e => `救护员 #${e.rescuer_id} 已到达`,
    stood_down: e => `救护员 #${e.rescuer_id} 已撤回`,
    code_revealed: e => `AED #${e.aed_id} 的柜门密码已发给救护员 #${e.rescuer_id}`,
    state: e => `状态：${zh.states[e.from] || e.from} → ${zh.states[e.to] || e.to}`,
    closed: e => `已结案：${e.outcome.aed_applied ? "已使用 AED" : "未使用 AED"}，${e.outcome.shock_delivered ? "已电击" : "未电击"}，${e.outcome.handed_to_ems ? "已移交 120" : "未移交 120"}`,
  },
  refresh: "刷新", legendIncident: "患者", legendResponder: "响应人员", legendAssigned: "正在取的 AED",
  legendAed: "AED（颜色表示状态）", offersAll: n => `全部呼叫（${n}）`,
  channels: { ws: "应用", web_push: "推送", webhook: "短信/厂商" },
  deliveryStates: { queued: "排队", sent: "已发送", delivered: "已送达手机", failed: "失败" },

  maintTitle: "维护看板", filters: "显示", expiringDays: "到期天数内", district: "行政区",
  allDistricts: "全部行政区", devices: n => `${n} 台设备需要处理`, noDevices: "没有需要处理的设备。",
  history: "状态历史", workOrders: "工单", newOrder: "新建工单", orderTitle: "标题",
  assign: "指派", assignee: "负责人", addNote: "添加备注", note: "备注", resolution: "处理结果",
  closeOrder: "关闭工单", guardianCheck: "守护人巡检", checkOk: "巡检正常", checkFail: "报告故障",
  since: t => `自 ${t}`, padsExp: d => `电极片 ${d}`, batteryExp: d => `电池 ${d}`, noOrders: "暂无工单。",
  orderStatus: { open: "待处理", assigned: "已指派", closed: "已关闭" }, orderInput: "负责人、备注或处理结果", source: s => `（${s}）`,
  changed: (id, s) => `AED #${id} 现在${zh.status[s] || s}`,

  plannerTitle: "规划台", coverage: "覆盖", hourOfWeek: "一周中的时刻", mode: "方式",
  modes: { round_trip: "取回并送达", one_way: "单程", radius: "半径" }, budget: "时间预算（秒）",
  covered: (p, s) => `${(s * 100).toFixed(1)}% 的人口（${p} 人）可在预算时间内获得 AED`,
  weekly: "一周覆盖率", allHours: "全部时刻", onlyOpen: "该时刻开放的 AED", always: "若全部 24 小时开放",
  districtsTable: "各区达标情况", colDistrict: "行政区", colPop: "人口", colAeds: "AED（就绪）",
  colPer10k: "每万人", colTarget: "目标", colShortfall: "缺口", colRescuers: "救护员 / 目标", colNow: "当前覆盖",
  colNight: "夜间覆盖", placement: "选址", addN: "新增 AED 数", suggest247: "建议改为 24 小时开放",
  runPlan: "运行选址", planResult: (b, a) => `覆盖率 ${(b * 100).toFixed(1)}% → ${(a * 100).toFixed(1)}%`,
  targetShare: "目标覆盖人口比例（%）", runTarget: "测算所需",
  targetResult: (n, share, ok) => `新增 ${n} 台 AED → ${(share * 100).toFixed(1)}% 的人口在时限内可获得${ok ? "" : "（在上限内未达到目标）"}`,
  rescuersNeeded: (onDuty, reg, per1000) => `救护员：任一时刻需 ${Math.round(onDuty)} 人在岗，约 ${Math.round(reg)} 人注册（每千人 ${per1000.toFixed(1)} 人）`,
  site: (i, g) => `选址 ${i}：+${g} 人`, legend: "到达 AED 的时间", uncovered: "无法到达", days: ["周一", "周二", "周三", "周四", "周五", "周六", "周日"],
  hourLabel: h => `${zh.days[Math.floor(h / 24)]} ${String(h % 24).padStart(2, "0")}:00`, now: "现在", conversions: "改为 24 小时开放",
  relocations: "迁移建议", siteLegend: "建议选址", weeklyMax: p => `图表顶端：${p}`, gap: (p, s) => `${p} 人 · ${s}`, conversion: (id, n, g, ng) => `AED #${id} ${n}：当前 +${g} 人，夜间 +${ng} 人`,
  relocation: (id, to, g) => `将 AED #${id} 迁至 ${to}：+${g} 人`, gaps: "最大缺口", planning: "正在计算…",
};

export const STRINGS = { en, zh };

// Also imported by the e2e runner under Node (no localStorage there) to check the tables.
const inBrowser = typeof localStorage !== "undefined";
const stored = inBrowser ? localStorage.getItem("aednet.lang") : null;
let current = stored === "en" || stored === "zh" ? stored
  : ((inBrowser && navigator.language) || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
const listeners = [];

export function lang() { return current; }

/** The string (or function result) for `key`; a missing key shows the key, which the tests catch. */
export function t(key, ...args) {
  const v = STRINGS[current][key];
  if (v === undefined) return key;
  return typeof v === "function" ? v(...args) : v;
}

/** A nested table entry, e.g. tt("status", "offline"). */
export function tt(table, key) {
  return (STRINGS[current][table] || {})[key] ?? key;
}

export function applyI18n(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) {
    const v = STRINGS[current][el.dataset.i18n];
    if (typeof v === "string") el.textContent = v;
  }
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      const v = STRINGS[current][key];
      if (typeof v === "string") el.setAttribute(attr, v);
    }
  }
}

export function setLang(l) {
  current = l;
  localStorage.setItem("aednet.lang", l);
  applyI18n();
  for (const f of listeners) f(l);
}

/** Calls `f` after every language switch, to re-render dynamic text. */
export function onLang(f) { listeners.push(f); }
