//! The demo city: 稠江街道, 义乌市 (seed 002), with a year of cases.
//!
//! Everything comes from fixed seeds, so the same `now` always gives the same city. Cases are
//! not written as invented final rows: each one is played through the real domain
//! (`new_case`, `decide`, `feedback`, `sweep`) on a simulated clock, so its timeline,
//! deadlines and rollups are exactly what the live server would have produced.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use gridloop_domain::DomainError;
use gridloop_domain::calendar::Calendar;
use gridloop_domain::case::{
    self, Action, Case, Channel, Ctx, Decision, Difficulty, HandlingMode, Location, NewCase,
    Rating, Reporter, Resolved, Status,
};
use gridloop_domain::measures::MeasureDelta;
use gridloop_domain::org::{Level, Org};
use gridloop_domain::policy::Policy;
use gridloop_domain::role::{Actor, Role, UserActor};
use gridloop_domain::timeline::NewEvent;
use gridloop_store::{ImportCase, NewUser, Store, StoreError, TowerGroup};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

pub const CITY: &str = "330782";
pub const STREET: &str = "330782003";

/// The logins printed by `gridloop demo` (password `demo` for each):
/// `(username, role, org code, display name)`. Every other grid, community and department
/// also gets a worker (`grid3`…, `community2`…, `dept2`…), with the same password.
pub const DEMO_USERS: &[(&str, &str, &str, &str)] = &[
    ("admin", "admin", "330782", "系统管理员"),
    ("leader", "leader", "330782003", "王志强"),
    ("dispatcher", "dispatcher", "330782003", "陈晓燕"),
    ("grid1", "handler", "33078200300101", "金伟"),
    ("grid2", "handler", "33078200300102", "楼红英"),
    ("community1", "handler", "330782003001", "骆建平"),
    ("dept1", "handler", "330782003D01", "吴海涛"),
    ("inspector", "inspector", "330782003D03", "傅明"),
    ("volunteer1", "volunteer", "330782003001", "何秀兰"),
];

/// What `seed` wrote; all zeros when the demo city was already there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub orgs: usize,
    pub grids: usize,
    pub units: usize,
    pub departments: usize,
    pub tower_groups: usize,
    pub users: usize,
    pub cases: usize,
}

const CASES: usize = 2400;
const IMPORT_BATCH: usize = 500;
/// Separate seeds, so that changing how cases are played does not redraw the map.
const MAP_SEED: u64 = 330_782_003;
const CASE_SEED: u64 = 20_200_513;

/// Creates the demo city unless it is already there (`demo` reuses its data directory).
pub async fn seed(
    store: &dyn Store,
    cal: &Calendar,
    policy: &Policy,
    now: DateTime<Utc>,
    password_hash: &str,
) -> Result<Summary, StoreError> {
    // Zeros tell the caller that nothing was seeded this time.
    if store.org(STREET).await?.is_some() {
        return Ok(Summary::default());
    }
    let Generated { world, cases } = generate(cal, policy, now)?;
    let mut summary = world.summary();
    summary.cases = cases.len();

    store.put_orgs(world.orgs.clone()).await?;
    store.put_setting("intake_org", STREET).await?;
    let created_at = now - Duration::days(400);
    for u in &world.users {
        store
            .create_user(NewUser {
                username: u.username.clone(),
                display_name: u.display_name.clone(),
                role: u.role,
                org: u.org.clone(),
                password_hash: password_hash.to_string(),
                created_at,
            })
            .await?;
    }
    store.put_tower_groups(world.tower_groups.clone()).await?;
    let mut rest = cases.into_iter();
    loop {
        let batch: Vec<ImportCase> = rest.by_ref().take(IMPORT_BATCH).collect();
        if batch.is_empty() {
            break;
        }
        store.import_cases(batch).await?;
    }
    Ok(summary)
}

// --- the map ---------------------------------------------------------------------------

pub(crate) struct CommunitySpec {
    pub(crate) name: &'static str,
    /// The stem that names its compounds (锦都花园, 喻宅村3巷…).
    pub(crate) stem: &'static str,
    pub(crate) village: bool,
    /// Base chance that a case here closes late: communities differ on purpose, so that the
    /// monthly red/yellow flags mean something.
    pub(crate) late: f64,
    /// Relative case volume (兴业 has 1.8万 residents, the villages far fewer).
    pub(crate) weight: f64,
}

const fn spec(name: &'static str, stem: &'static str, late: f64, weight: f64) -> CommunitySpec {
    CommunitySpec {
        name,
        stem,
        village: false,
        late,
        weight,
    }
}

const fn village(name: &'static str, stem: &'static str, late: f64, weight: f64) -> CommunitySpec {
    CommunitySpec {
        name,
        stem,
        village: true,
        late,
        weight,
    }
}

pub(crate) const COMMUNITIES: [CommunitySpec; 15] = [
    spec("锦都社区", "锦都", 0.06, 1.2),
    spec("凤凰社区", "凤凰", 0.08, 1.0),
    spec("兴业社区", "兴业", 0.03, 1.5),
    spec("松门里社区", "松门里", 0.10, 0.9),
    spec("昌德社区", "昌德", 0.09, 0.9),
    spec("高新社区", "高新", 0.05, 1.0),
    spec("永祥社区", "永祥", 0.13, 0.8),
    spec("杨村社区", "杨村", 0.21, 1.1),
    spec("黎明社区", "黎明", 0.03, 1.0),
    spec("香溪社区", "香溪", 0.07, 0.9),
    spec("富港社区", "富港", 0.11, 1.0),
    village("喻宅村", "喻宅", 0.16, 0.5),
    village("下何宅村", "下何宅", 0.18, 0.5),
    village("梨头山村", "梨头山", 0.14, 0.4),
    village("何宅村", "何宅", 0.23, 0.4),
];

/// `(code suffix, name)`, under the street.
pub(crate) const DEPARTMENTS: [(&str, &str); 5] = [
    ("D01", "城管办"),
    ("D02", "建设办"),
    ("D03", "综合行政执法队"),
    ("D04", "应急管理办"),
    ("D05", "平安办"),
];

/// The street is a lattice of `COLS` × `ROWS` cells (about 440 m square), one grid per cell,
/// centred on 29.28N 120.05E; each community is a block two cells tall, and each lattice row of blocks
/// is the widths below (summing to `COLS`), so 4 or 6 grids per community.
const COLS: usize = 12;
const ROWS: usize = 6;
const BLOCK_WIDTHS: [[usize; 5]; 3] = [[3, 2, 2, 3, 2], [2, 3, 2, 2, 3], [2, 2, 3, 3, 2]];
const WEST: f64 = 120.023;
const NORTH: f64 = 29.292;
const DX: f64 = 0.0045;
const DY: f64 = 0.004;
/// Interior lattice points move by at most this share of a cell, which keeps every cell a
/// convex quadrilateral while the map no longer looks like graph paper.
const JITTER: f64 = 0.18;

pub(crate) type Point = (f64, f64);

pub(crate) fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The lattice's vertices as `[row][col]` (lng, lat), row 0 in the north. Shared vertices
/// are one value, so neighbouring cells share their edges exactly: no gaps, no overlaps.
fn lattice(rng: &mut StdRng) -> Vec<Vec<Point>> {
    (0..=ROWS)
        .map(|j| {
            (0..=COLS)
                .map(|i| {
                    let interior = i > 0 && i < COLS && j > 0 && j < ROWS;
                    let (jx, jy) = if interior {
                        (
                            rng.random_range(-JITTER..JITTER) * DX,
                            rng.random_range(-JITTER..JITTER) * DY,
                        )
                    } else {
                        (0.0, 0.0)
                    };
                    (
                        round6(WEST + i as f64 * DX + jx),
                        round6(NORTH - j as f64 * DY + jy),
                    )
                })
                .collect()
        })
        .collect()
}

pub(crate) fn polygon(ring: &[Point]) -> Value {
    let mut coords: Vec<Value> = ring.iter().map(|(x, y)| json!([x, y])).collect();
    if let Some(first) = coords.first().cloned() {
        coords.push(first);
    }
    json!({"type": "Polygon", "coordinates": [coords]})
}

/// The outline of the block of cells `x0..x1` × `y0..y1`, counter-clockwise from its
/// south-west corner, through every lattice vertex on the way (the exact union of its grids).
fn block_ring(v: &[Vec<Point>], x0: usize, x1: usize, y0: usize, y1: usize) -> Vec<Point> {
    let mut ring = Vec::new();
    ring.extend((x0..=x1).map(|i| v[y1][i]));
    ring.extend((y0..y1).rev().map(|j| v[j][x1]));
    ring.extend((x0..x1).rev().map(|i| v[y0][i]));
    ring.extend((y0 + 1..y1).map(|j| v[j][x0]));
    ring
}

pub(crate) struct Grid {
    pub(crate) org: Org,
    /// South-west, south-east, north-east, north-west.
    pub(crate) quad: [Point; 4],
    pub(crate) units: Vec<String>,
    /// The tier-2 tower group's commander (name, phone), who relays 塔群求助.
    pub(crate) commander: (String, String),
}

impl Grid {
    /// A point well inside the cell: bilinear interpolation stays inside a convex quad.
    fn random_point(&self, rng: &mut StdRng) -> Location {
        let u = rng.random_range(0.08..0.92);
        let w = rng.random_range(0.08..0.92);
        let [sw, se, ne, nw] = self.quad;
        let mix = |f: fn(Point) -> f64| {
            (1.0 - u) * (1.0 - w) * f(sw)
                + u * (1.0 - w) * f(se)
                + u * w * f(ne)
                + (1.0 - u) * w * f(nw)
        };
        Location {
            lng: round6(mix(|p| p.0)),
            lat: round6(mix(|p| p.1)),
        }
    }
}

pub(crate) struct Community {
    pub(crate) org: Org,
    pub(crate) spec: &'static CommunitySpec,
    pub(crate) grids: Vec<Grid>,
    /// The volunteer who reports with photos here.
    pub(crate) volunteer: String,
}

pub(crate) struct DemoUser {
    pub(crate) username: String,
    pub(crate) display_name: String,
    pub(crate) role: Role,
    pub(crate) org: String,
}

