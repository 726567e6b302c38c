"""Queries of a stored galaxy catalogue with LSDB: the galaxies of a GW volume, ranked, and
each transient's host.

Every query runs in this process (dask's threaded scheduler) unless ``scheduler`` names a
Dask cluster (``tcp://host:8786``): then the same task graph runs there and returns the
same rows. The cluster's workers must see the storehouse's path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a frame is made: every builder command imports this module
    import pandas as pd

from alert_pipeline.storehouse.galaxies.volume import SHELLS_OUT, VolumeMap, mean_distance_mpc, volume_levels

#: The columns a query reads.
COLUMNS = ["name", "ra", "dec", "distance_mpc", "z", "mass"]
#: The credible level of the region and of the volume the candidates are taken from.
LEVEL = 0.9
#: Kiloparsecs per megaparsec.
KPC_PER_MPC = 1000.0


class CatalogueUnreadable(Exception):
    """The stored catalogue cannot be read (a truncated or deleted file, damaged metadata):
    reloading it with load-galaxies is the cure."""


@contextmanager
def readable(path: str) -> Iterator[None]:
    """What LSDB, hats and pyarrow raise on a damaged catalogue, as CatalogueUnreadable
    naming it (a clear error, not a traceback)."""
    try:
        yield
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CatalogueUnreadable(f"the galaxy catalogue {path} cannot be read ({type(exc).__name__}: "
                                  f"{first[:300]}); load it again with load-galaxies") from exc


@contextmanager
def on_cluster(scheduler: str | None) -> Iterator[None]:
    """Run the ``compute()`` calls inside on the cluster at ``scheduler`` (none: in process)."""
    if not scheduler:
        with nullcontext():
            yield
        return
    from dask.distributed import Client

    with Client(scheduler):
        yield


def open_catalogue(path: str, filters: list[tuple] | None = None) -> Any:
    import lsdb

    return lsdb.open_catalog(path, columns=COLUMNS, filters=filters)


def _frame(result: Any) -> pd.DataFrame:
    """A computed LSDB result as plain pandas with numpy dtypes (missing numbers NaN)."""
    import pandas as pd

    frame = pd.DataFrame(result).reset_index(drop=True)
    numbers = {name: "float64" for name in COLUMNS if name != "name"}
    frame = frame.astype(numbers)
    frame["name"] = frame["name"].astype(object)
    return frame


def galaxies_in_volume(path: str, sky: VolumeMap, scheduler: str | None = None) -> pd.DataFrame:
    """The catalogue's galaxies inside the map's 90 % region (its MOC) and nearer than the
    volume grid's edge, with ``credible_level``, ``credible_level_volume`` and
    ``prob_density_volume_mpc3``, those of volume level above 0.9 dropped."""
    edge = SHELLS_OUT * mean_distance_mpc(sky)
    region = sky.moc(LEVEL)
    with on_cluster(scheduler), readable(path):
        found = open_catalogue(path, [("distance_mpc", "<=", edge)]).moc_search(region)
        frame = _frame(found.compute(progress_bar=False))
    if frame.empty:
        return frame.assign(credible_level=[], credible_level_volume=[], prob_density_volume_mpc3=[])
    rows = sky.pixel_of(frame["ra"].to_numpy(), frame["dec"].to_numpy())
    levels, density = volume_levels(sky, rows, frame["distance_mpc"].to_numpy())
    frame = frame.assign(credible_level=sky.credible_levels(rows), credible_level_volume=levels,
                         prob_density_volume_mpc3=density)
    return frame[frame["credible_level_volume"] <= LEVEL].reset_index(drop=True)


def mass_weights(mass: np.ndarray) -> np.ndarray:
    """The weight of each galaxy's stellar mass in the ranking: its mass over the median
    known mass of the set (a galaxy of unknown mass weighs 1, the median); all 1 when no
    galaxy of the set has a mass. A BNS merger rate roughly follows stellar mass."""
    known = np.isfinite(mass) & (mass > 0)
    if not known.any():
        return np.ones(len(mass))
    weights = np.ones(len(mass))
    weights[known] = mass[known] / np.median(mass[known])
    return weights


def rank(frame: pd.DataFrame, top: int) -> tuple[list[dict[str, Any]], int]:
    """The ``top`` galaxies by score = prob_density_volume × mass weight, as slot entries,
    and how many there were."""
    frame = frame.assign(score=frame["prob_density_volume_mpc3"].to_numpy() * mass_weights(frame["mass"].to_numpy()))
    best = frame.sort_values(["score", "name"], ascending=[False, True], kind="stable").head(top)
    return [_candidate(row) for row in best.itertuples(index=False)], len(frame)


def _candidate(row: Any) -> dict[str, Any]:
    return {"name": row.name, "ra_deg": float(row.ra), "dec_deg": float(row.dec),
            "distance_mpc": float(row.distance_mpc), "z": _finite(row.z),
            "credible_level": float(row.credible_level), "credible_level_volume": float(row.credible_level_volume),
            "prob_density_volume_mpc3": float(row.prob_density_volume_mpc3), "mass": _finite(row.mass),
            "score": float(row.score)}


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class HostRule:
    """A host is the galaxy of smallest projected separation, at most ``max_kpc`` at the
    galaxy's distance and at most ``cap_arcmin`` away on the sky."""

    max_kpc: float
    cap_arcmin: float


