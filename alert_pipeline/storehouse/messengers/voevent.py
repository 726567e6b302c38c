"""XML documents, parsed safely, and GCN VOEvent notices read from them.

``parse_xml`` is how the messenger formats parse any XML input (``kind.XML``): the
standard library's expat through ``defusedxml`` with DTDs, entity declarations and
external references refused before anything is expanded (an entity bomb, an XXE), and
the size bounded before parsing. GCN VOEvents never carry a DTD, so nothing legitimate
is lost. Every refusal is a ``Skipped`` naming the reason.

``read_voevent`` turns the root of a VOEvent 2.0 (or 1.1) notice, as the classic GCN
streams deliver them (``gcn.classic.voevent.*`` on Kafka, one notice per message or
file), into a plain ``VOEvent``: its ivorn, role, when it was written (``Who/Date``),
every ``<What>`` Param (those inside Groups too; the first of a name wins: a GBM notice
has a Group and a hex Param both called ``Trigger_ID``), the time and position of
``<WhereWhen>`` (``ISOTime``, ``C1``/``C2``, ``Error2Radius``, degrees) and its
citations. No physics here: what a radius means, which notices belong together, is the
kinds' business (``grb``, ``neutrino``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_tree
from defusedxml import DefusedXmlException

from alert_pipeline.storehouse.messengers.events import Skipped, finite, parse_time

#: Largest XML document parsed: real GCN VOEvents are 3–9 kB; 1 MiB leaves ample room.
MAX_XML_BYTES = 1 << 20
VOEVENT_NAMESPACES = ("http://www.ivoa.net/xml/VOEvent/v2.0", "http://www.ivoa.net/xml/VOEvent/v1.1")
ROLES = ("observation", "test", "utility", "prediction")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def looks_like_xml(data: bytes) -> bool:
    """Whether ``data`` starts (after a BOM and white space) with ``<``: an XML document,
    whatever else it may turn out to be."""
    return data[:256].lstrip(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:1] == b"<"


def parse_xml(data: bytes) -> Element:
    """The root element of ``data``; ``Skipped`` (``too_large``, ``bad_xml``) otherwise."""
    if len(data) > MAX_XML_BYTES:
        raise Skipped("too_large", f"an XML document of {len(data)} bytes, more than {MAX_XML_BYTES}")
    try:
        return safe_tree.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise Skipped("bad_xml", f"refused: {type(exc).__name__} (a DTD, an entity declaration or an external "
                                 "reference; a notice never carries one)") from None
    except ParseError as exc:
        hint = " (truncated?)" if "no element found" in str(exc) or "unclosed token" in str(exc) else ""
        raise Skipped("bad_xml", f"not well-formed XML{hint}: {exc}") from None


def local_name(tag: Any) -> str:
    """An element's name without its namespace ('' for a comment)."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def is_voevent(root: Element) -> bool:
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else None
    return local_name(root.tag) == "VOEvent" and namespace in (None, *VOEVENT_NAMESPACES)


@dataclass
class VOEvent:
    """What a notice says, as written (see the module docstring)."""

    ivorn: str
    role: str
    date: str | None
    params: dict[str, str]
    time: dt.datetime | None
    ra: float | None
    dec: float | None
    error_radius: float | None
    citations: list[str] = field(default_factory=list)

    def flag(self, *names: str) -> bool | None:
        """Whether any of the flags ``names`` is true (None: the notice carries none of them)."""
        values = [text in _TRUE for name in names
                  if (text := self.params.get(name, "").strip().lower()) in _TRUE + _FALSE]
        return any(values) if values else None

    def integer(self, name: str) -> int | None:
        text = self.params.get(name, "").strip()
        try:
            return int(text, 0) if text else None
        except ValueError:
            raise Skipped("bad_value", f"{name} = {text[:40]!r} is not an integer") from None


def read_voevent(root: Element) -> VOEvent:
    """The notice under ``root`` (a VOEvent element); ``Skipped`` when it cannot be read.
    A notice without ``ISOTime`` has ``time`` None (the kind decides whether it needs
    one); a position is read when ``Position2D`` has one, in degrees."""
    ivorn = (root.get("ivorn") or "").strip()
    if not ivorn:
        raise Skipped("bad_value", "a VOEvent without an ivorn")
    role = (root.get("role") or "observation").strip()
    if role not in ROLES:
        raise Skipped("bad_value", f"VOEvent role {role[:40]!r} is none of {', '.join(ROLES)}")
    coords = _path(root, "WhereWhen", "ObsDataLocation", "ObservationLocation", "AstroCoords")
    isotime = _text(_path(coords, "Time", "TimeInstant", "ISOTime"))
    ra, dec, radius = _position(_path(coords, "Position2D"))
    cited = _path(root, "Citations")
    citations = [_text(each) for each in (cited if cited is not None else ()) if local_name(each.tag) == "EventIVORN"]
    return VOEvent(ivorn, role, _text(_path(root, "Who", "Date")), _params(_path(root, "What")),
                   parse_time(isotime) if isotime else None, ra, dec, radius, [c for c in citations if c])


def _params(what: Element | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for element in what.iter() if what is not None else ():
        if local_name(element.tag) == "Param" and element.get("name"):
            params.setdefault(element.get("name"), element.get("value", ""))
    return params


def _position(position: Element | None) -> tuple[float | None, float | None, float | None]:
    """(C1, C2, Error2Radius) as written, in degrees; None where absent."""
    if position is None:
        return None, None, None
    unit = position.get("unit", "deg")
    if unit != "deg":
        raise Skipped("bad_coordinates", f"Position2D in {unit[:20]!r}, not degrees")
    values = [_text(_path(position, "Value2", "C1")), _text(_path(position, "Value2", "C2")),
              _text(_path(position, "Error2Radius"))]
    ra, dec, radius = (None if text is None else finite(text, name, reason)
                       for text, name, reason in zip(values, ("C1", "C2", "Error2Radius"),
                                                     ("bad_coordinates", "bad_coordinates", "bad_error"),
                                                     strict=True))
    return ra, dec, radius


def _path(parent: Element | None, *names: str) -> Element | None:
    for name in names:
        if parent is None:
            return None
        parent = next((child for child in parent if local_name(child.tag) == name), None)
    return parent


def _text(element: Element | None) -> str | None:
    text = (element.text or "").strip() if element is not None else ""
    return text or None