/// One street and its people: the demo city is one, a benchmark province a thousand.
pub(crate) struct World {
    /// Every org, parents first.
    pub(crate) orgs: Vec<Org>,
    pub(crate) street: Org,
    pub(crate) communities: Vec<Community>,
    /// In the order of [`DEPARTMENTS`].
    pub(crate) departments: Vec<Org>,
    pub(crate) tower_groups: Vec<TowerGroup>,
    pub(crate) users: Vec<DemoUser>,
    pub(crate) actors: HashMap<String, Actor>,
    /// The handler who claims cases assigned to an org (grid, community, department).
    pub(crate) handler_of: HashMap<String, String>,
    /// Every org a case can reach, the street's ancestors included.
    pub(crate) levels: HashMap<String, Level>,
    /// Usernames of the street's centre (四个平台), its leader and its inspector.
    pub(crate) dispatcher: String,
    pub(crate) leader: String,
    pub(crate) inspector: String,
}

impl World {
    fn summary(&self) -> Summary {
        let count = |l: Level| self.orgs.iter().filter(|o| o.level == l).count();
        Summary {
            orgs: self.orgs.len(),
            grids: count(Level::Grid),
            units: count(Level::Unit),
            departments: count(Level::Department),
            tower_groups: self.tower_groups.len(),
            users: self.users.len(),
            cases: 0,
        }
    }

    pub(crate) fn actor(&self, username: &str) -> Result<&Actor, DomainError> {
        self.actors
            .get(username)
            .ok_or_else(|| DomainError::invalid("actor", format!("no demo user {username}")))
    }

    fn handler(&self, org: &str) -> Result<&Actor, DomainError> {
        let name = self
            .handler_of
            .get(org)
            .ok_or_else(|| DomainError::invalid("org", format!("no handler for {org}")))?;
        self.actor(name)
    }
}

pub(crate) fn child(
    parent: &Org,
    code: String,
    name: String,
    level: Level,
) -> Result<Org, DomainError> {
    Ok(Org {
        path: Org::child_path(Some(parent), &code, level)?,
        parent: Some(parent.code.clone()),
        code,
        name,
        level,
        boundary: None,
    })
}

fn build_world() -> Result<World, DomainError> {
    let mut rng = StdRng::seed_from_u64(MAP_SEED);
    // Staff names draw from their own stream, so adding a user renames no one else.
    let mut people = StdRng::seed_from_u64(MAP_SEED + 1);
    let v = lattice(&mut rng);
    let city = Org {
        code: CITY.into(),
        name: "义乌市".into(),
        level: Level::City,
        parent: None,
        path: Org::child_path(None, CITY, Level::City)?,
        boundary: None,
    };
    let mut street = child(&city, STREET.into(), "稠江街道".into(), Level::Street)?;
    street.boundary = Some(polygon(&block_ring(&v, 0, COLS, 0, ROWS)));
    let mut orgs = vec![city.clone(), street.clone()];
    let mut users: Vec<DemoUser> = DEMO_USERS
        .iter()
        .map(|(u, r, o, n)| DemoUser {
            username: (*u).into(),
            display_name: (*n).into(),
            role: Role::parse(r).unwrap_or(Role::Handler),
            org: (*o).into(),
        })
        .collect();
    let mut add_user = |users: &mut Vec<DemoUser>, username: String, role: Role, org: &str| {
        if !users.iter().any(|u| u.username == username) {
            let display_name = person(&mut people);
            users.push(DemoUser {
                username,
                display_name,
                role,
                org: org.into(),
            });
        }
    };

    let mut departments = Vec::new();
    for (i, (suffix, name)) in DEPARTMENTS.iter().enumerate() {
        let d = child(
            &street,
            format!("{STREET}{suffix}"),
            (*name).into(),
            Level::Department,
        )?;
        add_user(&mut users, format!("dept{}", i + 1), Role::Handler, &d.code);
        departments.push(d);
    }
    orgs.extend(departments.iter().cloned());

    let mut communities = Vec::new();
    let mut tower_groups = Vec::new();
    let mut grid_no = 0;
    let blocks = BLOCK_WIDTHS.iter().enumerate().flat_map(|(row, widths)| {
        widths.iter().scan(0, move |x, w| {
            let b = (*x, *x + w, row * 2, row * 2 + 2);
            *x += w;
            Some(b)
        })
    });
    for (ci, ((x0, x1, y0, y1), spec)) in blocks.zip(COMMUNITIES.iter()).enumerate() {
        let mut c = child(
            &street,
            format!("{STREET}{:03}", ci + 1),
            spec.name.into(),
            Level::Community,
        )?;
        c.boundary = Some(polygon(&block_ring(&v, x0, x1, y0, y1)));
        orgs.push(c.clone());
        add_user(
            &mut users,
            format!("community{}", ci + 1),
            Role::Handler,
            &c.code,
        );
        add_user(
            &mut users,
            format!("volunteer{}", ci + 1),
            Role::Volunteer,
            &c.code,
        );
        let t1 = format!("T1-{}", c.code);
        tower_groups.push(TowerGroup {
            code: t1.clone(),
            name: format!("{}一级塔群", spec.name),
            tier: 1,
            parent: None,
            org: c.code.clone(),
            org_path: c.path.clone(),
            commander_name: person(&mut rng),
            commander_phone: Some(phone(&mut rng)),
            members: rng.random_range(300..900),
        });

        let mut grids = Vec::new();
        let mut compounds = COMPOUND_SUFFIXES.iter().cycle();
        for j in y0..y1 {
            for i in x0..x1 {
                let n = grids.len() + 1;
                grid_no += 1;
                let mut g = child(
                    &c,
                    format!("{}{n:02}", c.code),
                    format!("{}第{n}网格", spec.name),
                    Level::Grid,
                )?;
                let quad = [v[j + 1][i], v[j + 1][i + 1], v[j][i + 1], v[j][i]];
                g.boundary = Some(polygon(&quad));
                orgs.push(g.clone());
                add_user(&mut users, format!("grid{grid_no}"), Role::Handler, &g.code);
                let commander = (person(&mut rng), phone(&mut rng));
                let t2 = format!("T2-{}", g.code);
                tower_groups.push(TowerGroup {
                    code: t2.clone(),
                    name: format!("{}二级塔群", g.name),
                    tier: 2,
                    parent: Some(t1.clone()),
                    org: g.code.clone(),
                    org_path: g.path.clone(),
                    commander_name: commander.0.clone(),
                    commander_phone: Some(commander.1.clone()),
                    members: rng.random_range(30..120),
                });

                let compound = format!("{}{}", spec.stem, compounds.next().unwrap_or(&"小区"));
                let names = unit_names(&mut rng, spec, n, &compound);
                for (k, name) in names.iter().enumerate() {
                    let u = child(
                        &g,
                        format!("{}{:03}", g.code, k + 1),
                        name.clone(),
                        Level::Unit,
                    )?;
                    // Not every building has formed its own tier-3 group yet.
                    if rng.random_bool(0.7) {
                        tower_groups.push(TowerGroup {
                            code: format!("T3-{}", u.code),
                            name: format!("{name}三级塔群"),
                            tier: 3,
                            parent: Some(t2.clone()),
                            org: u.code.clone(),
                            org_path: u.path.clone(),
                            commander_name: person(&mut rng),
                            commander_phone: Some(phone(&mut rng)),
                            members: rng.random_range(6..40),
                        });
                    }
                    orgs.push(u);
                }
                grids.push(Grid {
                    org: g,
                    quad,
                    units: names,
                    commander,
                });
            }
        }
        communities.push(Community {
            org: c,
            spec,
            grids,
            volunteer: format!("volunteer{}", ci + 1),
        });
    }

    let paths: HashMap<&str, &str> = orgs
        .iter()
        .map(|o| (o.code.as_str(), o.path.as_str()))
        .collect();
    let mut actors = HashMap::new();
    let mut handler_of = HashMap::new();
    for u in &users {
        let path = paths
            .get(u.org.as_str())
            .ok_or_else(|| DomainError::invalid("org", format!("unknown org {}", u.org)))?;
        actors.insert(
            u.username.clone(),
            Actor::User(UserActor {
                username: u.username.clone(),
                role: u.role,
                org: gridloop_domain::org::OrgRef::new(&u.org, *path),
            }),
        );
        if u.role == Role::Handler {
            handler_of
                .entry(u.org.clone())
                .or_insert(u.username.clone());
        }
    }
    let levels = orgs.iter().map(|o| (o.code.clone(), o.level)).collect();
    Ok(World {
        orgs,
        street,
        communities,
        departments,
        tower_groups,
        users,
        actors,
        handler_of,
        levels,
        dispatcher: "dispatcher".into(),
        leader: "leader".into(),
        inspector: "inspector".into(),
    })
}

pub(crate) const COMPOUND_SUFFIXES: [&str; 6] = ["花园", "新村", "小区", "家园", "公寓", "苑"];

/// Three or four units in the `grid`-th grid of a community: in town its compound and some
/// of the compound's buildings, in a village its villagers' group and some of its lanes.
/// Names are unique within the community (each grid has its own compound or lane numbers).
pub(crate) fn unit_names(
    rng: &mut StdRng,
    spec: &CommunitySpec,
    grid: usize,
    compound: &str,
) -> Vec<String> {
    let n = rng.random_range(3..=4);
    // Lanes are numbered through the village, eight to a grid; buildings per compound.
    let pool = if spec.village { 8 } else { 24 };
    let mut numbers: Vec<usize> = (1..=pool).collect();
    // A partial shuffle picks distinct building/lane numbers.
    for k in 0..n - 1 {
        let j = rng.random_range(k..numbers.len());
        numbers.swap(k, j);
    }
    let mut picked = numbers[..n - 1].to_vec();
    picked.sort_unstable();
    if spec.village {
        let mut out = vec![format!("{}村第{grid}村民小组", spec.stem)];
        let lane = |k: &usize| format!("{}村{}巷", spec.stem, (grid - 1) * 8 + k);
        out.extend(picked.iter().map(lane));
        out
    } else {
        let mut out = vec![compound.to_string()];
        out.extend(picked.iter().map(|k| format!("{compound}{k}幢")));
        out
    }
}

// --- people ----------------------------------------------------------------------------

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "吴", "周", "徐", "朱", "何", "金", "楼", "骆", "傅",
    "龚", "虞", "鲍", "方", "贾", "丁", "叶", "冯", "施", "郑", "蒋", "沈", "韩", "赵", "孙", "马",
];
const GIVEN: &[&str] = &[
    "建", "国", "伟", "芳", "丽", "强", "军", "敏", "静", "华", "明", "红", "英", "平", "杰", "燕",
    "勇", "海", "涛", "波", "霞", "春", "秀", "兰", "志", "文", "亮", "晓", "斌", "琴", "飞", "鹏",
];

