"""The night's plots, as PNG files (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

BAND_ORDER = ("u", "g", "r", "i", "z", "y")


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _save(figure, path: Path) -> None:  # noqa: ANN001 - a matplotlib Figure
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    figure.savefig(temp, format="png", dpi=90, bbox_inches="tight")
    os.replace(temp, path)


def night_plots(alerts: list[dict[str, str]], reports_dir: Path, stem: str) -> dict[str, str]:
    """Sky map, extendedness histogram, alerts per band; {title: file name in reports_dir}."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    made: dict[str, str] = {}
    positions = [(ra, dec) for row in alerts
                 if (ra := _number(row.get("ra"))) is not None and (dec := _number(row.get("dec"))) is not None]
    figure = Figure(figsize=(6.4, 3.6))
    axes = figure.add_subplot(projection="mollweide")
    if positions:
        # RA increases to the left, as on the sky; 0h at the centre.
        x = [-math.radians(((ra + 180) % 360) - 180) for ra, _ in positions]
        y = [math.radians(dec) for _, dec in positions]
        axes.scatter(x, y, s=6, color="tab:blue", alpha=0.7)
    axes.set_xticklabels([f"{h}h" for h in (10, 8, 6, 4, 2, 0, 22, 20, 18, 16, 14)], fontsize=7)
    axes.grid(True, alpha=0.4)
    axes.set_title(f"Alerts on the sky (RA/Dec, {len(positions)} alerts)", fontsize=9)
    made["Sky"] = f"{stem}_sky.png"
    _save(figure, reports_dir / made["Sky"])

    medians = [value for row in alerts if (value := _number(row.get("extendednessMedian"))) is not None]
    figure = Figure(figsize=(4.2, 3.0))
    axes = figure.add_subplot()
    axes.hist(medians, bins=20, range=(0.0, 1.0), color="tab:orange")
    axes.set_xlabel("extendednessMedian")
    axes.set_ylabel("alerts")
    axes.set_title(f"Extendedness ({len(medians)} alerts with a value)", fontsize=9)
    made["Extendedness"] = f"{stem}_extendedness.png"
    _save(figure, reports_dir / made["Extendedness"])

    bands = Counter(row.get("filterName") or "?" for row in alerts)
    names = [band for band in BAND_ORDER if band in bands] + sorted(set(bands) - set(BAND_ORDER))
    figure = Figure(figsize=(4.2, 3.0))
    axes = figure.add_subplot()
    axes.bar(names, [bands[name] for name in names], color="tab:green")
    axes.set_xlabel("band")
    axes.set_ylabel("alerts")
    axes.set_title("Alerts per band", fontsize=9)
    made["Bands"] = f"{stem}_bands.png"
    _save(figure, reports_dir / made["Bands"])
    return made
