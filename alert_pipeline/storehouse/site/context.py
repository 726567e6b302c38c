"""What a page is made from besides its own slot: the summaries of the slots it links to,
the cross-match rules (a cosmic ray's match radius), and how deep the page sits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alert_pipeline.storehouse.site.markup import link, text


@dataclass
class PageContext:
    """``linked``: (kind, slot id) → summary of every slot the page links to that exists."""

    linked: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    rules: Mapping[str, Any] = field(default_factory=dict)

    def href(self, kind: str, slot_id: str) -> str | None:
        """The relative link from a page in ``<kind>/`` to another slot's page, or None
        when that slot does not exist (no dangling link)."""
        found = self.linked.get((kind, slot_id))
        return f"../{kind}/{found['stem']}.html" if found else None

    def slot_link(self, kind: str, slot_id: str) -> str:
        """The slot's id, linked to its page when it has one."""
        href = self.href(kind, slot_id)
        return link(href, text(slot_id)) if href else text(slot_id)