pub(crate) fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

pub(crate) fn person(rng: &mut StdRng) -> String {
    let mut s = pick(rng, SURNAMES).to_string();
    s.push_str(pick::<&str>(rng, GIVEN));
    if rng.random_bool(0.7) {
        s.push_str(pick::<&str>(rng, GIVEN));
    }
    s
}

pub(crate) fn phone(rng: &mut StdRng) -> String {
    const PREFIXES: &[&str] = &[
        "138", "139", "135", "136", "137", "150", "151", "158", "159", "187", "188", "133", "153",
        "180", "189", "177", "186", "155",
    ];
    format!(
        "{}{:08}",
        pick(rng, PREFIXES),
        rng.random_range(0..100_000_000u32)
    )
}

const ROADS: &[&str] = &[
    "杨村路",
    "贝村路",
    "宗泽路",
    "稠州西路",
    "江滨西路",
    "香溪路",
    "四海大道",
    "春晗路",
    "官塘路",
    "江湾路",
    "新科路",
    "西城路",
    "雪峰西路",
    "稠江路",
    "前洪路",
];

fn company(rng: &mut StdRng) -> String {
    const A: &[&str] = &[
        "华联", "恒远", "金茂", "宏达", "正元", "新越", "佳美", "立信", "顺宇", "博通",
    ];
    const B: &[&str] = &[
        "拉链",
        "饰品",
        "针织",
        "包装",
        "物流",
        "五金",
        "电子商务",
        "印刷",
        "袜业",
        "工艺品",
    ];
    format!("义乌市{}{}有限公司", pick(rng, A), pick(rng, B))
}

// --- what residents report -------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Grid,
    Community,
    /// An index into `DEPARTMENTS`.
    Dept(usize),
    /// Settled by the centre itself (解释疏导), never dispatched.
    Centre,
}

struct Template {
    title: &'static str,
    description: &'static str,
    /// The handler's reply, or the centre's closing note for `Centre` cases.
    result: &'static str,
    category: &'static str,
    target: Target,
    /// The functional department a case goes to when the first assignee returns it or it is
    /// escalated to the street.
    dept: usize,
    difficulty: Difficulty,
    mode: HandlingMode,
    channels: &'static [Channel],
    weight: u32,
    /// Local months the problem occurs in; empty for all year.
    months: &'static [u32],
}

use Channel::{
    CameraAlert as CAM, DoorVisit as DOOR, GridPatrol as PATROL, Hotline as TEL,
    Inspection as INSP, NightVisit as NIGHT, Open311 as O311, ResidentWeb as WEB,
    TowerGroup as TOWER, Volunteer as VOL,
};
use Difficulty::{Difficult, Simple, UnsolvableNow};
use HandlingMode::{Escalate, Explain, Immediate, Joint, SelfGovernance};

const CGB: usize = 0; // 城管办
const JSB: usize = 1; // 建设办
const ZFD: usize = 2; // 综合行政执法队
const YJB: usize = 3; // 应急管理办
const PAB: usize = 4; // 平安办

