"""Does a transient align in time and sky with a gravitational wave, a neutrino or a
cosmic ray? Every transient slot against every ``gw``, ``neutrino`` and ``uhecr`` slot.

Per messenger, the pairs that fit in time are found first where the time window is
narrow (a sorted array of the transients' first detections, one ``searchsorted`` per
event), and the sky test is vectorised over them:

* gw (0 ≤ dt ≤ 14 d): the credible level at each transient, the probability inside the
  smallest region holding it, from one lookup of all positions in the sorted multi-order
  map (ligo.skymap's ``crossmatch`` definition); kept at ≤ 0.90. A position the map does
  not cover (or of density 0) has probability 0 and is never kept. A transient with a
  distance, on a map with distance layers, also gets its place in the map's volume
  (``messengers.volume``: ligo.skymap's volume level and density), which ranks the
  event's transients. Retracted events are ignored;
* neutrino (the event within [first − 30 d, last + 30 d]): the elliptical radius in the
  asymmetric 90 % region, each side's offset over that side's error; kept at ≤ 1 (×
  ``nu_scale``);
* uhecr (±365 d, 3°): the year-long window prunes little, so the pairs come from a sky
  match first (astropy's ``search_around_sky``) and are then checked in time.

Each kind's module names the function it matches with and declares that rule's
settings (``MessengerKind.match``; ``rule(...)`` each); ``Rules``, the settings of every
kind as one frozen dataclass, is made from those declarations on first use. A new kind
may bring its matcher in its own module (``per_event`` makes a rule of a one-event
matcher).

``n_chance``, the expected number of unrelated transients matching the event by chance,
is the number of transients whose times fit its window (wherever they are on the sky)
times its region's share of the sky (the 90 % area; the ellipse, π/4 × Σ over its
quadrants of RA error × cos Dec × Dec error; the cap of the match radius).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import Any

import numpy as np

from alert_pipeline.durable import open_regular
from alert_pipeline.storehouse.messengers.events import Skipped
from alert_pipeline.storehouse.messengers.skymaps import SKY_DEG2, SkyMap, SkyMapError, read_skymap

log = logging.getLogger("transient_kind_builder")
#: Largest error of a neutrino's position accepted (degrees): half the sky.
MAX_ERROR_DEG = 180.0
#: About how many cosmic-ray–transient sky pairs are listed at once.
PAIR_BUDGET = 2_000_000


def rule(name: str, default: float, most: float, text: str) -> tuple[str, type, Any]:
    """A match rule's setting, declared once in its kind's ``MatchRule.settings``: its
    name, default, range (a number above 0 and at most ``most``) and help. The field's
    metadata is a setting's (``alert_pipeline.consumer.config``'s ``settings_of``): the builder makes
    of it the flag (``--gw-window-days``), the key of the config file's ``[crossmatch]``
    table, the help and the check."""
    return name, float, field(default=default, metadata={
        "help": f"{text}; 0 < X <= {most:g}", "check": _positive_at_most(most), "metavar": "X", "choices": None,
        "strict": True, "most": most})


def _positive_at_most(most: float) -> Any:
    def check(value: Any) -> str | None:
        """A problem unless ``value`` is a number in (0, most]: compared, never converted
        (NaN fails, 10**400 too; a string or a boolean is not a number)."""
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return None if number and 0 < value <= most else f"must be a positive number at most {most:g}"
    return check


#: The longest time window a rule may set (days): ten years, a survey's lifetime.
LONGEST_WINDOW_DAYS = 3650.0
#: The match rules (``Rules``): the frozen dataclass made from every kind's settings.
RulesType = Any


@functools.cache
def rules_class(messenger_kinds: tuple[Any, ...]) -> type:
    """The match rules of ``messenger_kinds``; each a flag (``--gw-window-days``) and a key
    of the ``[crossmatch]`` table of the config file, declared once in its kind's module.
    Each is a number in (0, most]: the bounds keep every sum and product finite (a scale
    of 1e200 squared overflows) and every pairing bounded (a cosmic-ray radius past 30°
    pairs most of the sky with each ray)."""
    declared = [setting for kind in messenger_kinds for setting in kind.match.settings]
    return make_dataclass("Rules", declared, frozen=True, namespace={
        "__module__": __name__, "__doc__": rules_class.__doc__, "limits": classmethod(_limits),
        "from_values": classmethod(_from_values)})


def _limits(cls: type) -> dict[str, float]:
    """Each rule's largest allowed value."""
    return {item.name: float(item.metadata["most"]) for item in fields(cls)}


