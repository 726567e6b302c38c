"""The SQL of the build. Placeholders in braces are composed with psycopg's ``sql``
module (identifiers quoted by ``sql.Identifier``), never by text substitution.

Rows the build cannot use are flagged per row, here in SQL, so one bad row never aborts
the build: text jsonb cannot read (``invalid_json``: not JSON, a NUL escape, nesting
beyond PostgreSQL's stack), missing keys, object ids that are not ZTF's, a time outside
1858–2100 (``bad_time``: a jd of 1e8, an event_time of 'infinity'), a ``fink`` document
nested deeper than ``MAX_DEPTH`` (``too_deep``), duplicate candids.
"""

from __future__ import annotations

ZTF_OBJECT_ID = r"^ZTF[0-9]{2}[a-z]{7}$"
#: Julian dates the build accepts: 1858-11-17 (MJD 0) to 2100-01-01.
JD_RANGE = (2400000.5, 2488069.5)
#: Deepest nesting of a row's ``fink`` document that is passed on verbatim.
MAX_DEPTH = 64


def number(field: str, to: str = "float8") -> str:
    """SQL for a JSON value as a number, or NULL when it is not a (representable) number."""
    return (f"CASE WHEN jsonb_typeof(x.{field}) = 'number' AND abs(x.{field}::numeric) < 1e9 "
            f"THEN x.{field}::numeric::{to} END")


#: One JSON parse per row (jsonb_to_record); numeric keys are taken as jsonb so that a
#: string where a number belongs gives NULL instead of an error.
PARSE = f"""
CREATE TEMP TABLE tk_rows ON COMMIT DROP AS
SELECT r.*, r.jd IS NULL OR r.jd NOT BETWEEN {JD_RANGE[0]} AND {JD_RANGE[1]} AS bad_time
FROM (
    SELECT e.id, e.longitude AS ra, e.latitude AS dec,
           {{bad_json}} AS bad_json,
           x.object_id, x.candid, x.classification AS label,
           COALESCE({number("jd")},
                    CASE WHEN isfinite(e.event_time)
                         THEN extract(epoch FROM e.event_time)::float8 / 86400.0 + 2440587.5 END) AS jd,
           COALESCE(e.magnitude, {number("magpsf")}) AS mag,
           round({number("filter_id")})::int AS filter_id,
           round({number("n_detections")})::int AS ndet,
           COALESCE(x.fink->>'i:isdiffpos', 't') NOT IN ('f', '0', 'false') AS positive,
           COALESCE(jsonb_path_exists(x.fink, 'lax $.**{{{{{MAX_DEPTH} to last}}}}'), false) AS too_deep
    FROM {{table}} e
    CROSS JOIN LATERAL jsonb_to_record({{document}}) AS x(object_id text, candid text, classification text,
        jd jsonb, magpsf jsonb, filter_id jsonb, n_detections jsonb, fink jsonb)
    WHERE e.source = %(source)s
) r
"""

_USABLE = "NOT bad_json AND object_id IS NOT NULL AND candid IS NOT NULL AND label IS NOT NULL"

CLASSIFY = f"""
CREATE TEMP TABLE tk_valid ON COMMIT DROP AS
SELECT DISTINCT ON (candid) *                             -- a candid stored twice counts once
FROM tk_rows
WHERE {_USABLE} AND object_id ~ %(pattern)s AND NOT bad_time AND NOT too_deep
ORDER BY candid, id;
CREATE TEMP TABLE tk_in ON COMMIT DROP AS
SELECT v.*, CASE v.label {{rank_cases}} END AS rank
FROM tk_valid v WHERE v.label = ANY(%(labels)s);
ANALYZE tk_in
"""

SKIPPED = f"""
SELECT count(*) FILTER (WHERE bad_json),
       count(*) FILTER (WHERE NOT bad_json AND NOT ({_USABLE})),
       count(*) FILTER (WHERE {_USABLE} AND object_id !~ %(pattern)s),
       count(*) FILTER (WHERE {_USABLE} AND object_id ~ %(pattern)s AND bad_time),
       count(*) FILTER (WHERE {_USABLE} AND object_id ~ %(pattern)s AND NOT bad_time AND too_deep),
       count(*) FILTER (WHERE {_USABLE} AND object_id ~ %(pattern)s AND NOT bad_time AND NOT too_deep),
       count(*),
       (SELECT count(*) FROM tk_valid)
FROM tk_rows
"""

SCOPE = """
WITH per_object AS (SELECT object_id, array_agg(DISTINCT label) AS labels FROM tk_in GROUP BY object_id)
SELECT label, count(*), (SELECT count(*) FROM per_object WHERE cardinality(labels) > 1)
FROM per_object, unnest(labels) AS label
GROUP BY label
"""

PER_OBJECT = """
WITH stats AS (
    SELECT object_id, count(*) AS n_alerts, max(ndet) AS max_n_detections,
           min(jd) AS first_jd, max(jd) AS last_jd,
           min(mag) FILTER (WHERE positive) AS mag_brightest,
           max(mag) FILTER (WHERE positive) AS mag_faintest,
           (array_agg(mag ORDER BY jd DESC, candid DESC) FILTER (WHERE positive))[1] AS mag_latest,
           (array_agg(ra ORDER BY jd DESC, candid DESC))[1] AS ra_latest,
           (array_agg(dec ORDER BY jd DESC, candid DESC))[1] AS dec_latest,
           array_agg(DISTINCT filter_id) FILTER (WHERE filter_id IS NOT NULL) AS filters,
           max(rank) AS best_rank
    FROM tk_in GROUP BY object_id
), scatter AS (
    -- RA offsets from the latest detection wrapped into [-180, 180): correct across 0/360.
    SELECT i.object_id,
           stddev_pop((i.ra - s.ra_latest + 540) - 360 * floor((i.ra - s.ra_latest + 540) / 360) - 180)
             * cos(radians(avg(i.dec))) * 3600 AS ra_scatter_arcsec,
           stddev_pop(i.dec) * 3600 AS dec_scatter_arcsec
    FROM tk_in i JOIN stats s USING (object_id) GROUP BY i.object_id
), labels AS (
    SELECT object_id, jsonb_object_agg(label, n) AS labels
    FROM (SELECT object_id, label, count(*) AS n FROM tk_in GROUP BY object_id, label) per_label
    GROUP BY object_id
), chosen AS (
    SELECT DISTINCT ON (i.object_id) i.object_id, i.label, i.id
    FROM tk_in i JOIN stats s ON s.object_id = i.object_id AND i.rank = s.best_rank
    ORDER BY i.object_id, i.jd DESC, i.candid DESC
)
SELECT s.object_id, c.label, l.labels, s.n_alerts, s.max_n_detections, s.first_jd, s.last_jd,
       s.mag_brightest, s.mag_faintest, s.mag_latest, s.ra_latest, s.dec_latest, s.filters,
       x.ra_scatter_arcsec, x.dec_scatter_arcsec, (e.extra_json::jsonb)->'fink' AS fink
FROM stats s
JOIN scatter x USING (object_id)
JOIN labels l USING (object_id)
JOIN chosen c USING (object_id)
JOIN {table} e ON e.id = c.id
ORDER BY s.object_id
"""
