-- A value that changes with every write to the rollups, read in the same snapshot as them:
-- a cached answer of a large stats read (a province's thousand children) is good while it
-- is unchanged. Random rather than counted, so that two databases (say, copies of one
-- file) that hold the same value also hold the same rollups.
CREATE TABLE rollup_generation (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    n INTEGER NOT NULL
);
INSERT INTO rollup_generation (singleton, n) VALUES (1, random());
