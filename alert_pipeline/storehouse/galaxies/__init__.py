"""A galaxy catalogue in the storehouse: read (``read``: GLADE+ text or a CSV with named
columns, streamed), stored as a HATS catalogue with hats-import (``store``), queried with
LSDB in process or on a Dask cluster (``query``), and the GW volume numbers the host
ranking uses (``volume``). The enrichment that writes slots is ``enrich.hosts``."""


class GalaxyFileError(ValueError):
    """A file that is not a galaxy file this reader knows; nothing of it is used. (Declared
    here, with no import behind it, so the command's exit-code table needs no Arrow.)"""
