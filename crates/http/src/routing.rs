//! Routing a reported location to the org responsible for that spot: the deepest org whose
//! boundary contains the point (a grid, else a community, else a street).

use gridloop_domain::case::Location;
use gridloop_domain::geo::Boundary;
use gridloop_domain::org::{OrgRef, depth};
use gridloop_store::{Result, Store};

pub struct Router {
    /// Sorted deepest first, so the first hit is the most specific org.
    entries: Vec<(Boundary, OrgRef)>,
}

impl Router {
    pub async fn load(store: &dyn Store) -> Result<Router> {
        let mut entries: Vec<(Boundary, OrgRef)> = store
            .orgs_with_boundary()
            .await?
            .into_iter()
            .filter_map(|o| Some((Boundary::from_geojson(o.boundary.as_ref()?)?, o.as_ref())))
            .collect();
        entries.sort_by_key(|(_, o)| std::cmp::Reverse(depth(&o.path)));
        Ok(Router { entries })
    }

    pub fn locate(&self, p: Location) -> Option<&OrgRef> {
        self.entries
            .iter()
            .find(|(b, _)| b.contains(p))
            .map(|(_, o)| o)
    }
}
