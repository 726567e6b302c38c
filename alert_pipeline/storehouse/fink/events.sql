-- The generic events table the transient-kind builder reads (one row per Fink alert).
-- Other sources share the table; the builder reads only rows of its source
-- (default 'fink_transients'). The table name is configurable (--table): {table} and
-- {index} are filled in by transient_kind_builder.py (load-fink creates the table when it
-- is missing) with psycopg's sql.Identifier, so any valid name is quoted correctly.
--
--   latitude    Dec of the detection (degrees)          -- sky coordinates kept in the
--   longitude   RA of the detection (0-360 degrees)     -- geographic columns
--   magnitude   the alert's magpsf
--   event_time  the detection time
--   extra_json  TEXT holding a JSON object: object_id, candid, classification,
--               filter_id (1=g, 2=r, 3=i), n_detections (ZTF's cumulative ndethist),
--               jd, magpsf, sigmapsf, and fink (the Fink API row, verbatim).
--               Cast with extra_json::jsonb for any SQL on its keys.
CREATE TABLE IF NOT EXISTS {table} (
    id          BIGSERIAL PRIMARY KEY,
    source      TEXT NOT NULL,
    event_time  TIMESTAMPTZ NOT NULL,
    latitude    DOUBLE PRECISION,
    longitude   DOUBLE PRECISION,
    magnitude   DOUBLE PRECISION,
    extra_json  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (source);
