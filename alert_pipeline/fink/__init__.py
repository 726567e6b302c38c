"""Fink ZTF alerts in PostgreSQL → one "transient" slot per ZTF object.

* ``db``: connection, table names as identifiers, Julian dates, ``BuildError``;
* ``queries``: the SQL of the build (parse, classify, count, aggregate);
* ``build``: the build itself and ``rebuild_index``;
* ``load``: ``load-fink``, Fink API output into the events table.
"""

from .build import KIND, ShrinkRefused, build, rebuild_index
from .db import DEFAULT_SOURCE, DEFAULT_TABLE, BuildError, TableNameError
from .load import load_fink

__all__ = ["DEFAULT_SOURCE", "DEFAULT_TABLE", "KIND", "BuildError", "ShrinkRefused", "TableNameError", "build",
           "load_fink", "rebuild_index"]