const TEMPLATES: &[Template] = &[
    Template {
        title: "{place}附近流浪狗出没",
        description: "{place}附近近几天有一条黄色流浪狗在楼下徘徊，见人就叫，小区老人小孩进出很害怕，希望尽快处理。",
        result: "已联系市犬类收容中心上门捕捉，流浪狗已带走收容，现场无犬只，已告知反映人。",
        category: "city_appearance",
        target: Target::Grid,
        dept: CGB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[WEB, TEL, PATROL, VOL, O311, TOWER],
        weight: 8,
        months: &[],
    },
    Template {
        title: "{road}路灯不亮",
        description: "{road}靠近{place}一段有三盏路灯连续几晚不亮，晚上路过很黑，电动车容易出事。",
        result: "已安排路灯维护单位更换灯具和镇流器，经夜间复查路灯已恢复照明。",
        category: "public_facilities",
        target: Target::Dept(JSB),
        dept: JSB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[WEB, TEL, NIGHT, O311, PATROL, VOL],
        weight: 9,
        months: &[],
    },
    Template {
        title: "{road}流动摊点占道经营",
        description: "{road}路口傍晚有多个流动摊点占道经营水果和小吃，堵塞人行道，油烟和垃圾较多。",
        result: "城管队员到场劝离流动摊点，引导至指定疏导点经营，并安排错时巡查防止回潮。",
        category: "street_order",
        target: Target::Dept(CGB),
        dept: CGB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[CAM, PATROL, TEL, WEB, VOL, O311],
        weight: 10,
        months: &[],
    },
    Template {
        title: "云驿小镇周边流动摊点聚集",
        description: "云驿小镇快递园区门口中午和下班时段流动摊点聚集，快递车辆进出受阻，存在交通安全隐患。",
        result: "联合派出所、交警中队开展集中整治，清理摊点12处，设置临时疏导点，并安排党员志愿者突击队值守。",
        category: "street_order",
        target: Target::Dept(ZFD),
        dept: ZFD,
        difficulty: Difficult,
        mode: Joint,
        channels: &[PATROL, CAM, TEL, TOWER],
        weight: 3,
        months: &[],
    },
    Template {
        title: "{place}垃圾分类投放不规范",
        description: "{place}垃圾投放点其他垃圾和厨余垃圾混投，桶边散落垃圾，气味较大。",
        result: "网格员联合物业开展垃圾分类入户宣传，设置督导员定时定点督导，投放点已清理干净。",
        category: "city_appearance",
        target: Target::Grid,
        dept: CGB,
        difficulty: Simple,
        mode: SelfGovernance,
        channels: &[VOL, PATROL, WEB, DOOR],
        weight: 9,
        months: &[],
    },
    Template {
        title: "{place}旁僵尸车长期占用车位",
        description: "{place}旁停有一辆落满灰尘、轮胎瘪气的轿车，已停放半年以上无人移动，占用公共车位。",
        result: "已张贴限期移车告知书，联系车主未果后协调拖移至停车场暂存，车位已释放。",
        category: "road_traffic",
        target: Target::Dept(PAB),
        dept: PAB,
        difficulty: Difficult,
        mode: Joint,
        channels: &[PATROL, TEL, WEB, TOWER, CAM],
        weight: 5,
        months: &[],
    },
    Template {
        title: "{place}楼道堆放杂物",
        description: "{place}楼道内堆放纸板、旧家具等杂物，堵塞消防通道，存在火灾隐患。",
        result: "网格员上门督促住户清理，楼道杂物已全部清除，通道畅通，已拍照留档。",
        category: "safety_hazard",
        target: Target::Grid,
        dept: YJB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[PATROL, DOOR, WEB, TEL, TOWER, VOL],
        weight: 10,
        months: &[],
    },
    Template {
        title: "{place}附近夜间噪音扰民",
        description: "{place}附近一家加工作坊晚上十点后仍在开机器，噪音很大，影响周边居民休息。",
        result: "执法队员夜间到场检查，责令作坊停止夜间作业，业主已承诺22点后停工，复查未再发现扰民。",
        category: "environment",
        target: Target::Dept(ZFD),
        dept: ZFD,
        difficulty: Simple,
        mode: Immediate,
        channels: &[TEL, WEB, NIGHT, O311],
        weight: 7,
        months: &[],
    },
    Template {
        title: "{place}违章搭建",
        description: "{place}顶楼有住户正在搭建彩钢棚，未见任何审批手续，邻居担心影响房屋安全。",
        result: "现场核查认定为违法建设，已下达限期拆除通知书，当事人已自行拆除，现场恢复原状。",
        category: "housing_land",
        target: Target::Dept(ZFD),
        dept: ZFD,
        difficulty: Difficult,
        mode: Joint,
        channels: &[PATROL, TEL, WEB, DOOR, CAM, INSP],
        weight: 6,
        months: &[],
    },
    Template {
        title: "{road}井盖破损",
        description: "{road}非机动车道上一个窨井盖破损下陷，晚上看不清，已有电动车在此摔倒。",
        result: "已设置警示标志并通知权属单位更换井盖，现已修复，路面平整。",
        category: "public_facilities",
        target: Target::Dept(JSB),
        dept: JSB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[TEL, WEB, VOL, O311, PATROL, CAM],
        weight: 6,
        months: &[],
    },
    Template {
        title: "{road}路段雨后积水严重",
        description: "连日降雨，{road}靠近{place}路段积水深约二十厘米，车辆行人通行困难，雨水井疑似堵塞。",
        result: "已组织排水抢险队疏通雨水井，积水已排除，该点位纳入汛期重点巡查。",
        category: "emergency",
        target: Target::Dept(YJB),
        dept: YJB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[TEL, WEB, CAM, PATROL, O311],
        weight: 14,
        months: &[5, 6, 7, 8, 9],
    },
    Template {
        title: "企业复工复产流程咨询",
        description: "我是{company}负责人，公司准备恢复生产，想咨询复工需要准备哪些材料、走什么流程。",
        result: "已电话告知复工备案流程及所需材料，并推送驻企服务员联系方式，企业表示清楚。",
        category: "enterprise_service",
        target: Target::Centre,
        dept: PAB,
        difficulty: Simple,
        mode: Explain,
        channels: &[TEL, WEB, DOOR, INSP],
        weight: 4,
        months: &[],
    },
    Template {
        title: "返义务工补贴怎么申请",
        description: "外省回义乌务工人员，听说政府有返义补贴，想了解申请条件和办理地点。",
        result: "已解释返义补贴申领条件，告知可由所在企业统一到街道“三服务”企业复工复产服务中心申报。",
        category: "enterprise_service",
        target: Target::Centre,
        dept: PAB,
        difficulty: Simple,
        mode: Explain,
        channels: &[TEL, WEB, O311],
        weight: 4,
        months: &[1, 2, 3, 4],
    },
    Template {
        title: "企业包车接员工返义补助咨询",
        description: "{company}计划包车接外地员工回义，想了解包车补助标准和申领手续。",
        result: "已告知包车补助标准及申领材料，驻企服务员将上门指导填报。",
        category: "enterprise_service",
        target: Target::Centre,
        dept: PAB,
        difficulty: Simple,
        mode: Explain,
        channels: &[TEL, DOOR],
        weight: 3,
        months: &[1, 2, 3],
    },
    Template {
        title: "{place}楼上漏水邻里纠纷",
        description: "{place}楼上住户卫生间漏水导致楼下天花板发霉，双方多次协商未果，情绪比较激动。",
        result: "社区调解员组织双方面对面协商，楼上住户同意请师傅维修防水并赔偿部分损失，双方签订调解协议。",
        category: "neighbour_dispute",
        target: Target::Community,
        dept: PAB,
        difficulty: Difficult,
        mode: SelfGovernance,
        channels: &[DOOR, NIGHT, TEL, TOWER, PATROL],
        weight: 6,
        months: &[],
    },
    Template {
        title: "{place}车位被长期占用引发纠纷",
        description: "{place}有住户用地锁和杂物长期占用公共车位，其他居民有意见，双方发生口角。",
        result: "网格员会同业委会上门协调，地锁已拆除，公共车位恢复使用，双方达成谅解。",
        category: "neighbour_dispute",
        target: Target::Community,
        dept: PAB,
        difficulty: Simple,
        mode: SelfGovernance,
        channels: &[TEL, WEB, TOWER, DOOR],
        weight: 4,
        months: &[],
    },
    Template {
        title: "{place}附近露天焚烧垃圾",
        description: "监测到{place}附近空地有明显烟雾，疑似露天焚烧垃圾。",
        result: "网格员到场扑灭火源，对焚烧人员进行批评教育，并清理现场残留物。",
        category: "environment",
        target: Target::Grid,
        dept: CGB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[CAM, CAM, CAM, PATROL],
        weight: 6,
        months: &[],
    },
    Template {
        title: "{road}中央护栏破损",
        description: "巡查发现{road}中央隔离护栏有一段倒伏破损，存在交通安全隐患。",
        result: "已通知市政养护单位更换护栏，现场已恢复，隐患消除。",
        category: "public_facilities",
        target: Target::Dept(JSB),
        dept: JSB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[VOL, VOL, PATROL, TEL],
        weight: 5,
        months: &[],
    },
    Template {
        title: "{place}停车难",
        description: "{place}车位严重不足，晚上车辆乱停乱放，消防车无法通行，希望规划增加停车位。",
        result: "社区牵头与物业、业委会协商，利用闲置空地新增停车位，并施划消防通道标线，已向居民反馈方案。",
        category: "road_traffic",
        target: Target::Community,
        dept: JSB,
        difficulty: UnsolvableNow,
        mode: Joint,
        channels: &[NIGHT, DOOR, TOWER],
        weight: 4,
        months: &[],
    },
    Template {
        title: "{place}老旧小区加装电梯诉求",
        description: "{place}住户多为老年人，上下楼很不方便，希望社区协调加装电梯。",
        result: "已召开居民协商会，形成加装电梯初步方案，正在征求全体业主意见，已向居民反馈进度。",
        category: "livelihood",
        target: Target::Community,
        dept: JSB,
        difficulty: UnsolvableNow,
        mode: Escalate,
        channels: &[NIGHT, DOOR],
        weight: 2,
        months: &[],
    },
    Template {
        title: "{place}健身器材损坏",
        description: "{place}小广场的健身器材有两件螺丝松动、扶手断裂，老人锻炼有危险。",
        result: "已联系体育器材维保单位上门维修，损坏器材已更换，试用正常。",
        category: "public_facilities",
        target: Target::Community,
        dept: JSB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[WEB, NIGHT, VOL, PATROL],
        weight: 4,
        months: &[],
    },
    Template {
        title: "{place}电动车飞线充电",
        description: "{place}有住户从窗户拉电线下楼给电动车充电，电线横跨通道，存在触电和火灾隐患。",
        result: "网格员上门劝导拆除飞线，告知小区集中充电桩位置，已现场拍照复核。",
        category: "safety_hazard",
        target: Target::Grid,
        dept: YJB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[PATROL, CAM, VOL, DOOR, TOWER],
        weight: 8,
        months: &[],
    },
    Template {
        title: "{place}出租房消防设施缺失",
        description: "检查发现{place}一处出租房未配备灭火器，楼道应急照明损坏，存在住人与仓储混合情况。",
        result: "已下达整改通知，房东已配齐灭火器、修复应急照明，仓储物品已清出，复查合格。",
        category: "safety_hazard",
        target: Target::Dept(YJB),
        dept: YJB,
        difficulty: Difficult,
        mode: Joint,
        channels: &[INSP, PATROL, DOOR],
        weight: 5,
        months: &[],
    },
    Template {
        title: "{road}餐饮店污水直排",
        description: "{road}一家小餐饮店洗菜污水直接排在路边雨水井，隔油池未正常使用。",
        result: "已责令店主规范使用隔油池、接入污水管网，并纳入“污水零直排”常态巡查。",
        category: "environment",
        target: Target::Dept(CGB),
        dept: CGB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[INSP, PATROL, WEB, VOL],
        weight: 5,
        months: &[],
    },
    Template {
        title: "{place}乱贴小广告",
        description: "{place}单元门口和电线杆上贴满疏通下水道、办证等小广告，影响市容。",
        result: "网格员组织志愿者清理小广告，并对广告号码进行登记移交处理。",
        category: "advertising",
        target: Target::Grid,
        dept: CGB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[PATROL, VOL, WEB],
        weight: 5,
        months: &[],
    },
    Template {
        title: "{road}建筑垃圾乱倾倒",
        description: "{road}路边空地夜间被人倾倒大量建筑垃圾，堆成小山，扬尘严重。",
        result: "已组织清运建筑垃圾，调取监控追查倾倒车辆，并设置围挡防止再次倾倒。",
        category: "city_appearance",
        target: Target::Dept(CGB),
        dept: CGB,
        difficulty: Difficult,
        mode: Joint,
        channels: &[CAM, PATROL, TEL, O311],
        weight: 5,
        months: &[],
    },
    Template {
        title: "{road}工地夜间施工噪音",
        description: "{road}附近工地晚上十一点后还在打桩施工，噪音很大，周边居民无法入睡。",
        result: "已核查该工地无夜间施工许可，责令停止夜间施工，施工单位已调整作业时间。",
        category: "construction",
        target: Target::Dept(ZFD),
        dept: ZFD,
        difficulty: Simple,
        mode: Immediate,
        channels: &[TEL, WEB, NIGHT, O311],
        weight: 5,
        months: &[],
    },
    Template {
        title: "{road}行道树倒伏",
        description: "台风过后{road}有一棵行道树倒伏，压在非机动车道上，影响通行。",
        result: "已组织园林养护人员清理倒伏树木，道路恢复通行，并对周边树木加固。",
        category: "greening",
        target: Target::Dept(JSB),
        dept: JSB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[TEL, PATROL, CAM, VOL],
        weight: 8,
        months: &[7, 8, 9],
    },
    Template {
        title: "{place}绿化带毁绿种菜",
        description: "{place}公共绿化带被个别住户开垦种菜，还堆放了粪肥，气味难闻。",
        result: "网格员上门做思想工作，住户已自行清除菜地，绿化带已补种恢复。",
        category: "greening",
        target: Target::Grid,
        dept: CGB,
        difficulty: Simple,
        mode: SelfGovernance,
        channels: &[PATROL, VOL, DOOR],
        weight: 4,
        months: &[],
    },
    Template {
        title: "{place}独居老人需要帮助",
        description: "{place}一位独居老人腿脚不便，家中灯泡坏了也没人帮忙，希望社区帮忙维修并定期看望。",
        result: "社区红色管家已上门更换灯泡，并将老人纳入结对关爱名单，每周上门探望。",
        category: "livelihood",
        target: Target::Community,
        dept: PAB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[TOWER, DOOR, TEL, VOL],
        weight: 5,
        months: &[],
    },
    Template {
        title: "{place}下水道堵塞",
        description: "{place}楼下化粪池和下水道堵塞，污水漫到路面，臭味很重。",
        result: "已联系物业和疏通公司清掏疏通，污水已排净，路面已冲洗。",
        category: "public_facilities",
        target: Target::Grid,
        dept: JSB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[TEL, WEB, TOWER, O311],
        weight: 6,
        months: &[],
    },
    Template {
        title: "{road}共享单车乱停放",
        description: "{road}人行道上共享单车堆放杂乱，占据盲道，行人通行不便。",
        result: "已通知运营企业调度清运车辆，现场单车已归位整齐，盲道畅通。",
        category: "street_order",
        target: Target::Dept(CGB),
        dept: CGB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[CAM, VOL, O311, PATROL],
        weight: 5,
        months: &[],
    },
    Template {
        title: "{community}有机更新安置政策咨询",
        description: "居民询问有机更新安置房选房顺序、过渡费发放时间等政策问题。",
        result: "已逐户解释安置政策，告知选房顺序和过渡费发放安排，居民表示理解。",
        category: "housing_land",
        target: Target::Community,
        dept: JSB,
        difficulty: Difficult,
        mode: SelfGovernance,
        channels: &[DOOR, NIGHT, TEL],
        weight: 3,
        months: &[],
    },
    Template {
        title: "{place}高空抛物",
        description: "{place}楼下经常有人从楼上扔垃圾和烟头，砸到了停在楼下的电动车，居民很担心。",
        result: "社区联合派出所排查抛物楼层，张贴警示并开展入户宣传，加装高空监控探头。",
        category: "safety_hazard",
        target: Target::Community,
        dept: PAB,
        difficulty: Difficult,
        mode: Joint,
        channels: &[TEL, WEB, TOWER],
        weight: 3,
        months: &[],
    },
    Template {
        title: "{place}疑似燃气异味",
        description: "{place}楼道里闻到明显的燃气味，不知道是哪户泄漏，居民很紧张。",
        result: "已通知燃气公司抢修人员到场检测，查明为一户软管老化，已更换软管并开展安全宣传。",
        category: "emergency",
        target: Target::Dept(YJB),
        dept: YJB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[TEL, TOWER],
        weight: 3,
        months: &[],
    },
    Template {
        title: "返义人员健康登记咨询",
        description: "刚从外省返回义乌，想咨询是否需要到社区登记以及登记方式。",
        result: "已告知无需专门登记，如有发热等症状请及时就医，并留存社区联系电话。",
        category: "epidemic",
        target: Target::Centre,
        dept: PAB,
        difficulty: Simple,
        mode: Explain,
        channels: &[TEL, WEB],
        weight: 1,
        months: &[],
    },
    Template {
        title: "{company}安全生产隐患",
        description: "综合查一次发现{company}车间消防通道堆放货物，部分灭火器过期，电气线路私拉乱接。",
        result: "已出具体检报告并下达整改清单，企业已清理通道、更换灭火器、规范线路，复查合格。",
        category: "safety_hazard",
        target: Target::Dept(YJB),
        dept: YJB,
        difficulty: Difficult,
        mode: Joint,
        channels: &[INSP],
        weight: 4,
        months: &[],
    },
    Template {
        title: "{company}拖欠工资",
        description: "在{company}打工的几名外地员工反映老板拖欠两个月工资，多次讨要未果。",
        result: "已联合劳动保障部门约谈企业负责人，企业已结清拖欠工资，员工确认收到。",
        category: "neighbour_dispute",
        target: Target::Dept(PAB),
        dept: PAB,
        difficulty: Difficult,
        mode: Joint,
        channels: &[TEL, WEB, DOOR],
        weight: 3,
        months: &[],
    },
    Template {
        title: "{road}路面坑洼破损",
        description: "{road}有一段路面坑洼不平，下雨天积水，车辆经过溅水，电动车容易摔倒。",
        result: "已安排养护单位对破损路面进行修补，现场已恢复平整。",
        category: "road_traffic",
        target: Target::Dept(JSB),
        dept: JSB,
        difficulty: Difficult,
        mode: Joint,
        channels: &[TEL, WEB, O311, PATROL, VOL, CAM],
        weight: 5,
        months: &[],
    },
    Template {
        title: "{place}遛狗不拴绳",
        description: "{place}有居民早晚遛狗不拴绳，大型犬追逐小孩，狗粪也不清理。",
        result: "网格员上门劝导犬主文明养犬，发放文明养犬告知书，犬主承诺遛狗拴绳并清理粪便。",
        category: "city_appearance",
        target: Target::Grid,
        dept: CGB,
        difficulty: Simple,
        mode: SelfGovernance,
        channels: &[WEB, TEL, VOL],
        weight: 4,
        months: &[],
    },
    Template {
        title: "{place}垃圾桶满溢未清运",
        description: "{place}垃圾桶已经满溢两天没人清运，垃圾散落一地，招来很多苍蝇。",
        result: "已通知环卫公司清运并对桶点冲洗消毒，调整该点位清运频次为每日两次。",
        category: "city_appearance",
        target: Target::Dept(CGB),
        dept: CGB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[CAM, WEB, TEL, PATROL, O311],
        weight: 7,
        months: &[],
    },
    Template {
        title: "{place}疑似群租",
        description: "{place}一套房子被隔成很多小间，住了十几个人，进出人员复杂，存在安全隐患。",
        result: "已联合派出所上门检查，督促房东拆除违规隔断，核减入住人数并完成流动人口登记。",
        category: "housing_land",
        target: Target::Dept(PAB),
        dept: PAB,
        difficulty: Difficult,
        mode: Joint,
        channels: &[DOOR, PATROL, NIGHT, TOWER],
        weight: 4,
        months: &[],
    },
    Template {
        title: "{road}附近河道漂浮垃圾",
        description: "{road}附近河道水面漂浮大量塑料袋和泡沫，岸边有异味。",
        result: "已安排河道保洁员打捞清理，并加强沿河巡查，落实“五水共治”长效管护。",
        category: "environment",
        target: Target::Dept(CGB),
        dept: CGB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[VOL, CAM, PATROL],
        weight: 4,
        months: &[],
    },
    Template {
        title: "{place}消防通道被占用",
        description: "{place}消防通道上长期停放私家车和三轮车，发生火情消防车进不来。",
        result: "网格员联系车主挪车，物业施划禁停标线并安装挡车桩，通道已畅通。",
        category: "safety_hazard",
        target: Target::Grid,
        dept: YJB,
        difficulty: Simple,
        mode: Immediate,
        channels: &[CAM, PATROL, WEB],
        weight: 6,
        months: &[],
    },
];

