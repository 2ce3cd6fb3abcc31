//! Importing part of the org tree from a GeoJSON FeatureCollection: parsing, validation and
//! ordering, with no I/O. The caller looks up the orgs the file refers to
//! ([`ParsedImport::codes_to_look_up`]), hands them to [`ParsedImport::plan`], and writes the
//! planned orgs in order (parents before children) if there was no problem at all.
//!
//! Each feature is one org:
//!
//! ```json
//! {"type": "Feature",
//!  "properties": {"code": "33078200100101A", "name": "幸福小区1幢", "level": "unit",
//!                 "parent": "33078200100101", "crs": "gcj02"},
//!  "geometry": {"type": "Polygon", "coordinates": [[[120.05, 29.28], …]]}}
//! ```
//!
//! `parent` is left out (or null) only for the root. `geometry` is a Polygon or MultiPolygon, or
//! null for an org without a boundary (which then has none, even if it had one before).
//! Coordinates are WGS-84 unless a `crs` (`gcj02`, `bd09`, `wgs84`, `cgcs2000`, or a GeoJSON
//! 2008 named-CRS object) is given on the collection or on the feature (as a member or as a
//! property; the feature's wins); they are stored in WGS-84. Features may come in any order.
//! An existing org may be renamed or get a new boundary, but not moved or given another level:
//! its descendants' paths would go stale.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Value, json};

use crate::case::Location;
use crate::geo::{Boundary, Crs};
use crate::org::{Level, Org, depth, validate_code};

/// The longest org name accepted.
pub const MAX_NAME_CHARS: usize = 100;
/// Rings with more vertices than this are not checked for self-intersection (the check is
/// quadratic); their bounding boxes and closure still are.
pub const MAX_CHECKED_RING: usize = 512;

/// What is wrong with one feature (`index` into `features`, 0-based) or with the whole file
/// (`index` absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportProblem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub reason: String,
}

impl ImportProblem {
    fn file(reason: impl Into<String>) -> Self {
        ImportProblem {
            index: None,
            code: None,
            reason: reason.into(),
        }
    }

    fn at(index: usize, code: Option<&str>, reason: impl Into<String>) -> Self {
        ImportProblem {
            index: Some(index),
            code: code.map(str::to_string),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ImportProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.index, &self.code) {
            (Some(i), Some(c)) => write!(f, "feature #{i} ({c}): {}", self.reason),
            (Some(i), None) => write!(f, "feature #{i}: {}", self.reason),
            (None, _) => write!(f, "{}", self.reason),
        }
    }
}

/// A feature that parsed; its parent is not resolved yet.
#[derive(Debug, Clone)]
struct Feature {
    index: usize,
    code: String,
    name: String,
    level: Level,
    parent: Option<String>,
    /// Normalised WGS-84 geometry.
    boundary: Option<Value>,
}

/// A parsed file: the features that parsed, and the problems found so far.
#[derive(Debug)]
pub struct ParsedImport {
    features: Vec<Feature>,
    problems: Vec<ImportProblem>,
    /// Codes of features that did not parse, with their index: children name them.
    bad: HashMap<String, usize>,
    total: usize,
}

/// The orgs to write, parents before children.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    pub orgs: Vec<Org>,
    /// Orgs that did not exist before.
    pub created: usize,
    /// Orgs that existed (renamed or re-bounded).
    pub updated: usize,
    /// Orgs that carry a boundary after the import.
    pub with_boundary: usize,
}

/// Parses a FeatureCollection. Never fails: problems are collected for [`ParsedImport::plan`].
pub fn parse(doc: &Value) -> ParsedImport {
    let mut out = ParsedImport {
        features: Vec::new(),
        problems: Vec::new(),
        bad: HashMap::new(),
        total: 0,
    };
    if doc.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        out.problems.push(ImportProblem::file(
            "the file must be a GeoJSON FeatureCollection",
        ));
        return out;
    }
    let Some(features) = doc.get("features").and_then(Value::as_array) else {
        out.problems
            .push(ImportProblem::file("`features` must be an array"));
        return out;
    };
    out.total = features.len();
    let file_crs = match doc.get("crs") {
        None | Some(Value::Null) => Crs::Wgs84,
        Some(v) => match parse_crs(v) {
            Ok(c) => c,
            Err(e) => {
                out.problems.push(ImportProblem::file(format!("crs: {e}")));
                return out;
            }
        },
    };
    for (i, f) in features.iter().enumerate() {
        match parse_feature(f, file_crs) {
            Ok(feature) => out.features.push(Feature {
                index: i,
                ..feature
            }),
            Err((code, reasons)) => {
                out.problems.extend(
                    reasons
                        .into_iter()
                        .map(|r| ImportProblem::at(i, code.as_deref(), r)),
                );
                if let Some(code) = code {
                    out.bad.entry(code).or_insert(i);
                }
            }
        }
    }
    out
}

