//! The jurisdiction tree: city → street → community → grid → unit, plus departments.
//!
//! Every org carries a materialized `path` of its ancestors' codes, `/330782/330782001/…/`, so
//! that "everything in this subtree" is one indexed range query on any store and the
//! ancestors of an org are known without a lookup.

use serde::{Deserialize, Serialize};

use crate::DomainError;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    City,
    Street,
    Community,
    Grid,
    Unit,
    Department,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::City,
        Level::Street,
        Level::Community,
        Level::Grid,
        Level::Unit,
        Level::Department,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::City => "city",
            Level::Street => "street",
            Level::Community => "community",
            Level::Grid => "grid",
            Level::Unit => "unit",
            Level::Department => "department",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub fn zh(self) -> &'static str {
        match self {
            Level::City => "市(县)",
            Level::Street => "镇街",
            Level::Community => "社区(村)",
            Level::Grid => "网格",
            Level::Unit => "单元",
            Level::Department => "部门",
        }
    }

    /// The levels a level may hang under. Departments live under a city or a street.
    pub fn allowed_parents(self) -> &'static [Level] {
        match self {
            Level::City => &[],
            Level::Street => &[Level::City],
            Level::Community => &[Level::Street],
            Level::Grid => &[Level::Community],
            Level::Unit => &[Level::Grid],
            Level::Department => &[Level::City, Level::Street],
        }
    }

    /// Orgs a case may be dispatched to (交办): territorial levels and departments.
    pub fn can_receive_dispatch(self) -> bool {
        matches!(
            self,
            Level::Street | Level::Community | Level::Grid | Level::Department
        )
    }
}

/// An org code. Territorial codes follow the digital-city-management convention: a 6-digit
/// division code (GB/T 2260), then 3 street, 3 community and 2–3 grid digits; units and
/// departments append their own digits or letters. Codes are ASCII letters, digits, `-`, `_`.
pub fn validate_code(code: &str) -> Result<(), DomainError> {
    if code.is_empty() || code.len() > 40 {
        return Err(DomainError::invalid(
            "code",
            "org code must be 1–40 characters",
        ));
    }
    if !code
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(DomainError::invalid(
            "code",
            "org code may contain only ASCII letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

/// What a case or a user needs to know about an org: its code and where it sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRef {
    pub code: String,
    pub path: String,
}

impl OrgRef {
    pub fn new(code: impl Into<String>, path: impl Into<String>) -> Self {
        OrgRef {
            code: code.into(),
            path: path.into(),
        }
    }

    /// The parent, derived from the path; `None` at the root.
    pub fn parent(&self) -> Option<OrgRef> {
        parent_path(&self.path).map(|p| OrgRef {
            code: last_code(&p).to_string(),
            path: p,
        })
    }

    /// Whether `other` lies in this org's subtree (itself included).
    pub fn covers(&self, other_path: &str) -> bool {
        path_covers(&self.path, other_path)
    }
}

/// An org node as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Org {
    pub code: String,
    pub name: String,
    pub level: Level,
    pub parent: Option<String>,
    pub path: String,
    /// GeoJSON Polygon or MultiPolygon geometry (WGS-84), when the org has a boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<serde_json::Value>,
}

impl Org {
    pub fn as_ref(&self) -> OrgRef {
        OrgRef::new(&self.code, &self.path)
    }

    /// Builds a child's path. Checks the level rules of the tree.
    pub fn child_path(
        parent: Option<&Org>,
        code: &str,
        level: Level,
    ) -> Result<String, DomainError> {
        validate_code(code)?;
        match parent {
            None => Ok(format!("/{code}/")),
            Some(p) => {
                if !level.allowed_parents().contains(&p.level) {
                    return Err(DomainError::invalid(
                        "parent",
                        format!(
                            "a {} cannot hang under a {}",
                            level.as_str(),
                            p.level.as_str()
                        ),
                    ));
                }
                Ok(format!("{}{code}/", p.path))
            }
        }
    }
}

/// `/a/b/c/` covers `/a/b/c/` and `/a/b/c/d/…`.
pub fn path_covers(ancestor: &str, path: &str) -> bool {
    path.starts_with(ancestor)
}

/// The codes on a path, root first.
pub fn path_codes(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Every ancestor path of `path`, itself included, root first.
pub fn ancestor_paths(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut acc = String::from("/");
    for code in path_codes(path) {
        acc.push_str(code);
        acc.push('/');
        out.push(acc.clone());
    }
    out
}

pub fn parent_path(path: &str) -> Option<String> {
    let trimmed = path.strip_suffix('/')?;
    let idx = trimmed.rfind('/')?;
    if idx == 0 {
        return None;
    }
    Some(trimmed[..=idx].to_string())
}

pub fn last_code(path: &str) -> &str {
    path_codes(path).last().unwrap_or("")
}

/// The exclusive upper bound of a subtree's path range: every path in the subtree sorts in
/// `[path, subtree_end(path))`. `/` + 1 is `0`, so the bound is the path with its trailing
/// slash bumped. Lets a store answer subtree queries from a plain B-tree index.
pub fn subtree_end(path: &str) -> String {
    let mut s = path.strip_suffix('/').unwrap_or(path).to_string();
    s.push('0');
    s
}

/// The depth of a path: 1 for the root.
pub fn depth(path: &str) -> usize {
    path_codes(path).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = "/330782/330782001/330782001002/";
        assert_eq!(parent_path(p).as_deref(), Some("/330782/330782001/"));
        assert_eq!(parent_path("/330782/"), None);
        assert_eq!(ancestor_paths(p), vec!["/330782/", "/330782/330782001/", p]);
        assert_eq!(last_code(p), "330782001002");
        assert!(path_covers("/330782/330782001/", p));
        assert!(!path_covers("/330782/330782002/", p));
        let end = subtree_end("/330782/330782001/");
        assert!(p < end.as_str() && p >= "/330782/330782001/");
        assert!("/330782/3307820010/" >= end.as_str());
        let r = OrgRef::new("330782001002", p);
        assert_eq!(r.parent().unwrap().code, "330782001");
    }

    #[test]
    fn level_rules() {
        let city = Org {
            code: "330782".into(),
            name: "义乌市".into(),
            level: Level::City,
            parent: None,
            path: "/330782/".into(),
            boundary: None,
        };
        assert!(Org::child_path(Some(&city), "330782001", Level::Street).is_ok());
        assert!(Org::child_path(Some(&city), "330782001001", Level::Grid).is_err());
        assert!(Org::child_path(Some(&city), "bad code", Level::Street).is_err());
    }
}
