-- The analytics models' bookkeeping. The lake is the truth; these say what the models have read.
--
-- Every bronze file of the lake the analytics have seen, with the span of device times it holds,
-- so that a model rebuilding an hour reads only the files that have rows in it.
CREATE TABLE lake_files (
    key     TEXT PRIMARY KEY,
    date    DATE NOT NULL,
    size    BIGINT NOT NULL,
    rows    BIGINT NOT NULL,
    min_ts  TIMESTAMPTZ,
    max_ts  TIMESTAMPTZ,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX lake_files_date_idx ON lake_files (date);
CREATE INDEX lake_files_span_idx ON lake_files (min_ts, max_ts);

-- Each built partition of a model (silver hour, gold day) with the fingerprint of its inputs: a
-- partition is built again only when its inputs changed, so a re-run changes nothing.
CREATE TABLE analytics_builds (
    model    TEXT NOT NULL,
    part     TEXT NOT NULL,
    inputs   TEXT NOT NULL,
    built_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (model, part)
);