impl ParsedImport {
    /// How many features the file has.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The codes the plan needs looked up in the store: every feature's own code (is it new?)
    /// and every parent named (where does it sit?). Sorted, without repeats.
    pub fn codes_to_look_up(&self) -> Vec<String> {
        let mut codes: Vec<String> = self
            .features
            .iter()
            .flat_map(|f| std::iter::once(&f.code).chain(f.parent.as_ref()))
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        codes.sort();
        codes
    }

    /// Resolves parents (in the file first, then among `existing`), checks the level rules and
    /// what may change on existing orgs, and orders the orgs parents first. With a `scope`
    /// (an org path), every org must land inside that subtree, and existing orgs outside it
    /// are not used as parents. Every problem of every feature is reported, sorted by index.
    pub fn plan(
        self,
        existing: &HashMap<String, Org>,
        scope: Option<&str>,
    ) -> Result<ImportPlan, Vec<ImportProblem>> {
        let ParsedImport {
            features,
            mut problems,
            bad,
            total: _,
        } = self;
        let in_scope = |path: &str| scope.is_none_or(|s| path.starts_with(s));

        // Repeated codes: the first occurrence stays, later ones are problems.
        let mut by_code: HashMap<&str, usize> = HashMap::new();
        let mut repeated = vec![false; features.len()];
        for (k, f) in features.iter().enumerate() {
            if let Some(&first) = by_code.get(f.code.as_str()) {
                repeated[k] = true;
                problems.push(ImportProblem::at(
                    f.index,
                    Some(&f.code),
                    format!(
                        "code {} appears again (first in feature #{})",
                        f.code, features[first].index
                    ),
                ));
            } else {
                by_code.insert(&f.code, k);
            }
        }

        let mut state: Vec<State> = repeated
            .iter()
            .map(|&r| if r { State::Done(None) } else { State::Todo })
            .collect();

        for start in 0..features.len() {
            if !matches!(state[start], State::Todo) {
                continue;
            }
            // Walk up through parents in the file until a resolved one, one outside the file,
            // the root, or a loop.
            let mut chain = vec![];
            let mut cur = start;
            loop {
                match state[cur] {
                    State::Done(_) => break,
                    State::OnChain => {
                        let from = chain.iter().position(|&k| k == cur).unwrap_or(0);
                        for &k in &chain[from..] {
                            let f: &Feature = &features[k];
                            problems.push(ImportProblem::at(
                                f.index,
                                Some(&f.code),
                                "its parents loop back to it",
                            ));
                            state[k] = State::Done(None);
                        }
                        break;
                    }
                    State::Todo => {
                        state[cur] = State::OnChain;
                        chain.push(cur);
                        match features[cur].parent.as_deref().and_then(|p| by_code.get(p)) {
                            Some(&up) => cur = up,
                            None => break,
                        }
                    }
                }
            }
            // Resolve from the top of the chain down.
            for &k in chain.iter().rev() {
                if matches!(state[k], State::Done(_)) {
                    continue;
                }
                let f = &features[k];
                let resolved = resolve(f, &features, &by_code, &bad, &state, existing, scope);
                let resolved = resolved.and_then(|org| {
                    if !in_scope(&org.path) {
                        return Err(format!("{} is outside your jurisdiction", org.path));
                    }
                    if let Some(old) = existing.get(&org.code) {
                        if !in_scope(&old.path) {
                            return Err(format!("code {} is already in use", org.code));
                        }
                        if old.level != org.level {
                            return Err(format!(
                                "{} is already a {}; an import cannot change its level",
                                org.code,
                                old.level.as_str()
                            ));
                        }
                        if old.path != org.path {
                            return Err(format!(
                                "{} already hangs under {}; an import cannot move an org",
                                org.code,
                                old.parent.as_deref().unwrap_or("nothing (it is a root)")
                            ));
                        }
                    }
                    Ok(org)
                });
                state[k] = match resolved {
                    Ok(org) => State::Done(Some(org)),
                    Err(reason) => {
                        problems.push(ImportProblem::at(f.index, Some(&f.code), reason));
                        State::Done(None)
                    }
                };
            }
        }

        if !problems.is_empty() {
            problems.sort_by_key(|p| p.index.map_or(0, |i| i + 1));
            return Err(problems);
        }
        let mut orgs: Vec<(usize, Org)> = state
            .into_iter()
            .zip(&features)
            .filter_map(|(s, f)| match s {
                State::Done(Some(o)) => Some((f.index, o)),
                _ => None,
            })
            .collect();
        orgs.sort_by_key(|(i, o)| (depth(&o.path), *i));
        let created = orgs
            .iter()
            .filter(|(_, o)| !existing.contains_key(&o.code))
            .count();
        let with_boundary = orgs.iter().filter(|(_, o)| o.boundary.is_some()).count();
        Ok(ImportPlan {
            created,
            updated: orgs.len() - created,
            with_boundary,
            orgs: orgs.into_iter().map(|(_, o)| o).collect(),
        })
    }
}