def hosts(path: str, ids: np.ndarray, ra: np.ndarray, dec: np.ndarray, rule: HostRule,
          scheduler: str | None = None) -> dict[str, dict[str, Any]]:
    """Each transient's host (transient id → host entry; none found: not in the result).
    The catalogue is read only inside cones of the cap around the transients (a MOC), a
    partition at a time, every transient handed to every partition; the best of each
    partition's answers wins."""
    import pandas as pd
    from astropy import units as u
    from astropy.coordinates import Latitude, Longitude
    from mocpy import MOC

    if len(ids) == 0:
        return {}
    cap = rule.cap_arcmin * u.arcmin
    moc = MOC.from_cones(Longitude(ra * u.deg), Latitude(dec * u.deg), radius=cap, max_depth=HOST_MOC_DEPTH,
                         union_strategy="large_cones")
    with on_cluster(scheduler), readable(path):
        found = open_catalogue(path).moc_search(moc, fine=False)
        pairs = found.map_partitions(_partition_hosts, ra, dec, rule, meta=_host_pairs()).compute(progress_bar=False)
    pairs = pd.DataFrame(pairs).reset_index(drop=True)
    if pairs.empty:
        return {}
    best = pairs.sort_values(["transient", "projected_kpc", "name"], kind="stable").drop_duplicates("transient")
    return {str(ids[int(row.transient)]): {"name": row.name, "separation_arcsec": float(row.separation_arcsec),
                                           "projected_kpc": float(row.projected_kpc),
                                           "distance_mpc": float(row.distance_mpc), "z": _finite(row.z)}
            for row in best.itertuples(index=False)}


#: The MOC order of the cones around the transients (about 3.4′ cells).
HOST_MOC_DEPTH = 10
HOST_NUMBERS = ("separation_arcsec", "projected_kpc", "distance_mpc", "z")


def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.column_stack((np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)))


def _partition_hosts(galaxies: pd.DataFrame, ra: np.ndarray, dec: np.ndarray, rule: HostRule) -> pd.DataFrame:
    """Within one partition: each transient's best galaxy within the cap and ``max_kpc``."""
    from scipy.spatial import cKDTree

    empty = _host_pairs()
    if len(galaxies) == 0:
        return empty
    g_ra, g_dec = (np.asarray(galaxies[c], dtype=np.float64) for c in ("ra", "dec"))
    tree = cKDTree(_unit_vectors(g_ra, g_dec))
    cap_rad = math.radians(rule.cap_arcmin / 60)
    near = tree.query_ball_point(_unit_vectors(ra, dec), 2 * math.sin(cap_rad / 2))
    transient = np.repeat(np.arange(len(ra)), [len(found) for found in near])
    if len(transient) == 0:
        return empty
    galaxy = np.concatenate([np.asarray(found, dtype=np.int64) for found in near])
    separation = _separation_rad(ra[transient], dec[transient], g_ra[galaxy], g_dec[galaxy])
    distance = np.asarray(galaxies["distance_mpc"], dtype=np.float64)[galaxy]
    z = np.asarray(galaxies["z"], dtype=np.float64)[galaxy]
    kpc = separation * angular_diameter_distance_mpc(distance, z) * KPC_PER_MPC
    keep = (kpc <= rule.max_kpc) & (separation <= cap_rad)
    names = np.asarray(galaxies["name"], dtype=object)[galaxy]
    return _host_pairs(transient[keep], names[keep], np.degrees(separation[keep]) * 3600, kpc[keep],
                       distance[keep], z[keep])


def _host_pairs(transient: Any = (), name: Any = (), *numbers: Any) -> pd.DataFrame:
    """(transient row, galaxy) pairs as one partition returns them (and LSDB's meta)."""
    import pandas as pd

    columns = numbers or [()] * len(HOST_NUMBERS)
    return pd.DataFrame({"transient": pd.Series(transient, dtype="int64"), "name": pd.Series(name, dtype="str"),
                         **{key: pd.Series(values, dtype="float64") for key, values in zip(HOST_NUMBERS, columns,
                                                                                          strict=True)}})


def _separation_rad(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Great-circle separation (the Vincenty formula, exact at small angles)."""
    ra1, dec1, ra2, dec2 = (np.radians(v) for v in (ra1, dec1, ra2, dec2))
    delta = ra2 - ra1
    num = np.hypot(np.cos(dec2) * np.sin(delta), np.cos(dec1) * np.sin(dec2) - np.sin(dec1) * np.cos(dec2) * np.cos(delta))
    return np.arctan2(num, np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(delta))


def angular_diameter_distance_mpc(distance_mpc: np.ndarray, z: np.ndarray) -> np.ndarray:
    """D_A = d_L / (1 + z)²; a galaxy without a redshift gets the one of its luminosity
    distance in Planck18."""
    z = np.where(np.isfinite(z), z, redshift_of_distance(distance_mpc))
    return distance_mpc / np.square(1 + z)


def redshift_of_distance(distance_mpc: np.ndarray) -> np.ndarray:
    """The Planck18 redshift of a luminosity distance (interpolated on a fine grid to z = 10)."""
    from astropy.cosmology import Planck18

    grid = np.concatenate(([0.0], np.geomspace(1e-6, 10, 4000)))
    return np.interp(distance_mpc, Planck18.luminosity_distance(grid).to_value("Mpc"), grid)
