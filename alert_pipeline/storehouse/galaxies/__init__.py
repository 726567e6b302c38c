"""A galaxy catalogue in the storehouse: read (``read``: GLADE+ text or a CSV with named
columns, streamed), stored as a HATS catalogue with hats-import (``store``), queried with
LSDB in process or on a Dask cluster (``query``), and the GW volume numbers the host
ranking uses (``volume``). The enrichment that writes slots is ``enrich.hosts``."""
