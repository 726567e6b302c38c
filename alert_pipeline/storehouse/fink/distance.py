"""A transient's distance, when one is known: the slot field ``distance``.

``distance = {"mpc", "redshift", "source"}``, from the first of:

* its TNS redshift (``tns.redshift``, written by the ``tns`` step): the luminosity
  distance at that redshift in astropy's ``Planck18`` cosmology (Planck 2018 VI, Table 2,
  TT,TE,EE+lowE+lensing+BAO); ``source: "tns_redshift"``. A redshift that is not a finite
  number in (0, ``MAX_REDSHIFT``] (TNS lists blueshifted Local Group objects with z < 0)
  gives none;
* its host galaxy (``host``: ``{name, separation_arcsec, projected_kpc, distance_mpc, z}``,
  written by the host step): the galaxy's distance (``distance_mpc``; the luminosity
  distance of its ``z`` when it has no distance); ``source: "host_galaxy"``.

Otherwise the slot has no ``distance`` (a stale one is removed). The field is a function
of the slot alone, set by ``refine`` — the transient kind's refinement, run on every
transient slot written (the build, ``tns`` when it writes ``tns``; the host step calls
``refine`` or ``transient_distance`` when it writes ``host``) — so it is never stale.
The transient index carries it (``fink.transient.INDEX_FIELDS``): the cross-match reads
the distances of 100,000 transients from the index it already reads, opening no slot.
"""

from __future__ import annotations

import functools
import math
from typing import Any

FIELD = "distance"
SOURCE_TNS, SOURCE_HOST = "tns_redshift", "host_galaxy"
#: Largest redshift turned into a distance (beyond any transient a survey classifies).
MAX_REDSHIFT = 20.0


def transient_distance(slot: dict[str, Any]) -> dict[str, Any] | None:
    """The slot's ``distance`` (module docstring), or None."""
    tns = slot.get("tns")
    if isinstance(tns, dict) and (z := _redshift(tns.get("redshift"))) is not None:
        return {"mpc": luminosity_distance_mpc(z), "redshift": z, "source": SOURCE_TNS}
    host = slot.get("host")
    if isinstance(host, dict):
        z = _redshift(host.get("z"))
        mpc = _positive(host.get("distance_mpc"))
        if mpc is None and z is not None:
            mpc = luminosity_distance_mpc(z)
        if mpc is not None:
            return {"mpc": mpc, "redshift": z, "source": SOURCE_HOST}
    return None


def refine(slot: dict[str, Any]) -> dict[str, Any]:
    """``slot`` with its ``distance`` as ``transient_distance`` finds it (removed when it
    has none); the slot itself when that is what it holds."""
    if slot.get("kind") != "transient":
        return slot
    wanted = transient_distance(slot)
    if slot.get(FIELD) == wanted and (wanted is not None or FIELD not in slot):
        return slot
    if wanted is None:
        return {key: value for key, value in slot.items() if key != FIELD}
    return {**slot, FIELD: wanted}


@functools.lru_cache(maxsize=65536)
def luminosity_distance_mpc(redshift: float) -> float:
    """The luminosity distance (Mpc) at ``redshift`` in astropy's Planck18 cosmology
    (its integral needs scipy; cached: a catalogue repeats redshifts)."""
    from astropy.cosmology import Planck18

    return float(Planck18.luminosity_distance(redshift).to_value("Mpc"))


def _redshift(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and 0 < number <= MAX_REDSHIFT else None


def _positive(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and number > 0 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
