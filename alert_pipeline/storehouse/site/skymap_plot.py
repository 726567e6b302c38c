"""The gw page's sky map: the localisation on a Mollweide projection (matplotlib, Agg),
its 50 % and 90 % credible contours, and the candidates marked.

The multi-order map the storehouse keeps is read with the storehouse's own reader
(``messengers.skymaps``) and sampled on a regular grid of sky positions; the credible
level of a pixel is the probability of all pixels denser than it (as ligo.skymap's
``find_greedy_credible_levels``). The PNG carries no date, so the same map and
candidates give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Grid of sampled positions (longitude × latitude): 0.75°, under two pixels of the
#: figure's map; a finer grid draws the same contours and costs twice the time.
GRID = (480, 240)


def credible_levels(uniq: np.ndarray, density: np.ndarray) -> np.ndarray:
    """Per pixel, the probability held by all pixels at least as dense."""
    from alert_pipeline.storehouse.messengers.skymaps import uniq_order

    area = 4 * np.pi / (12 * np.exp2(2 * uniq_order(uniq)))
    order = np.lexsort((uniq, density))[::-1]
    cumulative = np.cumsum(density[order] * area[order])
    levels = np.empty_like(cumulative)
    levels[order] = cumulative
    return levels


def _spread(bits: np.ndarray) -> np.ndarray:
    """The bits of ``bits`` moved to the even positions (bit i to bit 2i)."""
    spread = np.zeros_like(bits)
    for bit in range(30):
        spread |= ((bits >> bit) & 1) << (2 * bit)
    return spread


def nested_pixel(order: int, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """The nested HEALPix pixel of each position at ``order`` (Górski et al. 2005's
    ``ang2pix_nest``, written with numpy: astropy_healpix gives the same pixels, see
    tests/test_site.py, but importing it costs two seconds of a GW night's latency)."""
    nside = 1 << order
    z = np.sin(np.radians(dec_deg))
    tt = np.mod(np.radians(ra_deg), 2 * np.pi) / (np.pi / 2)
    equator = np.abs(z) <= 2 / 3
    temp1, temp2 = nside * (0.5 + tt), nside * z * 0.75
    jp, jm = (temp1 - temp2).astype(np.int64), (temp1 + temp2).astype(np.int64)
    ifp, ifm = jp >> order, jm >> order
    face = np.where(ifp == ifm, ifp | 4, np.where(ifp < ifm, ifp, ifm + 8))
    ix, iy = jm & (nside - 1), nside - (jp & (nside - 1)) - 1
    ntt = np.minimum(tt.astype(np.int64), 3)
    tp = tt - ntt
    tmp = nside * np.sqrt(3 * (1 - np.abs(z)))
    pj = np.minimum((tp * tmp).astype(np.int64), nside - 1)
    pm = np.minimum(((1 - tp) * tmp).astype(np.int64), nside - 1)
    north = z >= 0
    face = np.where(equator, face, np.where(north, ntt, ntt + 8))
    ix = np.where(equator, ix, np.where(north, nside - pm - 1, pj))
    iy = np.where(equator, iy, np.where(north, nside - pj - 1, pm))
    return (face.astype(np.int64) << (2 * order)) + _spread(ix.astype(np.int64)) + (_spread(iy.astype(np.int64)) << 1)


def sample(uniq: np.ndarray, values: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """``values`` of the multi-order pixels holding each position."""
    from alert_pipeline.storehouse.messengers.skymaps import uniq_order

    orders = uniq_order(uniq)
    deepest = int(orders.max())
    ipix = uniq - 4 * (4 ** orders.astype(np.int64))
    first = ipix << (2 * (deepest - orders))
    by_start = np.argsort(first)
    where = nested_pixel(deepest, ra_deg.ravel(), dec_deg.ravel())
    found = by_start[np.clip(np.searchsorted(first[by_start], where, side="right") - 1, 0, len(first) - 1)]
    return values[found].reshape(ra_deg.shape)


def _halo(patheffects: Any) -> list[Any]:
    """A white outline under text drawn over the map (a rank over a contour, an hour label)."""
    return [patheffects.withStroke(linewidth=2.5, foreground="white")]


def mollweide_png(uniq: np.ndarray, density: np.ndarray, candidates: Sequence[tuple[str, float, float]],
                  title: str) -> bytes:
    """The map as PNG bytes: density shaded, 50 %/90 % contours, candidates numbered by rank,
    right ascension increasing to the left (east left, as on the sky)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import patheffects
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    ra = np.linspace(0, 360, GRID[0])
    dec = np.linspace(-90, 90, GRID[1])
    ra_grid, dec_grid = np.meshgrid(ra, dec)
    levels = sample(uniq, credible_levels(uniq, density), ra_grid, dec_grid)
    shade = sample(uniq, density, ra_grid, dec_grid)
    x = np.radians(180 - ra_grid)
    y = np.radians(dec_grid)
    figure = Figure(figsize=(9, 5.2), dpi=100)
    axes = figure.add_subplot(projection="mollweide")
    axes.pcolormesh(x, y, shade, cmap="cylon" if "cylon" in matplotlib.colormaps else "Blues", shading="auto",
                    rasterized=True)
    axes.contour(x, y, levels, levels=[0.5, 0.9], colors=["#d62728", "#ff9900"], linewidths=[1.4, 1.1])
    for rank, (_, cand_ra, cand_dec) in enumerate(candidates, 1):
        axes.plot(np.radians(180 - cand_ra), np.radians(cand_dec), marker="o", ms=6, mfc="#2ca02c", mec="black")
        axes.annotate(str(rank), (np.radians(180 - cand_ra), np.radians(cand_dec)), xytext=(4, 4),
                      textcoords="offset points", fontsize=8, path_effects=_halo(patheffects))
    hours = np.arange(-150, 181, 30)
    axes.set_xticks(np.radians(hours))
    axes.set_xticklabels([f"{(180 - h) % 360 // 15:.0f}h" for h in hours], fontsize=8,
                         path_effects=_halo(patheffects))  # drawn inside the map: readable over a contour
    axes.set_xlabel("right ascension (hours, east left)")
    axes.set_ylabel("declination (deg)")
    axes.grid(True, color="#999", lw=0.4)
    handles = [Line2D([], [], color="#d62728", lw=1.4, label="50 % credible region"),
               Line2D([], [], color="#ff9900", lw=1.1, label="90 % credible region")]
    if candidates:
        handles.append(Line2D([], [], ls="", marker="o", mfc="#2ca02c", mec="black", label="candidates (by rank)"))
    figure.subplots_adjust(left=0.09, right=0.98, top=0.9, bottom=0.16)
    axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, ncols=3)
    axes.set_title(title, fontsize=10, pad=14, parse_math=False)  # a "$" in an event id is text, not TeX
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
