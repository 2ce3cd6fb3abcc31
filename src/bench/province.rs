//! A province-shaped org tree for benchmarks: one root (the province), a thousand streets
//! in eleven cities, fifteen communities per street and 85 grids per street (85,000 grids
//! in all, as in Zhejiang), optionally 450,000 micro-grids with boundaries.
//!
//! Each street is a [`World`] of the demo city's kind, so that cases are played through the
//! domain by the demo's own simulation, with the street's own centre, leader and handlers.

use std::collections::HashMap;

use gridloop_domain::DomainError;
use gridloop_domain::org::{Level, Org, OrgRef};
use gridloop_domain::role::{Actor, Role, UserActor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::demo::{
    COMMUNITIES, COMPOUND_SUFFIXES, Community, DEPARTMENTS, DemoUser, Grid, Point, World, child,
    person, phone, polygon, round6, unit_names,
};

/// The province's code (浙江省); streets are `33NNNN` under it.
pub const ROOT: &str = "330000";
pub const ROOT_NAME: &str = "浙江省";
/// Logins at the root (password [`PASSWORD`]): `(username, role)`.
pub const ROOT_USERS: &[(&str, Role)] = &[
    ("admin", Role::Admin),
    ("dispatcher", Role::Dispatcher),
    ("leader", Role::Leader),
];
/// Every benchmark user's password.
pub const PASSWORD: &str = "bench-password";

const CITIES: [&str; 11] = [
    "杭州市",
    "宁波市",
    "温州市",
    "嘉兴市",
    "湖州市",
    "绍兴市",
    "金华市",
    "衢州市",
    "舟山市",
    "台州市",
    "丽水市",
];

/// A street is a block of `STREET_COLS` × `STREET_ROWS` grid cells; communities take runs
/// of six or five cells (85 = 10 × 6 + 5 × 5), in the order of the demo's 15 communities.
const STREET_COLS: usize = 17;
const STREET_ROWS: usize = 5;
pub const GRIDS_PER_STREET: usize = STREET_COLS * STREET_ROWS;
/// Streets side by side in the province's lattice.
const PROVINCE_COLS: usize = 25;
const WEST: f64 = 118.0;
const NORTH: f64 = 31.1;
/// Cell size: the province's 4.9° × 4° shared by 425 × 200 cells.
const DX: f64 = 4.9 / (PROVINCE_COLS * STREET_COLS) as f64;
const DY: f64 = 4.0 / 200.0;
/// 85,000 grids split into 450,000 micro-grids: five strips each, six in the first 25 grids of
/// every street.
const MICRO_STRIPS: usize = 5;
const SIXTH_STRIP_GRIDS: usize = 25;

pub struct Province {
    pub root: Org,
    pub streets: Vec<World>,
}

impl Province {
    pub fn grids(&self) -> usize {
        self.streets.len() * GRIDS_PER_STREET
    }

    /// Users at the root, then every street's.
    pub fn users(&self) -> impl Iterator<Item = &DemoUser> {
        self.streets.iter().flat_map(|w| w.users.iter())
    }
}

fn cell(col: usize, row: usize) -> [Point; 4] {
    let x0 = round6(WEST + col as f64 * DX);
    let x1 = round6(WEST + (col + 1) as f64 * DX);
    let y0 = round6(NORTH - (row + 1) as f64 * DY);
    let y1 = round6(NORTH - row as f64 * DY);
    [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
}

fn community_grids(ci: usize) -> usize {
    if ci < 10 { 6 } else { 5 }
}

/// Builds `streets` streets (1,000 for the full province). Deterministic in `seed`.
pub fn build(streets: usize, seed: u64) -> Result<Province, DomainError> {
    let root = Org {
        code: ROOT.into(),
        name: ROOT_NAME.into(),
        level: Level::City,
        parent: None,
        path: Org::child_path(None, ROOT, Level::City)?,
        boundary: None,
    };
    let mut out = Vec::with_capacity(streets);
    for s in 0..streets {
        out.push(street(&root, s, streets, seed)?);
    }
    Ok(Province { root, streets: out })
}

fn street(root: &Org, s: usize, streets: usize, seed: u64) -> Result<World, DomainError> {
    let mut rng = StdRng::seed_from_u64(seed ^ (s as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let city = CITIES[s * CITIES.len() / streets.max(1)];
    let n = s + 1;
    let mut street = child(
        root,
        format!("33{n:04}"),
        format!("{city}第{n}街道"),
        Level::Street,
    )?;
    let (sx, sy) = (s % PROVINCE_COLS, s / PROVINCE_COLS);
    let (c0, r0) = (sx * STREET_COLS, sy * STREET_ROWS);
    let sw = cell(c0, r0 + STREET_ROWS - 1)[0];
    let ne = cell(c0 + STREET_COLS - 1, r0)[2];
    street.boundary = Some(polygon(&[sw, (ne.0, sw.1), ne, (sw.0, ne.1)]));
    let mut orgs = vec![street.clone()];
    let mut users = Vec::new();
    let user = |users: &mut Vec<DemoUser>, rng: &mut StdRng, name: String, role, org: &str| {
        users.push(DemoUser {
            username: name,
            display_name: person(rng),
            role,
            org: org.to_string(),
        })
    };
    let u = |what: &str| format!("s{n:04}-{what}");
    user(
        &mut users,
        &mut rng,
        u("dispatcher"),
        Role::Dispatcher,
        &street.code,
    );
    user(
        &mut users,
        &mut rng,
        u("leader"),
        Role::Leader,
        &street.code,
    );

    let mut departments = Vec::new();
    for (i, (suffix, name)) in DEPARTMENTS.iter().enumerate() {
        let d = child(
            &street,
            format!("{}{suffix}", street.code),
            (*name).into(),
            Level::Department,
        )?;
        user(
            &mut users,
            &mut rng,
            u(&format!("dept{}", i + 1)),
            Role::Handler,
            &d.code,
        );
        departments.push(d);
    }
    // The enforcement team (综合行政执法队) inspects.
    user(
        &mut users,
        &mut rng,
        u("inspector"),
        Role::Inspector,
        &departments[2].code,
    );
    orgs.extend(departments.iter().cloned());

    let mut communities = Vec::new();
    let mut k = 0;
    for (ci, spec) in COMMUNITIES.iter().enumerate() {
        let c = child(
            &street,
            format!("{}{:03}", street.code, ci + 1),
            spec.name.into(),
            Level::Community,
        )?;
        orgs.push(c.clone());
        user(
            &mut users,
            &mut rng,
            u(&format!("community{}", ci + 1)),
            Role::Handler,
            &c.code,
        );
        let volunteer = u(&format!("volunteer{}", ci + 1));
        user(
            &mut users,
            &mut rng,
            volunteer.clone(),
            Role::Volunteer,
            &c.code,
        );
        let mut grids = Vec::new();
        let mut compounds = COMPOUND_SUFFIXES.iter().cycle();
        for gi in 0..community_grids(ci) {
            let (col, row) = (c0 + k % STREET_COLS, r0 + k / STREET_COLS);
            k += 1;
            let m = gi + 1;
            let mut g = child(
                &c,
                format!("{}{m:02}", c.code),
                format!("{}第{m}网格", spec.name),
                Level::Grid,
            )?;
            let quad = cell(col, row);
            g.boundary = Some(polygon(&quad));
            orgs.push(g.clone());
            user(
                &mut users,
                &mut rng,
                u(&format!("grid{k}")),
                Role::Handler,
                &g.code,
            );
            let compound = format!("{}{}", spec.stem, compounds.next().unwrap_or(&"小区"));
            grids.push(Grid {
                units: unit_names(&mut rng, spec, m, &compound),
                commander: (person(&mut rng), phone(&mut rng)),
                org: g,
                quad,
            });
        }
        communities.push(Community {
            org: c,
            spec,
            grids,
            volunteer,
        });
    }

    let paths: HashMap<&str, &str> = orgs
        .iter()
        .map(|o| (o.code.as_str(), o.path.as_str()))
        .collect();
    let mut actors = HashMap::new();
    let mut handler_of = HashMap::new();
    for u in &users {
        let path = paths[u.org.as_str()];
        actors.insert(
            u.username.clone(),
            Actor::User(UserActor {
                username: u.username.clone(),
                role: u.role,
                org: OrgRef::new(&u.org, path),
            }),
        );
        if u.role == Role::Handler {
            handler_of
                .entry(u.org.clone())
                .or_insert(u.username.clone());
        }
    }
    let mut levels: HashMap<String, Level> =
        orgs.iter().map(|o| (o.code.clone(), o.level)).collect();
    levels.insert(root.code.clone(), Level::City);
    Ok(World {
        orgs,
        street,
        communities,
        departments,
        tower_groups: Vec::new(),
        users,
        actors,
        handler_of,
        levels,
        dispatcher: u("dispatcher"),
        leader: u("leader"),
        inspector: u("inspector"),
    })
}

/// The micro-grids (units with boundaries) of a street: each grid cell cut into strips.
pub fn micro_grids(w: &World) -> Result<Vec<Org>, DomainError> {
    let mut out = Vec::new();
    let mut k = 0;
    for c in &w.communities {
        for g in &c.grids {
            let strips = MICRO_STRIPS + usize::from(k < SIXTH_STRIP_GRIDS);
            k += 1;
            let [sw, se, ne, _] = g.quad;
            let width = (se.0 - sw.0) / strips as f64;
            for i in 0..strips {
                let x0 = round6(sw.0 + i as f64 * width);
                let x1 = if i + 1 == strips {
                    se.0
                } else {
                    round6(sw.0 + (i + 1) as f64 * width)
                };
                let mut u = child(
                    &g.org,
                    format!("{}{:02}", g.org.code, i + 1),
                    format!("{}第{}微网格", g.org.name, i + 1),
                    Level::Unit,
                )?;
                u.boundary = Some(polygon(&[(x0, sw.1), (x1, sw.1), (x1, ne.1), (x0, ne.1)]));
                out.push(u);
            }
        }
    }
    Ok(out)
}

/// A random point (lat, lng) well inside a random grid of a province of `streets` streets:
/// intake with a location, which the server routes to that grid.
pub fn random_location(streets: usize, rng: &mut impl Rng) -> (f64, f64) {
    let s = rng.random_range(0..streets);
    let k = rng.random_range(0..GRIDS_PER_STREET);
    let (sx, sy) = (s % PROVINCE_COLS, s / PROVINCE_COLS);
    let [sw, _, ne, _] = cell(
        sx * STREET_COLS + k % STREET_COLS,
        sy * STREET_ROWS + k / STREET_COLS,
    );
    let lng = sw.0 + (ne.0 - sw.0) * rng.random_range(0.1..0.9);
    let lat = sw.1 + (ne.1 - sw.1) * rng.random_range(0.1..0.9);
    (round6(lat), round6(lng))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_street_has_85_grids_and_its_people() {
        let p = build(3, 7).unwrap();
        assert_eq!(p.grids(), 255);
        for w in &p.streets {
            let grids: usize = w.communities.iter().map(|c| c.grids.len()).sum();
            assert_eq!(grids, GRIDS_PER_STREET);
            for name in [&w.dispatcher, &w.leader, &w.inspector] {
                assert!(w.actor(name).is_ok());
            }
            for c in &w.communities {
                assert!(w.actor(&c.volunteer).is_ok());
                for g in &c.grids {
                    assert!(w.handler_of.contains_key(&g.org.code));
                }
            }
            let micro = micro_grids(w).unwrap();
            assert_eq!(micro.len(), GRIDS_PER_STREET * 5 + SIXTH_STRIP_GRIDS);
        }
        let codes: std::collections::HashSet<&str> = p
            .streets
            .iter()
            .flat_map(|w| w.orgs.iter().map(|o| o.code.as_str()))
            .collect();
        let total: usize = p.streets.iter().map(|w| w.orgs.len()).sum();
        assert_eq!(codes.len(), total, "codes are unique");
    }
}
