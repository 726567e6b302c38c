"""Fink ZTF alerts in PostgreSQL → "transient" slots (one per ZTF object) and
"minor_body" slots (one per Solar-System body).

* ``db``: connection, table names as identifiers, Julian dates, ``BuildError`` (the driver loaded on first use);
* ``queries``: the SQL of the build (parse, classify, count, aggregate);
* ``transient``, ``minor_body``: one slot from one aggregated row, per kind;
* ``curves``: per-band light curves, observing nights, sky motion;
* ``build``: the build itself;
* ``incremental``: the mark of what a build read, and the builder's rows table;
* ``locks``: one build at a time per storehouse and per events table;
* ``load``: ``load-fink``, Fink API output into the events table.
"""