/// Where a feature is in [`ParsedImport::plan`].
enum State {
    Todo,
    OnChain,
    /// Resolved: the org, or `None` when the feature has a problem.
    Done(Option<Org>),
}

/// Builds a feature's org from its parent: in the file (resolved already, since chains are
/// resolved top down), else an existing org in scope.
fn resolve(
    f: &Feature,
    features: &[Feature],
    by_code: &HashMap<&str, usize>,
    bad: &HashMap<String, usize>,
    state: &[State],
    existing: &HashMap<String, Org>,
    scope: Option<&str>,
) -> Result<Org, String> {
    let parent: Option<&Org> = match f.parent.as_deref() {
        None => None,
        Some(p) => match by_code.get(p) {
            Some(&k) => match &state[k] {
                State::Done(Some(org)) => Some(org),
                _ => {
                    return Err(format!(
                        "its parent {p} (feature #{}) has problems",
                        features[k].index
                    ));
                }
            },
            None if bad.contains_key(p) => {
                return Err(format!("its parent {p} (feature #{}) has problems", bad[p]));
            }
            None => match existing.get(p) {
                Some(org) if scope.is_none_or(|s| org.path.starts_with(s)) => Some(org),
                _ => return Err(format!("unknown parent org {p}")),
            },
        },
    };
    let path = Org::child_path(parent, &f.code, f.level).map_err(|e| match e {
        crate::DomainError::Invalid { message, .. } => message,
        other => other.to_string(),
    })?;
    Ok(Org {
        code: f.code.clone(),
        name: f.name.clone(),
        level: f.level,
        parent: f.parent.clone(),
        path,
        boundary: f.boundary.clone(),
    })
}

/// A `crs` member: a name (`gcj02`, `bd09`, `EPSG:4326`…) or a GeoJSON 2008 named CRS
/// (`{"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}`).
fn parse_crs(v: &Value) -> Result<Crs, String> {
    let name = match v {
        Value::String(s) => s.as_str(),
        Value::Object(_) => v
            .pointer("/properties/name")
            .and_then(Value::as_str)
            .ok_or("a CRS object needs properties.name")?,
        _ => return Err("must be a name such as \"gcj02\"".into()),
    };
    let last = name.rsplit(':').next().unwrap_or(name);
    let found = if last.eq_ignore_ascii_case("CRS84") {
        Some(Crs::Wgs84)
    } else if name.contains(':') && last.bytes().all(|b| b.is_ascii_digit()) {
        Crs::parse(&format!("epsg{last}"))
    } else {
        Crs::parse(name)
    };
    found.ok_or_else(|| {
        format!("unknown coordinate system {name:?} (wgs84, cgcs2000, gcj02 or bd09)")
    })
}

