-- Gauges only for the orgs near a root: the roots and their children (issue #5), as with the
-- running totals (0014).
--
-- Every org on a case's area path kept its gauges (cases by status, overdue cases), so every
-- new case and every change of status rewrote the gauge rows of the case's community, grid
-- and unit: three scattered pages among ~5 million rows at ten million cases, in every
-- commit. A deeper org's gauges are now counted when read, from the index entries of its
-- area's cases (`cases_open_area_keys` for open cases, `cases_status_area_path` for closed
-- ones): a few hundred entries for a community (`rollups.rs`). Near a root an org holds a
-- large share of all cases, and its rows stay.
--
-- Near a root is by the org's path, as the reads decide: at most two codes.
DELETE FROM rollup_gauges
WHERE org NOT IN (
    SELECT code FROM orgs WHERE length(path) - length(replace(path, '/', '')) <= 3
);
