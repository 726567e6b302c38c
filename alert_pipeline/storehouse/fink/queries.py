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
SELECT r.*, r.jd IS NULL OR r.jd NOT BETWEEN {JD_RANGE[0]} AND {JD_RANGE[1]} AS bad_time,
       COALESCE(r.object_id ~ %(pattern)s, false) AS good_id    -- the regex once per row
FROM (
    SELECT e.id, e.longitude AS ra, e.latitude AS dec,
           {{bad_json}} AS bad_json,
           x.object_id, x.candid, x.classification AS label,
           COALESCE({number("jd")},
                    CASE WHEN isfinite(e.event_time)
                         THEN extract(epoch FROM e.event_time)::float8 / 86400.0 + 2440587.5 END) AS jd,
           COALESCE(e.magnitude, {number("magpsf")}) AS mag,
           {number("sigmapsf")} AS mag_err,
           CASE WHEN starts_with(x.classification, 'Solar System') THEN x.fink->>'i:ssnamenr' END AS ssnamenr,
           round({number("filter_id")})::int AS filter_id,
           round({number("n_detections")})::int AS ndet,
           COALESCE(x.fink->>'i:isdiffpos', 't') NOT IN ('f', '0', 'false') AS positive,
           COALESCE(jsonb_path_exists(x.fink, 'lax $.**{{{{{MAX_DEPTH} to last}}}}'), false) AS too_deep
    FROM {{table}} e
    CROSS JOIN LATERAL jsonb_to_record({{document}}) AS x(object_id text, candid text, classification text,
        jd jsonb, magpsf jsonb, sigmapsf jsonb, filter_id jsonb, n_detections jsonb, fink jsonb)
    WHERE e.source = %(source)s AND {{scope}}
) r
"""

_USABLE = "NOT bad_json AND object_id IS NOT NULL AND candid IS NOT NULL AND label IS NOT NULL"

CLASSIFY = f"""
CREATE TEMP TABLE tk_valid ON COMMIT DROP AS
SELECT r.* FROM tk_rows r
JOIN (SELECT min(id) AS id FROM tk_rows                   -- a candid stored twice counts once
      WHERE {_USABLE} AND good_id AND NOT bad_time AND NOT too_deep GROUP BY candid) first USING (id);
CREATE TEMP TABLE tk_in ON COMMIT DROP AS
SELECT v.*, CASE v.label {{rank_cases}} END AS rank
FROM tk_valid v WHERE v.label = ANY(%(labels)s);
ANALYZE tk_in
"""

SKIPPED = f"""
SELECT count(*) FILTER (WHERE bad_json),
       count(*) FILTER (WHERE NOT bad_json AND NOT ({_USABLE})),
       count(*) FILTER (WHERE {_USABLE} AND NOT good_id),
       count(*) FILTER (WHERE {_USABLE} AND good_id AND bad_time),
       count(*) FILTER (WHERE {_USABLE} AND good_id AND NOT bad_time AND too_deep),
       count(*) FILTER (WHERE {_USABLE} AND good_id AND NOT bad_time AND NOT too_deep),
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

#: Every alert of a group in time order (ties by candid), as parallel arrays: the light
#: curve and the sky track are cut from these in Python.
SERIES = """
           array_agg(filter_id ORDER BY jd, candid) AS s_filter, array_agg(jd ORDER BY jd, candid) AS s_jd,
           array_agg(mag ORDER BY jd, candid) AS s_mag, array_agg(mag_err ORDER BY jd, candid) AS s_mag_err,
           array_agg(candid ORDER BY jd, candid) AS s_candid, array_agg(positive ORDER BY jd, candid) AS s_positive"""

#: One pass over the in-scope alerts: each object's alerts as arrays in time order, the
#: row of its chosen alert (most specific label, then latest) joined for its Fink fields.
#: The statistics are computed from the arrays in Python (``transient.transient_slot``).
PER_OBJECT = """
SELECT o.object_id, o.s_rank, o.s_ndet, o.s_ra, o.s_dec, (e.extra_json::jsonb)->'fink' AS fink,
       o.s_filter, o.s_jd, o.s_mag, o.s_mag_err, o.s_candid, o.s_positive
FROM (
    SELECT object_id,
           array_agg(rank ORDER BY jd, candid) AS s_rank, array_agg(ndet ORDER BY jd, candid) AS s_ndet,
           array_agg(ra ORDER BY jd, candid) AS s_ra, array_agg(dec ORDER BY jd, candid) AS s_dec,
           (array_agg(id ORDER BY rank DESC, jd DESC, candid DESC))[1] AS chosen_id,""" + SERIES + """
    FROM tk_in GROUP BY object_id
) o
JOIN {table} e ON e.id = o.chosen_id
"""

#: Minor bodies: Solar-System MPC rows grouped by designation (``i:ssnamenr``; '' when
#: missing), Solar-System candidates by ZTF object. The designation's checks are the
#: storehouse's file-name rules, applied in Python.
PER_BODY = """
WITH bodies AS (
    SELECT CASE WHEN label = %(mpc)s THEN COALESCE(NULLIF(ssnamenr, 'null'), '') ELSE object_id END AS body,
           label = %(mpc)s AS mpc, *
    FROM tk_valid WHERE label = ANY(%(labels)s)
), stats AS (
    SELECT body, mpc, count(*) AS n_alerts, array_agg(DISTINCT object_id ORDER BY object_id) AS object_ids,
           array_agg(ra ORDER BY jd, candid) AS s_ra, array_agg(dec ORDER BY jd, candid) AS s_dec,
           (array_agg(id ORDER BY jd DESC, candid DESC))[1] AS latest_id,""" + SERIES + """
    FROM bodies GROUP BY body, mpc
)
SELECT s.body, s.mpc, s.n_alerts, s.object_ids, s.s_ra, s.s_dec, (e.extra_json::jsonb)->'fink' AS fink,
       s.s_filter, s.s_jd, s.s_mag, s.s_mag_err, s.s_candid, s.s_positive
FROM stats s JOIN {table} e ON e.id = s.latest_id
ORDER BY s.mpc DESC, s.body
"""