/// Parses one feature, or gives its code (when readable) and every reason it is bad.
fn parse_feature(f: &Value, file_crs: Crs) -> Result<Feature, (Option<String>, Vec<String>)> {
    let mut reasons = Vec::new();
    if f.get("type").and_then(Value::as_str) != Some("Feature") {
        return Err((None, vec!["not a GeoJSON Feature".into()]));
    }
    let empty = serde_json::Map::new();
    let props = match f.get("properties") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => &empty,
        Some(_) => return Err((None, vec!["properties must be an object".into()])),
    };
    let code = match props.get("code") {
        Some(Value::String(c)) => {
            if let Err(e) = validate_code(c) {
                reasons.push(e.to_string());
            }
            Some(c.clone())
        }
        // Numeric codes are common in spreadsheets turned GeoJSON; take their digits.
        Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
        None | Some(Value::Null) => {
            reasons.push("properties.code is missing".into());
            None
        }
        Some(_) => {
            reasons.push("properties.code must be a string".into());
            None
        }
    };
    let name = match props.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.chars().count() <= MAX_NAME_CHARS => Some(n.to_string()),
        Some(n) if !n.is_empty() => {
            reasons.push(format!(
                "properties.name is longer than {MAX_NAME_CHARS} characters"
            ));
            None
        }
        _ => {
            reasons.push("properties.name is missing or empty".into());
            None
        }
    };
    let level = match props.get("level").and_then(Value::as_str) {
        Some(l) => match Level::parse(l) {
            Some(level) => Some(level),
            None => {
                reasons.push(format!(
                    "unknown level {l:?}: city, street, community, grid, unit or department"
                ));
                None
            }
        },
        None => {
            reasons.push("properties.level is missing".into());
            None
        }
    };
    let parent = match props.get("parent") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.is_empty() => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
        Some(_) => {
            reasons.push("properties.parent must be a string".into());
            None
        }
    };
    let crs = match f
        .get("crs")
        .filter(|v| !v.is_null())
        .or_else(|| props.get("crs").filter(|v| !v.is_null()))
    {
        None => Some(file_crs),
        Some(v) => match parse_crs(v) {
            Ok(c) => Some(c),
            Err(e) => {
                reasons.push(format!("crs: {e}"));
                None
            }
        },
    };
    let boundary = match (f.get("geometry"), crs) {
        (None | Some(Value::Null), _) => None,
        (Some(g), Some(crs)) => match geometry(g, crs) {
            Ok(b) => Some(b),
            Err(e) => {
                reasons.push(format!("geometry: {e}"));
                None
            }
        },
        (Some(_), None) => None,
    };
    match (code, name, level) {
        (Some(code), Some(name), Some(level)) if reasons.is_empty() => Ok(Feature {
            index: 0,
            code,
            name,
            level,
            parent,
            boundary,
        }),
        (code, ..) => Err((code, reasons)),
    }
}

/// Checks a Polygon/MultiPolygon and returns it in WGS-84, as `{type, coordinates}` only.
fn geometry(g: &Value, crs: Crs) -> Result<Value, String> {
    let kind = g
        .get("type")
        .and_then(Value::as_str)
        .ok_or("needs a type")?;
    let coords = g.get("coordinates").ok_or("needs coordinates")?;
    let polygons: Vec<&Value> = match kind {
        "Polygon" => vec![coords],
        "MultiPolygon" => {
            let list = coords
                .as_array()
                .ok_or("MultiPolygon coordinates must be an array of polygons")?;
            if list.is_empty() {
                return Err("a MultiPolygon needs at least one polygon".into());
            }
            list.iter().collect()
        }
        other => return Err(format!("must be a Polygon or MultiPolygon, not a {other}")),
    };
    let mut out = Vec::with_capacity(polygons.len());
    for (pi, poly) in polygons.iter().enumerate() {
        let where_ = |ri: usize| {
            let ring = if ri == 0 {
                "outer ring".to_string()
            } else {
                format!("hole {ri}")
            };
            if kind == "MultiPolygon" {
                format!("polygon {pi}, {ring}")
            } else {
                ring
            }
        };
        let rings = poly
            .as_array()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| format!("polygon {pi} needs at least an outer ring"))?;
        let mut out_rings = Vec::with_capacity(rings.len());
        for (ri, ring) in rings.iter().enumerate() {
            let pts = ring_points(ring).map_err(|e| format!("{}: {e}", where_(ri)))?;
            check_ring(&pts).map_err(|e| format!("{}: {e}", where_(ri)))?;
            let pts: Vec<Value> = pts
                .into_iter()
                .map(|(x, y)| {
                    if crs == Crs::Wgs84 || crs == Crs::Cgcs2000 {
                        json!([x, y])
                    } else {
                        let w = crs.to_wgs84(Location { lat: y, lng: x });
                        json!([round8(w.lng), round8(w.lat)])
                    }
                })
                .collect();
            out_rings.push(Value::Array(pts));
        }
        out.push(Value::Array(out_rings));
    }
    let geometry = if kind == "Polygon" {
        json!({"type": "Polygon", "coordinates": out.pop()})
    } else {
        json!({"type": "MultiPolygon", "coordinates": out})
    };
    Boundary::from_geojson(&geometry).ok_or("not a valid Polygon or MultiPolygon")?;
    Ok(geometry)
}