def _from_values(cls: type, values: dict[str, Any]) -> Any:
    """The rules from checked values (``alert_pipeline.settings.resolve_section``)."""
    return cls(**{key: float(value) for key, value in values.items()})


def per_event(matcher: Callable[..., tuple[list[Match], float]]) -> Callable[..., dict[str, list | Skipped]]:
    """A kind's ``match`` from a matcher of one event, (event, transients, rules, the
    kind's directory) → (matches, n_chance): an event it raises ``Skipped`` on is that."""
    def match(events: dict[str, dict[str, Any]], transients: Transients, rules: RulesType,
              directory: str) -> dict[str, list | Skipped]:
        result: dict[str, list | Skipped] = {}
        for event_id, event in events.items():
            try:
                matches, chance = matcher(event, transients, rules, directory)
            except Skipped as problem:
                result[event_id] = problem
                continue
            result[event_id] = [(found, chance) for found in matches]
        return result
    return match


@dataclass
class Transients:
    """The transient slots with a position, as arrays sorted by first detection; their
    distances (Mpc, NaN where a transient has none: ``fink.distance``) when known."""

    ids: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    first: np.ndarray
    last: np.ndarray
    distance: np.ndarray | None = None
    _last_sorted: np.ndarray | None = None

    @classmethod
    def from_index(cls, entries: list[dict[str, Any]]) -> tuple[Transients, int]:
        """From the transient kind's index entries; how many had no usable position or time
        (missing, not a number, not finite, off the sky)."""
        keys = ("ra_deg", "dec_deg", "first_mjd", "last_mjd")
        try:  # None becomes NaN; anything else that is not a number fails and takes the slow path
            table = np.array([[entry.get(key) for key in keys] for entry in entries], dtype=np.float64)
        except (TypeError, ValueError):
            table = np.array([[_number(entry.get(key)) for key in keys] for entry in entries], dtype=np.float64)
        table = table.reshape(-1, 4)
        usable = np.isfinite(table).all(axis=1) & on_sky(table[:, 0], table[:, 1])
        ids = np.array([entry.get("slot_id") for entry in entries], dtype=object)
        for slot_id in ids[~usable][:20]:
            log.warning("crossmatch: transient %s has no usable position or time; skipped", slot_id)
        order = np.argsort(table[usable, 2], kind="stable")
        kept = table[usable][order]
        distance = index_distances(entries)[usable][order]
        return cls(ids[usable][order], kept[:, 0], kept[:, 1], kept[:, 2], kept[:, 3], distance), int((~usable).sum())

    def first_between(self, start: float, stop: float) -> slice:
        """The transients whose first detection is in [start, stop]."""
        return slice(int(np.searchsorted(self.first, start, "left")), int(np.searchsorted(self.first, stop, "right")))

    def count_overlapping(self, start: float, stop: float) -> int:
        """How many transients were detected at some time in [start, stop]: those first
        seen by ``stop`` less those last seen before ``start`` (which were first seen
        before it too). Two binary searches, no scan."""
        if self._last_sorted is None:
            self._last_sorted = np.sort(self.last)
        return int(np.searchsorted(self.first, stop, "right")) - int(np.searchsorted(self._last_sorted, start, "left"))

    def overlapping(self, start: float, stop: float) -> np.ndarray:
        """Indices of the transients detected at some time in [start, stop]: first ≤ stop
        and last ≥ start."""
        head = int(np.searchsorted(self.first, stop, "right"))
        return np.flatnonzero(self.last[:head] >= start)


def index_distances(entries: list[dict[str, Any]]) -> np.ndarray:
    """Each index entry's distance (``distance.mpc``, Mpc; NaN where there is none or it
    is not a positive finite number)."""
    values = np.full(len(entries), np.nan)
    for position, entry in enumerate(entries):
        found = entry.get("distance")
        if isinstance(found, dict):
            value = _number(found.get("mpc"))
            if math.isfinite(value) and value > 0:
                values[position] = value
    return values


def on_sky(ra_deg: Any, dec_deg: Any) -> Any:
    """Whether a position (numbers or arrays, in degrees) is on the sky: RA in [0, 360],
    Dec in [-90, 90]. NaN is not."""
    return (ra_deg >= 0) & (ra_deg <= 360) & (np.abs(dec_deg) <= 90)


