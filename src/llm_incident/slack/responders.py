"""Who may change route controls from Slack: `LLM_INCIDENT_RESPONDERS` user and user-group IDs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

GROUP_TTL_SECONDS = 300.0


class Responders:
    """A permission check for the command core: listed users, or members of listed user groups
    (`S…` IDs, resolved with usergroups.users.list and cached for five minutes)."""

    def __init__(self, ids: Iterable[str], client: WebClient, *, ttl: float = GROUP_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        ids = [i.strip() for i in ids if i.strip()]
        self.groups = [i for i in ids if i.startswith("S")]
        self.users = {i for i in ids if not i.startswith("S")}
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def __call__(self, user: str) -> bool:
        return user in self.users or any(user in self._members(g) for g in self.groups)

    def _members(self, group: str) -> frozenset[str]:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(group)
        if cached and now - cached[0] < self.ttl:
            return cached[1]
        try:
            users = self.client.usergroups_users_list(usergroup=group).get("users") or []
        except Exception as exc:  # noqa: BLE001 - refused, timed out, unreachable: never block
            why = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
            log.warning("could not list members of user group %s (%s); %s", group, why,
                        "using the last known members" if cached else "nobody counts as a member")
            return cached[1] if cached else frozenset()
        members = frozenset(users)
        with self._lock:
            self._cache[group] = (now, members)
        return members


def responders_permission(ids: list[str], client: WebClient) -> Responders | None:
    """None (anyone may change controls) when no responders are configured."""
    return Responders(ids, client) if ids else None