fn round8(v: f64) -> f64 {
    (v * 1e8).round() / 1e8
}

fn ring_points(ring: &Value) -> Result<Vec<(f64, f64)>, String> {
    let list = ring
        .as_array()
        .ok_or("a ring must be an array of positions")?;
    list.iter()
        .map(|pt| {
            let (x, y) = match pt.as_array().map(Vec::as_slice) {
                Some([x, y, ..]) => (x.as_f64(), y.as_f64()),
                _ => (None, None),
            };
            match (x, y) {
                (Some(x), Some(y))
                    if (-180.0..=180.0).contains(&x) && (-90.0..=90.0).contains(&y) =>
                {
                    Ok((x, y))
                }
                (Some(_), Some(_)) => Err(format!(
                    "position {pt} is out of range ([longitude, latitude] in degrees)"
                )),
                _ => Err(format!("position {pt} must be [longitude, latitude]")),
            }
        })
        .collect()
}

/// A ring: at least 4 positions, closed, with an area, not crossing itself.
fn check_ring(pts: &[(f64, f64)]) -> Result<(), String> {
    if pts.len() < 4 {
        return Err(format!(
            "has {} positions; a ring needs at least 4",
            pts.len()
        ));
    }
    if pts.first() != pts.last() {
        return Err("is not closed (the last position must repeat the first)".into());
    }
    let twice_area: f64 = pts
        .windows(2)
        .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
        .sum();
    if twice_area.abs() < 1e-18 {
        return Err("has no area".into());
    }
    if pts.len() <= MAX_CHECKED_RING + 1 {
        let n = pts.len() - 1;
        for i in 0..n {
            for j in i + 2..n {
                if i == 0 && j == n - 1 {
                    continue; // adjacent through the closing position
                }
                if segments_cross(pts[i], pts[i + 1], pts[j], pts[j + 1]) {
                    return Err(format!(
                        "crosses itself (edge {i}–{} and edge {j}–{})",
                        i + 1,
                        j + 1
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Whether two segments cross at a point inside both (touching ends do not count).
fn segments_cross(a: (f64, f64), b: (f64, f64), c: (f64, f64), d: (f64, f64)) -> bool {
    fn orient(p: (f64, f64), q: (f64, f64), r: (f64, f64)) -> f64 {
        (q.0 - p.0) * (r.1 - p.1) - (q.1 - p.1) * (r.0 - p.0)
    }
    let (d1, d2) = (orient(c, d, a), orient(c, d, b));
    let (d3, d4) = (orient(a, b, c), orient(a, b, d));
    ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: f64, y: f64, s: f64) -> Value {
        json!({"type": "Polygon", "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]})
    }

    fn feature(code: &str, level: &str, parent: Option<&str>, geometry: Value) -> Value {
        json!({"type": "Feature",
               "properties": {"code": code, "name": format!("{code} name"), "level": level, "parent": parent},
               "geometry": geometry})
    }

    fn collection(features: Vec<Value>) -> Value {
        json!({"type": "FeatureCollection", "features": features})
    }

    fn street() -> Org {
        Org {
            code: "S".into(),
            name: "street".into(),
            level: Level::Street,
            parent: Some("C".into()),
            path: "/C/S/".into(),
            boundary: None,
        }
    }

    fn existing(orgs: &[Org]) -> HashMap<String, Org> {
        orgs.iter().map(|o| (o.code.clone(), o.clone())).collect()
    }

    #[test]
    fn any_order_parents_first_against_the_store() {
        let doc = collection(vec![
            feature("U1", "unit", Some("G1"), square(120.0, 29.0, 0.001)),
            feature("G1", "grid", Some("M1"), square(120.0, 29.0, 0.01)),
            feature("M1", "community", Some("S"), Value::Null),
        ]);
        let parsed = parse(&doc);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed.codes_to_look_up(), ["G1", "M1", "S", "U1"]);
        let plan = parsed.plan(&existing(&[street()]), None).unwrap();
        let codes: Vec<&str> = plan.orgs.iter().map(|o| o.code.as_str()).collect();
        assert_eq!(codes, ["M1", "G1", "U1"]);
        assert_eq!(plan.orgs[2].path, "/C/S/M1/G1/U1/");
        assert_eq!((plan.created, plan.updated, plan.with_boundary), (3, 0, 2));
        assert!(plan.orgs[0].boundary.is_none());
    }

    #[test]
    fn every_problem_with_its_index() {
        let bowtie =
            json!({"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 1], [0, 0]]]});
        let open = json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]});
        let doc = collection(vec![
            feature("G1", "grid", Some("S"), square(120.0, 29.0, 0.01)), // grid under a street
            feature("M1", "community", Some("S"), bowtie),
            feature("M2", "community", Some("NOPE"), Value::Null),
            feature("M3", "community", Some("S"), open),
            feature("M4", "hamlet", Some("S"), Value::Null),
            feature("G2", "grid", Some("M1"), Value::Null), // parent is bad
            feature(
                "M5",
                "community",
                Some("S"),
                json!({"type": "Point", "coordinates": [0, 0]}),
            ),
            feature("M6", "community", Some("S"), square(200.0, 29.0, 1.0)),
            feature("M7", "community", Some("S"), Value::Null),
            feature("M7", "community", Some("S"), Value::Null),
            json!({"type": "Feature", "properties": {"name": "x", "level": "grid"}, "geometry": null}),
            feature("bad code", "community", Some("S"), Value::Null),
            feature("A", "grid", Some("B"), Value::Null),
            feature("B", "grid", Some("A"), Value::Null),
        ]);
        let problems = parse(&doc).plan(&existing(&[street()]), None).unwrap_err();
        let at: Vec<usize> = problems.iter().filter_map(|p| p.index).collect();
        assert_eq!(
            at,
            [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13],
            "{problems:#?}"
        );
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text[0].contains("cannot hang under a street"),
            "{}",
            text[0]
        );
        assert!(text[1].contains("crosses itself"), "{}", text[1]);
        assert!(text[2].contains("unknown parent org NOPE"), "{}", text[2]);
        assert!(text[3].contains("not closed"), "{}", text[3]);
        assert!(text[4].contains("unknown level"), "{}", text[4]);
        assert!(
            text[5].contains("parent M1 (feature #1) has problems"),
            "{}",
            text[5]
        );
        assert!(text[6].contains("not a Point"), "{}", text[6]);
        assert!(text[7].contains("out of range"), "{}", text[7]);
        assert!(text[8].contains("appears again"), "{}", text[8]);
        assert!(text[9].contains("code is missing"), "{}", text[9]);
        assert!(text[11].contains("loop"), "{}", text[11]);
        assert!(text[12].contains("loop"), "{}", text[12]);
    }

    #[test]
    fn not_a_collection() {
        let p = parse(&json!({"type": "Feature"})).plan(&HashMap::new(), None);
        assert_eq!(p.unwrap_err()[0].index, None);
        let p = parse(&json!({"type": "FeatureCollection", "features": [], "crs": "mars"}));
        assert!(
            p.plan(&HashMap::new(), None).unwrap_err()[0]
                .reason
                .contains("mars")
        );
    }

    #[test]
    fn existing_orgs_may_change_name_and_boundary_only() {
        let grid = Org {
            code: "G1".into(),
            name: "old".into(),
            level: Level::Grid,
            parent: Some("M1".into()),
            path: "/C/S/M1/G1/".into(),
            boundary: None,
        };
        let community = Org {
            code: "M1".into(),
            name: "m".into(),
            level: Level::Community,
            parent: Some("S".into()),
            path: "/C/S/M1/".into(),
            boundary: None,
        };
        let store = existing(&[street(), community.clone(), grid]);
        let ok = parse(&collection(vec![feature(
            "G1",
            "grid",
            Some("M1"),
            square(120.0, 29.0, 0.01),
        )]))
        .plan(&store, None)
        .unwrap();
        assert_eq!((ok.created, ok.updated), (0, 1));
        assert_eq!(ok.orgs[0].name, "G1 name");
        let moved = parse(&collection(vec![
            feature("M2", "community", Some("S"), Value::Null),
            feature("G1", "grid", Some("M2"), Value::Null),
            feature("M1", "grid", Some("M2"), Value::Null),
        ]))
        .plan(&store, None)
        .unwrap_err();
        assert!(moved[0].reason.contains("cannot move"), "{moved:?}");
        assert!(
            moved[1].reason.contains("cannot change its level"),
            "{moved:?}"
        );
    }

    #[test]
    fn scope_keeps_an_admin_in_their_subtree() {
        let other = Org {
            code: "S2".into(),
            name: "s2".into(),
            level: Level::Street,
            parent: Some("C".into()),
            path: "/C/S2/".into(),
            boundary: None,
        };
        let taken = Org {
            code: "M9".into(),
            name: "m9".into(),
            level: Level::Community,
            parent: Some("S2".into()),
            path: "/C/S2/M9/".into(),
            boundary: None,
        };
        let store = existing(&[street(), other, taken]);
        let problems = parse(&collection(vec![
            feature("M1", "community", Some("S2"), Value::Null),
            feature("M9", "community", Some("S"), Value::Null),
            feature("X", "city", None, Value::Null),
            feature("M2", "community", Some("S"), Value::Null),
        ]))
        .plan(&store, Some("/C/S/"))
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].reason.contains("unknown parent org S2"));
        assert!(problems[1].reason.contains("already in use"));
        assert!(problems[2].reason.contains("outside your jurisdiction"));
    }

    #[test]
    fn gcj02_coordinates_are_stored_in_wgs84() {
        let wgs = Location {
            lat: 29.28,
            lng: 120.05,
        };
        let gcj = crate::geo::wgs84_to_gcj02(wgs);
        let s = 0.002;
        let mut f = feature(
            "G1",
            "grid",
            Some("M1"),
            square(gcj.lng - s / 2.0, gcj.lat - s / 2.0, s),
        );
        f["properties"]["crs"] = json!("gcj02");
        let m = feature("M1", "community", Some("S"), Value::Null);
        let plan = parse(&collection(vec![f, m]))
            .plan(&existing(&[street()]), None)
            .unwrap();
        let b = Boundary::from_geojson(plan.orgs[1].boundary.as_ref().unwrap()).unwrap();
        assert!(
            b.contains(wgs),
            "the WGS-84 point is inside the converted square"
        );
        assert!(
            !b.contains(gcj),
            "the raw GCJ-02 point is ~500 m off, outside"
        );
        // The whole file can say it too, as a GeoJSON 2008 named CRS.
        let mut doc = collection(vec![feature(
            "M1",
            "community",
            Some("S"),
            square(1.0, 1.0, 1.0),
        )]);
        doc["crs"] =
            json!({"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}});
        assert!(parse(&doc).plan(&existing(&[street()]), None).is_ok());
        doc["crs"] = json!("EPSG:4490");
        assert!(parse(&doc).plan(&existing(&[street()]), None).is_ok());
    }

    #[test]
    fn multipolygon_with_a_hole() {
        let g = json!({"type": "MultiPolygon", "coordinates": [
            [[[0, 0], [3, 0], [3, 3], [0, 3], [0, 0]], [[1, 1], [2, 1], [2, 2], [1, 2], [1, 1]]],
            [[[5, 5], [6, 5], [6, 6], [5, 6], [5, 5]]]
        ]});
        let plan = parse(&collection(vec![feature("M1", "community", Some("S"), g)]))
            .plan(&existing(&[street()]), None)
            .unwrap();
        assert_eq!(plan.with_boundary, 1);
        let bad = json!({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [0, 0]]]]});
        let p = parse(&collection(vec![feature(
            "M1",
            "community",
            Some("S"),
            bad,
        )]))
        .plan(&existing(&[street()]), None)
        .unwrap_err();
        assert!(p[0].reason.contains("polygon 0, outer ring"), "{p:?}");
    }
}
