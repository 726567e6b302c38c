"""Authenticity check of GCN VOEvent test files (tests/data/grb/README.md).

Recomputes galactic l, b from C1/C2 (FK5 J2000) and compares them with the
Galactic_Long/Lat Params the GCN VOE generator wrote; compares Burst_TJD/SOD with
ISOTime; compares TrigID with the ivorn. Hand-edited fixture files (moved positions,
shifted times) usually fail one of these. Output of the staged run:
tests/data/grb/authenticity_check.txt.

    python devtools/grb_notice_authenticity.py tests/data/grb/*.xml
"""

from __future__ import annotations

import math
import sys

import astropy.units as u
import defusedxml.ElementTree as SafeTree
from astropy.coordinates import SkyCoord
from astropy.time import Time


def params(root):
    return {p.get("name"): p.get("value") for p in root.iter() if p.tag.split("}")[-1] == "Param"}


def text(root, tag):
    for element in root.iter():
        if element.tag.split("}")[-1] == tag:
            return (element.text or "").strip()
    return ""


def check(path: str) -> str | None:
    try:
        root = SafeTree.parse(path).getroot()
    except Exception as exc:  # noqa: BLE001 - a file that does not parse is reported, not fatal
        return f"{path}: PARSE FAIL {exc}"
    found, ivorn = params(root), root.get("ivorn", "")
    if "nasa.gsfc.gcn" not in ivorn:
        return None
    notes = []
    c1, c2, iso = text(root, "C1"), text(root, "C2"), text(root, "ISOTime")
    if found.get("Galactic_Long") and c1 and float(c1) != 0:
        galactic = SkyCoord(float(c1) * u.deg, float(c2) * u.deg, frame="fk5", equinox="J2000").galactic
        dl = abs((galactic.l.deg - float(found["Galactic_Long"]) + 180) % 360 - 180)
        db = abs(galactic.b.deg - float(found["Galactic_Lat"]))
        bad = max(dl * abs(math.cos(galactic.b.rad)), db) > 0.1
        notes.append(f"gal d=({dl:.2f},{db:.2f})" + (" **MISMATCH**" if bad else " ok"))
    if found.get("Burst_TJD") and found.get("Burst_SOD") and iso:
        mjd = float(found["Burst_TJD"]) + 40000 + float(found["Burst_SOD"]) / 86400
        dt = (Time(iso, format="isot", scale="utc").mjd - mjd) * 86400
        notes.append(f"TJD/SOD dt={dt:.2f}s" + (" **MISMATCH**" if abs(dt) > 1 else " ok"))
    trigger = found.get("TrigID")
    if trigger and trigger.lstrip("-") not in ivorn and str(int(trigger)).zfill(6) not in ivorn:
        notes.append(f"TrigID {trigger} not in ivorn **MISMATCH**")
    return f"{path}: {ivorn.split('#')[-1]} | " + "; ".join(notes)


if __name__ == "__main__":
    for name in sorted(sys.argv[1:]):
        line = check(name)
        if line:
            print(line)
