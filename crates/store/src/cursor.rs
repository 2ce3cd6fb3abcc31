//! The page cursor of case lists, one format for every store: opaque to clients, `[~]id` for
//! newest first and `[~]value:id` for the other sorts (`none` for no deadline), where `~`
//! marks a list a store found sparse (a hint it may use on the next page; others ignore it).

use gridloop_domain::DomainError;

use crate::{CaseSort, StoreError};

/// The deadline sort key of a case without a deadline is this plus its id: after every real
/// deadline, and distinct, so that a cursor seeks straight to its place.
pub const NO_DEADLINE: i64 = 1 << 62;

/// A row's place in a sort order: the sort value (the id itself for newest first) and the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub value: i64,
    pub id: i64,
}

/// Where the next page starts, and whether the list turned out sparse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub after: SortKey,
    pub sparse: bool,
}

impl ListCursor {
    pub fn encode(&self, sort: CaseSort) -> String {
        let k = self.after;
        let mark = if self.sparse { "~" } else { "" };
        match sort {
            CaseSort::Newest => format!("{mark}{}", k.id),
            CaseSort::Deadline if k.value >= NO_DEADLINE => format!("{mark}none:{}", k.id),
            CaseSort::Deadline | CaseSort::Updated => format!("{mark}{}:{}", k.value, k.id),
        }
    }

    /// A cursor of a list in `sort` order; anything else is invalid input.
    pub fn decode(sort: CaseSort, s: &str) -> Result<ListCursor, StoreError> {
        let bad = || {
            StoreError::Domain(DomainError::invalid(
                "cursor",
                "not a cursor of this list; start again from the first page",
            ))
        };
        let int = |v: &str| v.parse::<i64>().map_err(|_| bad());
        let (sparse, s) = match s.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let after = match sort {
            CaseSort::Newest => {
                let id = int(s)?;
                SortKey { value: id, id }
            }
            CaseSort::Deadline | CaseSort::Updated => {
                let (value, id) = s.split_once(':').ok_or_else(bad)?;
                let value = match value {
                    "none" if sort == CaseSort::Deadline => NO_DEADLINE.saturating_add(int(id)?),
                    v => int(v)?,
                };
                SortKey {
                    value,
                    id: int(id)?,
                }
            }
        };
        Ok(ListCursor { after, sparse })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for (sort, value, id) in [
            (CaseSort::Newest, 7, 7),
            (CaseSort::Deadline, 1_700_000_000_000, 3),
            (CaseSort::Deadline, NO_DEADLINE + 9, 9),
            (CaseSort::Updated, -5, 1),
        ] {
            for sparse in [false, true] {
                let c = ListCursor {
                    after: SortKey { value, id },
                    sparse,
                };
                assert_eq!(ListCursor::decode(sort, &c.encode(sort)).unwrap(), c);
            }
        }
        assert!(ListCursor::decode(CaseSort::Newest, "x").is_err());
        assert!(ListCursor::decode(CaseSort::Newest, "~").is_err());
        assert!(ListCursor::decode(CaseSort::Updated, "none:1").is_err());
        assert!(ListCursor::decode(CaseSort::Deadline, "12").is_err());
    }
}