/// How often each channel carries a report, when a problem can come in several ways.
fn channel_weight(c: Channel) -> f64 {
    match c {
        Channel::ResidentWeb => 14.0,
        Channel::Hotline => 20.0,
        Channel::GridPatrol => 26.0,
        Channel::NightVisit => 6.0,
        Channel::DoorVisit => 6.0,
        Channel::TowerGroup => 6.0,
        Channel::Volunteer => 8.0,
        Channel::CameraAlert => 9.0,
        Channel::Inspection => 4.0,
        Channel::Open311 => 3.0,
    }
}

/// How the report reads on each channel.
fn channel_prefix(c: Channel) -> &'static str {
    match c {
        Channel::GridPatrol => "网格员巡查发现：",
        Channel::NightVisit => "夜访中居民反映：",
        Channel::DoorVisit => "两问大家访中居民反映：",
        Channel::TowerGroup => "三级塔群求助，指挥长转报：",
        Channel::Volunteer => "志愿者随手拍：",
        Channel::CameraAlert => "智慧天眼预警：",
        Channel::Inspection => "执法检查发现：",
        Channel::Hotline => "市民来电反映：",
        Channel::ResidentWeb | Channel::Open311 => "",
    }
}

pub(crate) fn weighted<T>(rng: &mut StdRng, items: &[T], weight: impl Fn(&T) -> f64) -> usize {
    let total: f64 = items.iter().map(&weight).sum();
    let mut x = rng.random_range(0.0..total);
    for (i, it) in items.iter().enumerate() {
        x -= weight(it);
        if x < 0.0 {
            return i;
        }
    }
    items.len() - 1
}

// --- the simulation --------------------------------------------------------------------

struct Generated {
    world: World,
    cases: Vec<ImportCase>,
}

/// One case to play: when and where it was reported, and where (if anywhere) its progress
/// is frozen so that the present holds cases in every open state.
pub(crate) struct Plan {
    pub(crate) at: DateTime<Utc>,
    community: usize,
    grid: usize,
    template: &'static Template,
    channel: Channel,
    pub(crate) stall: Option<Status>,
}

fn generate(cal: &Calendar, policy: &Policy, now: DateTime<Utc>) -> Result<Generated, DomainError> {
    let world = build_world()?;
    let mut rng = StdRng::seed_from_u64(CASE_SEED);
    let mut plans: Vec<Plan> = (0..CASES)
        .map(|_| plan(&world, &mut rng, cal, now))
        .collect();
    plans.sort_by_key(|p| p.at);
    assign_stalls(&mut plans, &mut rng, now);
    let mut sims = plans
        .iter()
        .map(|p| simulate(&world, p, &mut rng, cal, policy, now))
        .collect::<Result<Vec<_>, _>>()?;
    ensure_open_states(&world, &mut plans, &mut sims, cal, policy, now)?;

    let mut cases = Vec::with_capacity(plans.len());
    let mut day: Option<NaiveDate> = None;
    let mut seq = 0;
    for (p, mut sim) in plans.iter().zip(sims) {
        let d = cal.local_date(p.at);
        if day != Some(d) {
            day = Some(d);
            seq = 0;
        }
        seq += 1;
        sim.case.number = case::format_number(d, seq);
        cases.push(ImportCase {
            case: sim.case,
            events: sim.events,
            measures: sim.measures,
        });
    }
    Ok(Generated { world, cases })
}

/// Whatever `now` is (a holiday morning leaves little in flight), the present must show a
/// case in each open state: if one is missing, the newest finished cases are replayed with
/// their progress frozen there until one of them gets that far before `now`.
fn ensure_open_states<'a>(
    w: &World,
    plans: &mut [Plan],
    sims: &mut [Sim<'a>],
    cal: &'a Calendar,
    policy: &'a Policy,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    use Status::*;
    for s in [Reported, Accepted, Dispatched, InProgress, Replied] {
        if sims.iter().any(|x| x.case.status == s) {
            continue;
        }
        let candidates: Vec<usize> = (0..plans.len())
            .rev()
            .filter(|&i| plans[i].stall.is_none() && !sims[i].case.status.is_open())
            .take(100)
            .collect();
        for i in candidates {
            plans[i].stall = Some(s);
            let mut rng = StdRng::seed_from_u64(CASE_SEED ^ i as u64);
            let sim = simulate(w, &plans[i], &mut rng, cal, policy, now)?;
            if sim.case.status == s {
                sims[i] = sim;
                break;
            }
            plans[i].stall = None;
        }
    }
    Ok(())
}

fn plan(w: &World, rng: &mut StdRng, cal: &Calendar, now: DateTime<Utc>) -> Plan {
    let community = weighted(rng, &w.communities, |c| c.spec.weight);
    let grid = rng.random_range(0..w.communities[community].grids.len());
    loop {
        // A day within the past year; weekends and holidays see about half the reports.
        let day = cal.local_date(now - Duration::minutes(rng.random_range(0..365 * 24 * 60)));
        if !cal.is_working_day(day) && rng.random_bool(0.45) {
            continue;
        }
        if let Some(p) = plan_on(community, grid, day, rng, cal, now) {
            return p;
        }
    }
}

/// What is reported in a grid on a local day, at what time and on which channel; `None`
/// when the drawn moment does not exist (a DST gap) or lies too close to `now`.
pub(crate) fn plan_on(
    community: usize,
    grid: usize,
    day: NaiveDate,
    rng: &mut StdRng,
    cal: &Calendar,
    now: DateTime<Utc>,
) -> Option<Plan> {
    let month = day.month();
    let fits: Vec<&'static Template> = TEMPLATES
        .iter()
        .filter(|t| t.months.is_empty() || t.months.contains(&month))
        .collect();
    let template = fits[weighted(rng, &fits, |t| f64::from(t.weight))];
    let channel = template.channels[weighted(rng, template.channels, |c| channel_weight(*c))];
    let minute = match channel {
        Channel::NightVisit => rng.random_range(19 * 60..21 * 60 + 30),
        Channel::CameraAlert => rng.random_range(6 * 60..23 * 60),
        _ if rng.random_bool(0.8) => rng.random_range(8 * 60..18 * 60),
        _ => rng.random_range(18 * 60..22 * 60 + 30),
    };
    let time =
        NaiveTime::MIN + Duration::minutes(minute) + Duration::seconds(rng.random_range(0..60));
    let at = cal
        .tz
        .from_local_datetime(&day.and_time(time))
        .earliest()?
        .with_timezone(&Utc);
    if at >= now - Duration::minutes(20) {
        return None;
    }
    Some(Plan {
        at,
        community,
        grid,
        template,
        channel,
        stall: None,
    })
}

