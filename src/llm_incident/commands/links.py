"""Links from replies to the web dashboard (`LLM_INCIDENT_DASHBOARD_URL`): none when it is unset.

Paths are the dashboard's own (dashboard/pages.py): `/?range=R`, `/routes/{route}?range=R`,
`/incidents/{n}`; a route is URL-quoted whole (`/`, spaces, unicode, `<>&|` included). `link`
writes a `<url|label>` the Slack renderer keeps as a link and the console prints as `label (url)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

_LABEL = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "¦", "\n": " "})


def link(url: str, label: str) -> str:
    """`<url|label>` with the label made safe inside the link (`&<>` escaped, `|` replaced)."""
    return f"<{url}|{label.translate(_LABEL)}>"


@dataclass(frozen=True)
class DashboardLinks:
    """URLs on the dashboard at `base` (its public base URL); every method answers None
    without one, so no reply carries a dead link."""

    base: str | None = None

    def __post_init__(self) -> None:
        if self.base is not None:
            object.__setattr__(self, "base", self.base.rstrip("/") or None)

    def overview(self, window: str | None = None) -> str | None:
        if not self.base:
            return None
        return f"{self.base}/" + (f"?range={quote(window, safe='')}" if window else "")

    def route(self, route: str, window: str | None = None) -> str | None:
        if not self.base:
            return None
        query = f"?range={quote(window, safe='')}" if window else ""
        return f"{self.base}/routes/{quote(route, safe='')}{query}"

    def incident(self, number: int) -> str | None:
        return f"{self.base}/incidents/{int(number)}" if self.base else None


NO_LINKS = DashboardLinks()
