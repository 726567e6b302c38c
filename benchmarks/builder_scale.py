"""Build time of both kinds (transient and minor_body) against the floor: a bare GROUP BY
over the same rows.

For each scale it loads synthetic Fink alerts (about 10 % of them Solar-System alerts of
moving bodies with designations) into an embedded PostgreSQL, times a bare
``SELECT extra_json::jsonb->>'object_id', count(*) … GROUP BY 1`` (the cheapest query that
must still parse every row), then runs ``transient_kind_builder.py build`` in a subprocess
and reports its wall time, the slots of each kind, alerts/s, peak RSS and the ratio to the
faster floor (PostgreSQL's default plan, or the parallel plan the builder allows itself).
A second floor is what writing the slots costs at least: the same slots' bytes (each slot of
both kinds, parsed before the clock starts) serialised by orjson and created as new files in
a scratch directory of the same file system, then one ``syncfs``; the full build is printed
against (faster GROUP BY floor + write floor) too (target ≤ 2).
Then, per scale, the incremental builds against that full build: a rebuild with nothing new,
a rebuild after a night of 1 % new rows (half new alerts of known objects, half new
objects), and a ``--full`` rebuild of the grown table.

    .venv/bin/python benchmarks/builder_scale.py [--scales 25000:2350,1000000:100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import psycopg  # noqa: E402

from alert_pipeline.storehouse.fink.load import create_table  # noqa: E402
from devtools import fink_samples  # noqa: E402
from devtools.local import postgres_server  # noqa: E402


def composition(alerts: int, objects: int) -> fink_samples.Composition:
    if (alerts, objects) == (25000, 2350):
        return fink_samples.Composition()
    mean = alerts / objects
    single = {"sn": int(objects * 0.30), "kilonova": int(objects * 0.01)}
    single["unknown"] = objects - sum(single.values()) - 16
    # ~2.5 alerts per Solar-System ZTF object: alerts // 25 of them make ~10 % of the rows.
    return fink_samples.Composition(single=single, solar_system_objects=alerts // 25,
                                    alerts_per_object=(1, max(1, int(round(2 * mean - 1)))))


def load(url: str, alerts: list[dict], append: bool = False) -> None:
    """COPY the alerts into the events table as the live fetcher stores them (into a new
    table unless ``append``)."""
    with psycopg.connect(url, autocommit=True) as connection:
        if not append:
            connection.execute("DROP TABLE IF EXISTS events")
            connection.execute("DROP TABLE IF EXISTS events_tk_rows")
            create_table(connection, "events")
        with connection.cursor() as cursor, cursor.copy(
                "COPY events (source, event_time, latitude, longitude, magnitude, extra_json) FROM STDIN") as copy:
            for alert in alerts:
                extra = {"object_id": alert["i:objectId"], "candid": str(alert["i:candid"]),
                         "classification": alert["v:classification"], "filter_id": alert["i:fid"],
                         "n_detections": alert["i:ndethist"], "jd": alert["i:jd"], "magpsf": alert["i:magpsf"],
                         "sigmapsf": alert["i:sigmapsf"], "fink": alert}
                seconds = (alert["i:jd"] - 2440587.5) * 86400
                copy.write_row(("fink_transients", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)),
                                alert["i:dec"], alert["i:ra"], alert["i:magpsf"], json.dumps(extra)))
        connection.execute("VACUUM ANALYZE events")


def night(url: str, rows: int, seed: int) -> list[dict]:
    """``rows`` new alerts: half new alerts of objects already built (one day after the
    latest alert), half new objects."""
    import random

    rng = random.Random(seed)
    candids = iter(range(8_000_000_000_000_000_000 + seed * 10**9, 2**63))
    with psycopg.connect(url) as connection:
        old = connection.execute("SELECT object_id, label FROM events_tk_rows WHERE reason IS NULL AND label IN "
                                 "('SN candidate', 'Unknown', 'Kilonova candidate') ORDER BY random() LIMIT %s",
                                 (rows // 2,)).fetchall()
        latest = connection.execute("SELECT max((extra_json::jsonb->>'jd')::float8) FROM events "
                                    "WHERE id > (SELECT max(id) - 1000 FROM events)").fetchone()[0]
    made = [fink_samples.fink_alert(rng, object_id, label, latest + 1 + rng.random(), rng.uniform(0, 360),
                                    rng.uniform(-30, 80), next(candids), rng.choice((1, 2)))
            for object_id, label in old]
    fresh = fink_samples.dataset(fink_samples.Composition(
        single={"sn": rows // 40, "kilonova": 1, "unknown": rows // 20}, cross=[], solar_system_objects=rows // 60,
        mixed_with_solar_system=0, alerts_per_object=(1, 3)), seed=seed)
    for alert in fresh:
        alert["i:candid"] = next(candids)
    return made + fresh[: rows - len(made)]


def floor_seconds(url: str, parallel: bool) -> float:
    """The bare aggregate, with PostgreSQL's default planner settings or with the parallel
    settings the builder uses for itself (the fairer, faster floor)."""
    with psycopg.connect(url) as connection:
        if parallel:
            connection.execute("SET parallel_setup_cost = 10")
            connection.execute("SET parallel_tuple_cost = 0.001")
        start = time.perf_counter()
        connection.execute("SELECT extra_json::jsonb->>'object_id', count(*) FROM events "
                           "WHERE source = 'fink_transients' GROUP BY 1").fetchall()
        return time.perf_counter() - start


def write_floor_seconds(storehouse: str, scratch: str) -> tuple[float, int]:
    """orjson + create + one syncfs for the bytes of every slot the build wrote (both kinds,
    parsed before the clock starts), into ``scratch`` on the same file system; the number of slots."""
    import orjson

    from alert_pipeline.durable import sync_filesystem
    from alert_pipeline.storehouse.slots import slot_bytes

    slots = []
    for kind in ("transient", "minor_body"):
        directory = os.path.join(storehouse, kind)
        slots += [orjson.loads(open(os.path.join(directory, name), "rb").read()) for name in os.listdir(directory)
                  if name.endswith(".json") and name not in ("index.json", "roster.json")]
    os.makedirs(scratch)
    started = time.perf_counter()
    for number, slot in enumerate(slots):
        descriptor = os.open(os.path.join(scratch, f"{number}.json"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(descriptor, slot_bytes(slot))
        finally:
            os.close(descriptor)
    sync_filesystem(scratch)
    return time.perf_counter() - started, len(slots)


def build_seconds(url: str, storehouse: str, *extra: str) -> tuple[float, float]:
    """Wall seconds of one build in a subprocess, and the peak RSS in MB of that process
    and its worker processes together (sampled every 20 ms; the server's memory is
    PostgreSQL's, not the builder's)."""
    import psutil

    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, os.path.join(REPO, "transient_kind_builder.py"), "--dsn", url,
                                "--storehouse", storehouse, *extra], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    watched, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(process.memory_info().rss for process in tree))
        except psutil.NoSuchProcess:
            continue
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    log = process.stderr.read().decode()
    if process.wait() != 0:
        raise RuntimeError(log)
    steps = [line.split("build step ", 1)[1] for line in log.splitlines() if "build step " in line]
    if steps:  # the build's own step times: where its time went
        print("    steps: " + "; ".join(steps), flush=True)
    return elapsed, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="25000:2350,1000000:100000", help="ALERTS:OBJECTS,...")
    args = parser.parse_args()
    print(f"{'alerts':>9} {'SS rows':>8} {'transient':>9} {'bodies':>7} {'floor s':>8} {'par. floor s':>12} "
          f"{'build s':>8} {'ratio':>6} {'alerts/s':>9} {'peak RSS MB':>11}")
    # Storehouses are removed only at the end: on this VM's ext4 (mounted with discard) a
    # mass delete slows file creation for minutes afterwards, which would be measured as
    # the next build's time. Each scale's incremental builds run before the next scale's
    # load replaces the table (they used to run after all scales, against the last one).
    incremental: list[str] = []
    with postgres_server() as url, tempfile.TemporaryDirectory() as storehouses:
        for number, scale in enumerate(args.scales.split(",")):
            alerts_wanted, objects = (int(part) for part in scale.split(":"))
            alerts = fink_samples.dataset(composition(alerts_wanted, objects), seed=1)
            load(url, alerts)
            del alerts
            with psycopg.connect(url) as connection:
                rows, solar = connection.execute(
                    "SELECT count(*), count(*) FILTER (WHERE extra_json::jsonb->>'classification' LIKE 'Solar%') "
                    "FROM events").fetchone()
            serial = min(floor_seconds(url, parallel=False) for _ in range(3))
            parallel = min(floor_seconds(url, parallel=True) for _ in range(3))
            floor = min(serial, parallel)
            storehouse = os.path.join(storehouses, str(number))
            build, rss = build_seconds(url, storehouse)
            counts = [json.load(open(os.path.join(storehouse, kind, "index.json")))["count"]
                      for kind in ("transient", "minor_body")]
            print(f"{rows:>9} {solar:>8} {counts[0]:>9} {counts[1]:>7} {serial:>8.2f} {parallel:>12.2f} "
                  f"{build:>8.2f} {build / floor:>6.2f} {rows / build:>9.0f} {rss:>11.0f}", flush=True)
            writes, slots = write_floor_seconds(storehouse, os.path.join(storehouses, f"floor{number}"))
            print(f"  write floor: {slots} slots, orjson + create + one syncfs {writes:7.2f} s; full build ratio "
                  f"{build / (floor + writes):.2f}x (GROUP BY floor + write floor) (target <= 2), "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
            # Now, while the table still holds this scale's rows (the next scale replaces it).
            incremental += incremental_builds(url, rows, storehouse, build)
        print("\nincremental builds (ratio to the full build above; the first build was a full one):")
        print("\n".join(incremental))


def incremental_builds(url: str, rows: int, storehouse: str, full: float) -> list[str]:
    """The incremental rebuilds of one scale's storehouse, one line each: nothing new, a
    night of 1 % new rows, then a ``--full`` rebuild of the grown table."""
    again, rss = build_seconds(url, storehouse)
    lines = [f"  {rows:>9} rows, nothing new:            {again:7.2f} s   ratio {again / full:.3f}   "
             f"peak RSS {rss:.0f} MB (target <= 0.05)"]
    load(url, night(url, rows // 100, seed=rows), append=True)
    step, rss = build_seconds(url, storehouse)
    lines.append(f"  {rows:>9} rows + 1 % new ({rows // 100} rows): {step:7.2f} s   ratio {step / full:.3f}   "
                 f"peak RSS {rss:.0f} MB (target <= 0.15)")
    whole, rss = build_seconds(url, storehouse, "--full")
    lines.append(f"  {rows + rows // 100:>9} rows, --full rebuild:       {whole:7.2f} s   ratio {whole / full:.3f}   "
                 f"peak RSS {rss:.0f} MB")
    return lines

if __name__ == "__main__":
    main()
