"""Fink ZTF alerts in PostgreSQL → "transient" slots (one per ZTF object) and
"minor_body" slots (one per Solar-System body).

* ``db``: connection, table names as identifiers, Julian dates, ``BuildError``;
* ``queries``: the SQL of the build (parse, classify, count, aggregate);
* ``transient``, ``minor_body``: one slot from one aggregated row, per kind;
* ``curves``: per-band light curves, observing nights, sky motion;
* ``build``: the build itself and ``rebuild_index``;
* ``incremental``: the mark of what a build read, and the builder's rows table;
* ``locks``: one build at a time per storehouse and per events table;
* ``load``: ``load-fink``, Fink API output into the events table.
"""

from alert_pipeline.storehouse.fink.build import KIND, KINDS, ShrinkRefused, build, rebuild_index
from alert_pipeline.storehouse.fink.db import DEFAULT_SOURCE, DEFAULT_TABLE, BuildError, TableNameError
from alert_pipeline.storehouse.fink.load import load_fink

__all__ = ["DEFAULT_SOURCE", "DEFAULT_TABLE", "KIND", "KINDS", "BuildError", "ShrinkRefused", "TableNameError", "build",
           "load_fink", "rebuild_index"]