/// Freezes some recent cases where they stand, so that the present has a backlog: a good
/// share of the last week's cases are still being handled, and a few old ones are stuck
/// (overdue, supervised and escalated by the sweep).
fn assign_stalls(plans: &mut [Plan], rng: &mut StdRng, now: DateTime<Utc>) {
    for p in plans.iter_mut() {
        p.stall = stall(now - p.at, rng);
    }
}

/// Where a case of this age stays frozen, if anywhere (see [`assign_stalls`]).
pub(crate) fn stall(age: Duration, rng: &mut StdRng) -> Option<Status> {
    use Status::*;
    if age < Duration::hours(24) {
        rng.random_bool(0.7)
            .then(|| *pick(rng, &[Reported, Accepted, Dispatched, InProgress, Replied]))
    } else if age < Duration::days(7) {
        rng.random_bool(0.45)
            .then(|| *pick(rng, &[Dispatched, InProgress, InProgress, Replied]))
    } else if age < Duration::days(60) {
        rng.random_bool(0.02).then_some(InProgress)
    } else {
        None
    }
}

/// What an action attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Done,
    /// The sweep moved the case first (escalated it); choose the next action afresh.
    Replan,
    /// The action would lie after `now`.
    Stop,
}

/// One case on its simulated clock.
pub(crate) struct Sim<'a> {
    cal: &'a Calendar,
    policy: &'a Policy,
    now: DateTime<Utc>,
    t: DateTime<Utc>,
    pub(crate) case: Case,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) measures: MeasureDelta,
}

impl<'a> Sim<'a> {
    fn ctx(&self, at: DateTime<Utc>) -> Ctx<'a> {
        Ctx {
            now: at,
            calendar: self.cal,
            policy: self.policy,
        }
    }

    fn absorb(&mut self, d: Decision, at: DateTime<Utc>) {
        // The field-wise diff of the events' `changes` against the JSON one it replaced,
        // on every decision of the demo's simulations.
        #[cfg(test)]
        assert_eq!(
            case::diff(&self.case, &d.case),
            case::diff_via_json(&self.case, &d.case)
        );
        self.case = d.case;
        self.events.extend(d.events);
        self.measures.extend(d.measures);
        self.t = self.t.max(at);
    }

    /// Runs the overdue sweep at every instant it would have run up to `until`, as the
    /// server's sweeper does when a case's `due_at` comes.
    fn sweep_until(&mut self, until: DateTime<Utc>) {
        // The ladder and weekly supervision bound the steps; the cap only guards a bug.
        for _ in 0..200 {
            let Some(due) = self.case.due_at.filter(|d| *d <= until) else {
                return;
            };
            let at = due.max(self.t);
            match gridloop_domain::sweep::sweep(&self.case, &self.ctx(at)) {
                Some(d) => self.absorb(d, at),
                None => return,
            }
        }
    }

    fn act(
        &mut self,
        at: DateTime<Utc>,
        action: Action,
        actor: &Actor,
        resolved: &Resolved,
    ) -> Result<Step, DomainError> {
        let at = at.max(self.t);
        if at > self.now {
            return Ok(Step::Stop);
        }
        let before = (self.case.status, self.case.org.clone());
        self.sweep_until(at);
        if (self.case.status, &self.case.org) != (before.0, &before.1) {
            return Ok(Step::Replan);
        }
        let d = case::decide(&self.case, &action, actor, resolved, &self.ctx(at))?;
        self.absorb(d, at);
        Ok(Step::Done)
    }

    fn rate(
        &mut self,
        at: DateTime<Utc>,
        rating: Rating,
        comment: Option<&str>,
    ) -> Result<Step, DomainError> {
        let at = at.max(self.t);
        if at > self.now {
            return Ok(Step::Stop);
        }
        self.sweep_until(at);
        let d = case::feedback(&self.case, rating, comment, &Actor::Resident, &self.ctx(at))?;
        self.absorb(d, at);
        Ok(Step::Done)
    }
}

fn mins(rng: &mut StdRng, lo: i64, hi: i64) -> Duration {
    Duration::minutes(rng.random_range(lo..=hi)) + Duration::seconds(rng.random_range(0..60))
}

/// Moves a person's step out of the small hours: staff and residents act between 07:30
/// and 21:30 local time (the centre's 24-hour duty desk does not go through this).
fn awake(cal: &Calendar, t: DateTime<Utc>) -> DateTime<Utc> {
    let local = t.with_timezone(&cal.tz);
    let minute = local.hour() * 60 + local.minute();
    let (start, end) = (7 * 60 + 30, 21 * 60 + 30);
    if (start..end).contains(&minute) {
        return t;
    }
    let day = if minute >= end {
        local.date_naive() + Duration::days(1)
    } else {
        local.date_naive()
    };
    let morning = NaiveTime::MIN + Duration::minutes(i64::from(start));
    cal.tz
        .from_local_datetime(&day.and_time(morning))
        .earliest()
        // Spread over the morning, pseudo-randomly but without drawing.
        .map_or(t, |m| {
            m.with_timezone(&Utc) + Duration::seconds(t.timestamp().rem_euclid(210 * 60))
        })
}

fn share(d: Duration, f: f64) -> Duration {
    Duration::milliseconds((d.num_milliseconds() as f64 * f) as i64)
}

/// When the assignee replies and the centre verifies, for one round of handling.
#[derive(Debug, Clone, Copy)]
struct ReplyPlan {
    reply_at: DateTime<Utc>,
    verify_at: DateTime<Utc>,
    /// A leader's 督办 while a late case drags on.
    leader_at: Option<DateTime<Utc>>,
}

fn reply_plan(
    cal: &Calendar,
    rng: &mut StdRng,
    t: DateTime<Utc>,
    deadline: DateTime<Utc>,
    late: bool,
) -> ReplyPlan {
    let room = deadline - t;
    if !late && room > Duration::minutes(40) {
        // A night-time step moves to the morning only if the case still closes on time.
        let in_time = |at: DateTime<Utc>, by: DateTime<Utc>| {
            let moved = awake(cal, at);
            if moved < by { moved } else { at }
        };
        let reply_at = t + share(room, rng.random_range(0.15..0.75));
        let reply_at = in_time(reply_at, deadline - Duration::minutes(15));
        let verify_at = reply_at + mins(rng, 5, 180).min(share(deadline - reply_at, 0.9));
        let verify_at = in_time(verify_at, deadline);
        return ReplyPlan {
            reply_at,
            verify_at,
            leader_at: None,
        };
    }
    let hours = match rng.random_range(0..20) {
        0..=9 => rng.random_range(0.5..8.0),
        10..=16 => rng.random_range(8.0..36.0),
        _ => rng.random_range(36.0..96.0),
    };
    let reply_at = t.max(deadline) + Duration::minutes((hours * 60.0) as i64);
    let reply_at = awake(cal, reply_at);
    let verify_at = reply_at + mins(rng, 10, 240);
    let verify_at = awake(cal, verify_at);
    let overrun = (reply_at - deadline).num_minutes();
    let leader_at = (overrun > 8 * 60 && rng.random_bool(0.35))
        .then(|| deadline + mins(rng, 120, overrun - 60))
        .map(|at| awake(cal, at));
    ReplyPlan {
        reply_at,
        verify_at,
        leader_at,
    }
}

const REJECT_REASONS: &[&str] = &[
    "重复上报，原事件已在办理中",
    "不属于街道受理范围，已告知反映人向市场监管部门反映",
    "现场核查未发现反映的问题",
    "反映信息不全，多次联系反映人未果",
];
const SATISFIED: &[Option<&str>] = &[
    None,
    None,
    Some("处理很及时，满意"),
    Some("网格员态度好，点赞"),
];
const BASIC: &[Option<&str>] = &[None, Some("基本解决了，希望长效管理")];
const UNSATISFIED: &[&str] = &[
    "问题没有彻底解决，过几天又出现了",
    "处理太慢，拖了好几天",
    "只是表面清理，根源没有解决",
];

fn resolved(org: &Org) -> Resolved {
    Resolved {
        target: Some((org.as_ref(), org.level)),
        merge_into: None,
    }
}

/// Plays one case from its report to where it stands at `now`.
pub(crate) fn simulate<'a>(
    w: &World,
    p: &Plan,
    rng: &mut StdRng,
    cal: &'a Calendar,
    policy: &'a Policy,
    now: DateTime<Utc>,
) -> Result<Sim<'a>, DomainError> {
    let (mut sim, result) = report(w, p, rng, cal, policy, now)?;
    let fate = Fate::draw(w, p, rng);
    play(&mut sim, w, p, &fate, &result, rng)?;
    sim.sweep_until(now);
    Ok(sim)
}

/// The report as it came in on its channel; returns the case and the handler's reply text.
fn report<'a>(
    w: &World,
    p: &Plan,
    rng: &mut StdRng,
    cal: &'a Calendar,
    policy: &'a Policy,
    now: DateTime<Utc>,
) -> Result<(Sim<'a>, String), DomainError> {
    let comm = &w.communities[p.community];
    let grid = &comm.grids[p.grid];
    let tpl = p.template;
    let place = pick(rng, &grid.units).clone();
    let road = *pick(rng, ROADS);
    let firm = company(rng);
    let fill = |s: &str| {
        s.replace("{place}", &place)
            .replace("{road}", road)
            .replace("{company}", &firm)
            .replace("{community}", &comm.org.name)
    };

    let grid_worker = || w.handler(&grid.org.code).cloned();
    let resident = Reporter {
        name: rng.random_bool(0.85).then(|| person(rng)),
        phone: Some(phone(rng)),
    };
    let (actor, reporter) = match p.channel {
        Channel::ResidentWeb => (Actor::Resident, resident),
        Channel::Open311 => (Actor::ApiClient("demo".into()), resident),
        Channel::Hotline => (w.actor(&w.dispatcher)?.clone(), resident),
        Channel::NightVisit => (w.handler(&comm.org.code)?.clone(), resident),
        Channel::DoorVisit => (grid_worker()?, resident),
        Channel::TowerGroup => (
            grid_worker()?,
            Reporter {
                name: Some(grid.commander.0.clone()),
                phone: Some(grid.commander.1.clone()),
            },
        ),
        Channel::GridPatrol => (grid_worker()?, Reporter::default()),
        Channel::Volunteer => (w.actor(&comm.volunteer)?.clone(), Reporter::default()),
        Channel::CameraAlert => (Actor::ApiClient("tianyan".into()), Reporter::default()),
        Channel::Inspection => (w.actor(&w.inspector)?.clone(), Reporter::default()),
    };
    // Residents often leave the category to the centre, which sets it on accept.
    let self_reported = matches!(p.channel, Channel::ResidentWeb | Channel::Open311);
    let category = (!self_reported || rng.random_bool(0.5)).then(|| tpl.category.to_string());
    let input = NewCase {
        channel: Some(p.channel),
        title: fill(tpl.title),
        description: format!("{}{}", channel_prefix(p.channel), fill(tpl.description)),
        category,
        location: Some(grid.random_point(rng)),
        // Village lanes already carry the village's name.
        address: Some(if place.starts_with(comm.org.name.as_str()) {
            format!("{}{place}", w.street.name)
        } else {
            format!("{}{}{place}", w.street.name, comm.org.name)
        }),
        reporter,
        attachments: vec![],
        ..NewCase::default()
    };
    let ctx = Ctx {
        now: p.at,
        calendar: cal,
        policy,
    };
    let created = case::new_case(input, &actor, &grid.org.as_ref(), &ctx)?;
    let sim = Sim {
        cal,
        policy,
        now,
        t: created.case.created_at,
        case: created.case,
        events: created.events,
        measures: created.measures,
    };
    Ok((sim, fill(tpl.result)))
}