def _number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return math.nan


@dataclass
class Match:
    transient: int  # index into Transients
    fields: dict[str, Any]
    #: Where the transient ranks in the event's ``transients`` (lowest first; unranked ones after, by id).
    rank: float | None = None


def gw_matches(event: dict[str, Any], skymap: SkyMap, transients: Transients, rules: RulesType
               ) -> tuple[list[Match], float]:
    """The transients inside the event's credible region and window; its n_chance."""
    window = transients.first_between(event["mjd"], event["mjd"] + rules.gw_window_days)
    n_chance = (window.stop - window.start) * float(event["area_90_deg2"]) / SKY_DEG2
    if window.stop == window.start:
        return [], n_chance
    indices = np.arange(window.start, window.stop)
    levels, density = credible_levels(skymap, transients.ra[indices], transients.dec[indices])
    keep = (levels <= rules.gw_credible_level) & (density > 0)  # probability 0 is in no credible region
    matches = [Match(int(i), {"credible_level": float(level), "prob_density_deg2": float(value)})
               for i, level, value in zip(indices[keep], levels[keep], density[keep], strict=True)]
    _add_volume(skymap, transients, matches)
    return matches, n_chance


def _add_volume(skymap: SkyMap, transients: Transients, matches: list[Match]) -> None:
    """Give each match of a transient with a distance, on a map with distance layers, its
    place in the volume (``messengers.volume``), ranked by its volume credible level."""
    if not skymap.has_distance or transients.distance is None or not matches:
        return
    from alert_pipeline.storehouse.messengers.volume import volume_fields

    placed = [match for match in matches if math.isfinite(transients.distance[match.transient])]
    if not placed:
        return
    where = np.array([match.transient for match in placed])
    distance = transients.distance[where]
    found = volume_fields(skymap, skymap.pixel_rows(transients.ra[where], transients.dec[where]), distance)
    for position, match in enumerate(placed):
        level = float(found["credible_level_volume"][position])
        match.fields.update({"distance_mpc": float(distance[position]), "credible_level_volume": _finite(level),
                             "prob_density_volume_mpc3": _finite(float(found["prob_density_volume_mpc3"][position])),
                             "distance_sigma": _finite(float(found["distance_sigma"][position]))})
        match.rank = level if math.isfinite(level) else None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def credible_levels(skymap: SkyMap, ra_deg: np.ndarray, dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position: the searched probability (the probability in the pixels of
    higher density, its own included) and the density there per deg².

    A multi-order map need not cover the sky: a position in no pixel has probability 0,
    so credible level 1 and density 0 (ligo.skymap's ``crossmatch`` assumes full cover and
    would give it the level of the pixel before the gap)."""
    order = skymap.greedy_order()
    cumulative = np.empty(len(order))
    cumulative[order] = np.cumsum(skymap.probdensity[order] * skymap.pixel_areas_sr()[order])
    rows = skymap.pixel_rows(ra_deg, dec_deg)
    covered = rows >= 0
    return (np.where(covered, cumulative[rows], 1.0),
            np.where(covered, skymap.probdensity[rows] * (np.pi / 180) ** 2, 0.0))


def nu_matches(event: dict[str, Any], transients: Transients, rules: RulesType) -> tuple[list[Match], float]:
    """The transients inside the neutrino's (scaled) 90 % region and window; its n_chance."""
    candidates = transients.overlapping(event["mjd"] - rules.nu_window_days, event["mjd"] + rules.nu_window_days)
    errors = [float(event[key]) for key in ("ra_err_plus_deg", "ra_err_minus_deg", "dec_err_plus_deg",
                                            "dec_err_minus_deg")]
    if any(not 0 <= error <= MAX_ERROR_DEG for error in errors):
        raise Skipped("bad_error", f"an error that is not a number in [0, {MAX_ERROR_DEG:g}] degrees")
    ra_plus, ra_minus, dec_plus, dec_minus = errors
    cos_dec = math.cos(math.radians(float(event["dec_deg"])))
    area = math.pi / 4 * (ra_plus + ra_minus) * cos_dec * (dec_plus + dec_minus) * rules.nu_scale**2
    n_chance = len(candidates) * area / SKY_DEG2
    if len(candidates) == 0:
        return [], n_chance
    d_ra = (transients.ra[candidates] - float(event["ra_deg"]) + 180.0) % 360.0 - 180.0
    d_dec = transients.dec[candidates] - float(event["dec_deg"])
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.abs(d_ra) / np.where(d_ra >= 0, ra_plus, ra_minus)
        y = np.abs(d_dec) / np.where(d_dec >= 0, dec_plus, dec_minus)
    x, y = np.nan_to_num(x, nan=0.0, posinf=np.inf), np.nan_to_num(y, nan=0.0, posinf=np.inf)
    radius = np.hypot(x, y) / rules.nu_scale
    keep = radius <= 1.0
    separation = _separation(transients, candidates[keep], event)
    matches = [Match(int(i), {"separation_deg": float(sep), "ellipse_r": float(r)})
               for i, sep, r in zip(candidates[keep], separation, radius[keep], strict=True)]
    return matches, n_chance


def uhecr_pairs(events: list[dict[str, Any]], transients: Transients, rules: RulesType) -> dict[int, list[Match]]:
    """Per event (its position in ``events``), the transients within the radius and window.

    The sky pairs are found for a batch of rays at a time, sized so that a batch makes
    about ``PAIR_BUDGET`` pairs if the transients were spread evenly: astropy lists every
    pair as Python integers, so memory stays bounded with a wide radius and many rays (the
    transients' tree is built once and reused)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord, search_around_sky

    found: dict[int, list[Match]] = {index: [] for index in range(len(events))}
    if not events or len(transients.ids) == 0:
        return found
    sky = SkyCoord(transients.ra * u.deg, transients.dec * u.deg)
    cap_share = (1 - math.cos(math.radians(rules.uhecr_radius_deg))) / 2
    batch = max(1, int(PAIR_BUDGET / max(1.0, len(transients.ids) * cap_share)))
    for begin in range(0, len(events), batch):
        chunk = events[begin:begin + batch]
        rays = SkyCoord([e["ra_deg"] for e in chunk] * u.deg, [e["dec_deg"] for e in chunk] * u.deg)
        ray_index, transient_index, separation, _ = search_around_sky(rays, sky, rules.uhecr_radius_deg * u.deg)
        times = np.array([e["mjd"] for e in chunk])[ray_index]
        fits = (times >= transients.first[transient_index] - rules.uhecr_window_days) & \
               (times <= transients.last[transient_index] + rules.uhecr_window_days)
        for ray, transient, angle in zip(ray_index[fits], transient_index[fits], separation.deg[fits], strict=True):
            found[begin + int(ray)].append(Match(int(transient), {"separation_deg": float(angle)}))
    return found


def uhecr_chance(event: dict[str, Any], transients: Transients, rules: RulesType) -> float:
    in_window = transients.count_overlapping(event["mjd"] - rules.uhecr_window_days,
                                             event["mjd"] + rules.uhecr_window_days)
    cap = 2 * math.pi * (1 - math.cos(math.radians(rules.uhecr_radius_deg))) * (180 / math.pi) ** 2
    return in_window * cap / SKY_DEG2


def _separation(transients: Transients, indices: np.ndarray, event: dict[str, Any]) -> np.ndarray:
    from astropy.coordinates import angular_separation

    return np.degrees(angular_separation(np.radians(transients.ra[indices]), np.radians(transients.dec[indices]),
                                         math.radians(float(event["ra_deg"])), math.radians(float(event["dec_deg"]))))


def load_skymap(directory: str, event: dict[str, Any]) -> SkyMap:
    """The event's sky map file beside its slot (``Skipped`` when missing or corrupt)."""
    name = event.get("skymap")
    if not isinstance(name, str) or os.path.basename(name) != name or not name:
        raise Skipped("missing_field", "no sky-map file name")
    path = os.path.join(directory, name)
    try:
        with open_regular(path) as handle:  # a FIFO or a link planted in the storehouse is never read
            return read_skymap(handle, os.fstat(handle.fileno()).st_size)
    except FileNotFoundError:
        raise Skipped("missing_skymap", f"its sky map {name} does not exist") from None
    except (SkyMapError, OSError) as exc:
        raise Skipped("bad_skymap", f"its sky map {name}: {exc}") from None


def rules_dict(rules: RulesType) -> dict[str, float]:
    return asdict(rules)