/// What will happen to a case, drawn once up front; the community's record sets the odds.
struct Fate<'w> {
    reject: bool,
    difficulty: Difficulty,
    first_target: &'w Org,
    /// Where the case goes after a return (退单), and why it was returned.
    second_target: &'w Org,
    return_reason: &'static str,
    returns: bool,
    extends: bool,
    escalates: bool,
    rework: bool,
    first_late: bool,
    unsatisfied: f64,
    /// Chance that claiming takes hours, not minutes.
    slow_claim: f64,
}

impl<'w> Fate<'w> {
    fn draw(w: &'w World, p: &Plan, rng: &mut StdRng) -> Fate<'w> {
        let comm = &w.communities[p.community];
        let grid = &comm.grids[p.grid];
        let tpl = p.template;
        let late = comm.spec.late;
        let staff_channel = matches!(
            p.channel,
            Channel::GridPatrol | Channel::Inspection | Channel::CameraAlert
        );
        let difficulty = if tpl.mode == Explain || rng.random_bool(0.8) {
            tpl.difficulty
        } else if tpl.difficulty == Simple {
            Difficult
        } else {
            Simple
        };
        let dept = &w.departments[tpl.dept];
        let (first_target, second_target, return_reason) = match tpl.target {
            Target::Grid => (
                &grid.org,
                dept,
                "该问题涉及执法权限，非网格可处置，申请改派职能部门",
            ),
            Target::Dept(i) => (
                &w.departments[i],
                &grid.org,
                "经现场核实属于小区内部管理问题，应由属地网格处置",
            ),
            Target::Community | Target::Centre => {
                (&comm.org, dept, "问题涉及市政设施维修，请改派职能部门")
            }
        };
        Fate {
            reject: !staff_channel && rng.random_bool(0.03),
            difficulty,
            first_target,
            second_target,
            return_reason,
            returns: tpl.target != Target::Centre && rng.random_bool(0.04),
            extends: difficulty != Simple && rng.random_bool(0.08),
            escalates: tpl.mode == Escalate && rng.random_bool(0.6),
            rework: rng.random_bool(0.01 + 0.25 * late),
            // Departments serve the whole street and run a little behind.
            first_late: rng.random_bool(
                late + if first_target.level == Level::Department {
                    0.02
                } else {
                    0.0
                },
            ),
            unsatisfied: if tpl.mode == Explain {
                0.02
            } else {
                0.02 + 0.5 * late
            },
            slow_claim: (late * 1.5).min(1.0),
        }
    }
}

/// Takes a case round the loop, one action at a time, each by the role that does it in
/// life, until it is finished, frozen by its plan, or the next step would lie after `now`.
fn play(
    sim: &mut Sim,
    w: &World,
    p: &Plan,
    fate: &Fate,
    result: &str,
    rng: &mut StdRng,
) -> Result<(), DomainError> {
    let tpl = p.template;
    let centre = w.actor(&w.dispatcher)?;
    let leader = w.actor(&w.leader)?;
    let none = Resolved::default();
    let mut returned = false;
    let mut escalated = false;
    let mut extended = false;
    let mut verified = false;
    let mut leader_done = false;
    let mut rounds = 0;
    let mut reply: Option<ReplyPlan> = None;
    let mut last_status = sim.case.status;

    // Each pass takes one step; the bound only guards against a bug looping forever.
    for _ in 0..100 {
        let status = sim.case.status;
        if status != last_status && status == Status::InProgress {
            // A new round of handling (claimed, reworked, reopened) gets a fresh plan.
            reply = None;
        }
        last_status = status;
        if p.stall == Some(status) {
            break;
        }
        let t = sim.t;
        let step = match status {
            Status::Reported => {
                let action = if fate.reject {
                    Action::Reject {
                        reason: pick(rng, REJECT_REASONS).to_string(),
                    }
                } else {
                    Action::Accept {
                        handling_mode: tpl.mode,
                        difficulty: fate.difficulty,
                        category: sim
                            .case
                            .category
                            .is_none()
                            .then(|| tpl.category.to_string()),
                    }
                };
                sim.act(t + mins(rng, 3, 60), action, centre, &none)?
            }
            Status::Accepted if tpl.mode == Explain => {
                let action = Action::Close {
                    note: result.to_string(),
                };
                sim.act(t + mins(rng, 2, 30), action, centre, &none)?
            }
            Status::Accepted => {
                let target = if returned {
                    fate.second_target
                } else {
                    fate.first_target
                };
                let action = Action::Dispatch {
                    org: target.code.clone(),
                    note: Some("请按135销号制时限办理并回复".into()),
                };
                sim.act(t + mins(rng, 2, 30), action, centre, &resolved(target))?
            }
            Status::Dispatched
                if matches!(
                    w.levels.get(&sim.case.org),
                    Some(Level::Street | Level::City)
                ) =>
            {
                // Escalated to the top: the centre hands it to a functional department.
                let dept = &w.departments[tpl.dept];
                let action = Action::Dispatch {
                    org: dept.code.clone(),
                    note: Some("上报攻坚，请职能部门牵头办理".into()),
                };
                sim.act(t + mins(rng, 10, 120), action, centre, &resolved(dept))?
            }
            Status::Dispatched => {
                let handler = w.handler(&sim.case.org)?;
                let first_assignee = sim.case.escalation_level == 0 && sim.case.reopen_count == 0;
                if fate.returns && !returned && first_assignee {
                    returned = true;
                    let action = Action::Return {
                        reason: fate.return_reason.into(),
                    };
                    let at = awake(sim.cal, t + mins(rng, 20, 180));
                    sim.act(at, action, handler, &none)?
                } else {
                    let delay = if rng.random_bool(fate.slow_claim) {
                        mins(rng, 150, 420)
                    } else {
                        mins(rng, 5, 90)
                    };
                    let at = awake(sim.cal, t + delay);
                    sim.act(at, Action::Claim {}, handler, &none)?
                }
            }
            Status::InProgress => {
                let handler = w.handler(&sim.case.org)?;
                let deadline = sim.case.deadline.unwrap_or(t);
                let level = w.levels.get(&sim.case.org).copied();
                if fate.escalates
                    && !escalated
                    && matches!(level, Some(Level::Grid | Level::Community))
                {
                    escalated = true;
                    let action = Action::Escalate {
                        reason: "涉及多方利益，需上级统筹协调，申请上报攻坚".into(),
                    };
                    let at = awake(sim.cal, t + mins(rng, 30, 240));
                    sim.act(at, action, handler, &none)?
                } else if sim.case.pending_extension.is_some() {
                    let approved = rng.random_bool(0.85);
                    let note = if approved {
                        "同意延期"
                    } else {
                        "理由不充分，请按期办结"
                    };
                    let action = Action::DecideExtension {
                        approved,
                        note: Some(note.into()),
                    };
                    let at = awake(sim.cal, t + mins(rng, 20, 180));
                    sim.act(at, action, centre, &none)?
                } else if fate.extends && !extended && deadline - t > Duration::hours(2) {
                    extended = true;
                    let action = Action::RequestExtension {
                        days: rng.random_range(2..=5),
                        reason: "需协调多个部门及产权单位，申请延期办理".into(),
                    };
                    let at = awake(sim.cal, t + share(deadline - t, 0.5));
                    sim.act(at, action, handler, &none)?
                } else {
                    let plan = match reply {
                        Some(r) => r,
                        None => {
                            // Later rounds are mostly quick: everyone knows the case by then.
                            let late = if rounds == 0 {
                                fate.first_late
                            } else {
                                rng.random_bool(0.1)
                            };
                            rounds += 1;
                            *reply.insert(reply_plan(sim.cal, rng, t, deadline, late))
                        }
                    };
                    match plan.leader_at {
                        Some(at) if !leader_done => {
                            leader_done = true;
                            let action = Action::Supervise {
                                note: "请责任单位抓紧处置，明日前反馈进展".into(),
                            };
                            sim.act(at, action, leader, &none)?
                        }
                        _ => {
                            let action = Action::Reply {
                                result: result.to_string(),
                                attachments: vec![],
                            };
                            sim.act(plan.reply_at, action, handler, &none)?
                        }
                    }
                }
            }
            Status::Replied => {
                let at = match reply {
                    Some(r) => r.verify_at,
                    None => awake(sim.cal, t + mins(rng, 10, 180)),
                };
                // Only the first verification may fail: rework happens once at most.
                let passed = !fate.rework || verified;
                verified = true;
                let note = if passed {
                    "现场核查通过"
                } else {
                    "现场核查发现问题未彻底解决，请返工"
                };
                let action = Action::Verify {
                    passed,
                    note: Some(note.into()),
                };
                sim.act(at, action, centre, &none)?
            }
            Status::Closed => {
                if !sim.case.awaiting_feedback
                    || sim.case.reporter.phone.is_none()
                    || !rng.random_bool(0.75)
                {
                    break;
                }
                let at = sim.case.closed_at.unwrap_or(t) + mins(rng, 60, 36 * 60);
                let at = awake(sim.cal, at);
                let unsatisfied = if sim.case.reopen_count == 0 {
                    fate.unsatisfied
                } else {
                    0.08
                };
                let x = rng.random::<f64>();
                let (rating, comment) = if x < unsatisfied {
                    (Rating::Unsatisfied, Some(*pick(rng, UNSATISFIED)))
                } else if x < unsatisfied + 0.18 {
                    (Rating::BasicallySatisfied, *pick(rng, BASIC))
                } else {
                    (Rating::Satisfied, *pick(rng, SATISFIED))
                };
                sim.rate(at, rating, comment)?
            }
            Status::Rejected | Status::Merged => break,
        };
        if step == Step::Stop {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridloop_domain::calendar::CalendarYear;
    use gridloop_domain::category;
    use gridloop_domain::geo::Boundary;

    fn calendar() -> Calendar {
        let mut c = Calendar::default();
        for y in [
            include_str!("../calendars/2025.json"),
            include_str!("../calendars/2026.json"),
        ] {
            c.load_year(&CalendarYear::parse(y).expect("calendar parses"));
        }
        c
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-05-20T10:00:00+08:00")
            .expect("valid time")
            .with_timezone(&Utc)
    }

    fn boundary(o: &Org) -> Boundary {
        Boundary::from_geojson(o.boundary.as_ref().expect("has a boundary")).expect("parses")
    }

    #[test]
    fn the_tree_is_big_enough_and_well_formed() {
        let w = build_world().expect("world builds");
        let s = w.summary();
        assert!(
            w.communities.len() >= 10 && s.grids >= 50 && s.units >= 200,
            "{s:?}"
        );
        assert!(s.departments >= 3);
        for c in &w.communities {
            assert!((4..=6).contains(&c.grids.len()));
            let units: Vec<&String> = c.grids.iter().flat_map(|g| &g.units).collect();
            let distinct: std::collections::HashSet<&&String> = units.iter().collect();
            assert_eq!(
                distinct.len(),
                units.len(),
                "unit names repeat in {}",
                c.org.name
            );
        }
        let codes: std::collections::HashSet<&str> =
            w.orgs.iter().map(|o| o.code.as_str()).collect();
        assert_eq!(codes.len(), w.orgs.len(), "codes are unique");
        for o in &w.orgs {
            if let Some(p) = &o.parent {
                assert!(codes.contains(p.as_str()));
                assert!(o.code.starts_with(STREET) || o.level == Level::Street);
            }
        }
        for (u, role, org, _) in DEMO_USERS {
            assert!(Role::parse(role).is_some(), "{u}");
            assert!(codes.contains(org), "{u} at {org}");
        }
        for (u, role, org, _) in DEMO_USERS.iter().filter(|u| u.1 == "handler") {
            assert_eq!(w.handler_of.get(*org), Some(&u.to_string()), "{role} {u}");
        }
        for tier in 1..=3 {
            assert!(w.tower_groups.iter().any(|g| g.tier == tier));
        }
    }

    #[test]
    fn grids_tile_the_street_without_overlap() {
        let w = build_world().expect("world builds");
        let street = boundary(&w.orgs[1]);
        let grids: Vec<(usize, Boundary)> = w
            .communities
            .iter()
            .enumerate()
            .flat_map(|(ci, c)| c.grids.iter().map(move |g| (ci, boundary(&g.org))))
            .collect();
        let communities: Vec<Boundary> = w.communities.iter().map(|c| boundary(&c.org)).collect();
        let mut rng = StdRng::seed_from_u64(7);
        let (x0, y0, x1, y1) = street.bbox;
        for _ in 0..5000 {
            let p = Location {
                lng: rng.random_range(x0..x1),
                lat: rng.random_range(y0..y1),
            };
            assert!(street.contains(p));
            let hits: Vec<usize> = grids
                .iter()
                .filter(|(_, b)| b.contains(p))
                .map(|(c, _)| *c)
                .collect();
            assert_eq!(hits.len(), 1, "{p:?} lies in {} grids", hits.len());
            let in_comm: Vec<usize> = (0..communities.len())
                .filter(|i| communities[*i].contains(p))
                .collect();
            assert_eq!(in_comm, hits, "community outline is the union of its grids");
        }
    }

    #[test]
    fn generated_points_lie_in_their_grid_only() {
        let w = build_world().expect("world builds");
        let all: Vec<(&str, Boundary)> = w
            .communities
            .iter()
            .flat_map(|c| c.grids.iter())
            .map(|g| (g.org.code.as_str(), boundary(&g.org)))
            .collect();
        let mut rng = StdRng::seed_from_u64(9);
        for g in w.communities.iter().flat_map(|c| c.grids.iter()) {
            for _ in 0..50 {
                let p = g.random_point(&mut rng);
                let hits: Vec<&str> = all
                    .iter()
                    .filter(|(_, b)| b.contains(p))
                    .map(|(c, _)| *c)
                    .collect();
                assert_eq!(hits, vec![g.org.code.as_str()]);
            }
        }
    }

    #[test]
    fn templates_are_valid() {
        for t in TEMPLATES {
            assert!(category::validate(t.category).is_ok(), "{}", t.title);
            assert!(!t.channels.is_empty());
            assert!(t.dept < DEPARTMENTS.len());
            assert_eq!(t.mode == Explain, t.target == Target::Centre, "{}", t.title);
        }
        for c in Channel::ALL {
            assert!(TEMPLATES.iter().any(|t| t.channels.contains(c)), "{c}");
        }
    }

    /// Replays a timeline's status changes and checks they chain up to the final case.
    fn check_timeline(c: &Case, events: &[NewEvent]) {
        assert_eq!(events.first().map(|e| e.action.as_str()), Some("create"));
        let mut status = Status::Reported;
        for pair in events.windows(2) {
            assert!(pair[0].at <= pair[1].at, "{}: events out of order", c.title);
        }
        for e in &events[1..] {
            if let Some(from) = e.details.get("from") {
                assert_eq!(
                    from.as_str(),
                    Some(status.as_str()),
                    "{} {}",
                    c.title,
                    e.action
                );
                let to = e.details.get("to").and_then(Value::as_str).expect("to");
                status = Status::parse(to).expect("a status");
            }
        }
        assert_eq!(status, c.status);
        assert!(c.version >= 1);
        assert!(c.updated_at <= now());
    }

    #[test]
    fn one_case_plays_through_the_domain() {
        let (cal, policy) = (calendar(), Policy::default());
        let w = build_world().expect("world builds");
        let mut rng = StdRng::seed_from_u64(1);
        let at = now() - Duration::days(30);
        let p = Plan {
            at,
            community: 0,
            grid: 0,
            template: &TEMPLATES[6],
            channel: Channel::GridPatrol,
            stall: None,
        };
        let sim = simulate(&w, &p, &mut rng, &cal, &policy, now()).expect("simulates");
        check_timeline(&sim.case, &sim.events);
        assert!(
            sim.events.len() >= 6,
            "create accept dispatch claim reply verify"
        );
        assert_eq!(sim.case.status, Status::Closed);
        assert_eq!(sim.case.area_org, "33078200300101");
        assert_eq!(sim.case.created_by.as_deref(), Some("grid1"));
        let b = boundary(&w.communities[0].grids[0].org);
        assert!(b.contains(sim.case.location.expect("located")));
    }

    #[test]
    fn the_year_of_cases_is_plausible() {
        let (cal, policy) = (calendar(), Policy::default());
        let g = generate(&cal, &policy, now()).expect("generates");
        assert!(g.cases.len() >= 2000);
        let numbers: std::collections::HashSet<&str> =
            g.cases.iter().map(|c| c.case.number.as_str()).collect();
        assert_eq!(numbers.len(), g.cases.len(), "numbers are unique");
        assert!(g.cases.iter().any(|c| c.case.number.ends_with("-000001")));

        let mut total = MeasureDelta::default();
        for c in &g.cases {
            check_timeline(&c.case, &c.events);
            total.extend(c.measures.clone());
        }
        for s in Status::ALL {
            if *s != Status::Merged {
                assert!(
                    g.cases.iter().any(|c| c.case.status == *s),
                    "some case is {s}"
                );
            }
        }
        for c in Channel::ALL {
            assert!(g.cases.iter().any(|x| x.case.channel == *c), "{c}");
        }
        assert!(
            g.cases
                .iter()
                .any(|c| c.case.overdue && c.case.status.is_open())
        );
        for action in [
            "supervise",
            "escalate",
            "return",
            "request_extension",
            "reopen",
            "reject",
        ] {
            assert!(
                g.cases
                    .iter()
                    .any(|c| c.events.iter().any(|e| e.action == action)),
                "some case has a {action}"
            );
        }

        let mut counters = gridloop_domain::measures::Counters::default();
        for (_, c) in &total.counters {
            counters.add(c);
        }
        let m = gridloop_domain::measures::Measures::from_counters(&counters, 0);
        assert!((0.85..=0.95).contains(&m.on_time_rate), "{m:?}");
        assert!(m.satisfaction_rate > 0.8 && m.rework_rate > 0.0, "{m:?}");
        let statuses: i64 = total
            .gauges
            .iter()
            .filter(|(k, _)| *k != gridloop_domain::measures::GaugeKey::Overdue)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(statuses, g.cases.len() as i64, "one status per case");

        assert!(
            g.cases.iter().filter(|c| c.case.status.is_open()).count() >= 20,
            "a backlog"
        );

        // The best and the worst community differ clearly in punctuality.
        let rate = |code: &str| {
            let mine: Vec<&ImportCase> = g
                .cases
                .iter()
                .filter(|c| c.case.area_path.contains(code))
                .collect();
            let closed = mine
                .iter()
                .filter(|c| c.case.closed_on_time.is_some())
                .count();
            let on_time = mine
                .iter()
                .filter(|c| c.case.closed_on_time == Some(true))
                .count();
            on_time as f64 / closed as f64
        };
        assert!(rate("330782003009") - rate("330782003015") > 0.08);
    }

    #[test]
    fn every_open_state_whatever_the_time() {
        let (cal, policy) = (calendar(), Policy::default());
        // A holiday noon and a Monday before work: little is in flight naturally.
        for t in ["2026-01-03T12:00:00+08:00", "2026-03-02T08:40:00+08:00"] {
            let now = DateTime::parse_from_rfc3339(t)
                .expect("valid")
                .with_timezone(&Utc);
            let g = generate(&cal, &policy, now).expect("generates");
            for s in Status::ALL.iter().filter(|s| s.is_open()) {
                assert!(
                    g.cases.iter().any(|c| c.case.status == *s),
                    "{t}: no case is {s}"
                );
            }
            assert!(g.cases.iter().all(|c| c.events.iter().all(|e| e.at <= now)));
        }
    }
}
