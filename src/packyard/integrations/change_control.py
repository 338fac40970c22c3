"""Ask a ticket system whether a change-control id is approved (Packrat recorded ids but never
checked them).

Protocol: ``GET <url with {id} replaced>`` with ``Authorization: Bearer <token>`` when a token
is configured. Approved means a 2xx answer whose JSON object has ``<approved_field>: true``.
404 means the ticket does not exist; any other answer or a timeout is "unavailable", which
refuses the promotion too but says the ticket system, not the ticket, is the problem.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from packyard.config import ChangeControlSettings
from packyard.domain.errors import ChangeControlUnavailable
from packyard.services.ports import ChangeControlDecision

__all__ = ["HttpChangeControl"]


class HttpChangeControl:
    def __init__(self, settings: ChangeControlSettings) -> None:
        assert settings.url is not None
        self._url = settings.url
        self._field = settings.approved_field
        headers = {"Accept": "application/json", "User-Agent": "packyard"}
        if settings.token is not None:
            headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
        self._client = httpx.Client(timeout=settings.timeout, headers=headers)

    def check(self, change_id: str, *, artifact: str, stage: str) -> ChangeControlDecision:
        url = self._url.replace("{id}", quote(change_id, safe=""))
        try:
            response = self._client.get(url, params={"artifact": artifact, "stage": stage})
        except httpx.HTTPError as exc:
            raise ChangeControlUnavailable(
                f"the change-control system could not be reached ({type(exc).__name__})",
                hint="try again later or ask an admin to check change_control.url",
            ) from exc
        if response.status_code == 404:
            return ChangeControlDecision(approved=False, detail="no such ticket")
        if not response.is_success:
            raise ChangeControlUnavailable(
                f"the change-control system answered HTTP {response.status_code}",
                hint="try again later or ask an admin to check change_control.url/token",
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ChangeControlUnavailable(
                "the change-control system did not answer with a JSON object",
                hint="check change_control.url points at the ticket API",
            )
        if body.get(self._field) is True:
            return ChangeControlDecision(approved=True, detail="approved")
        state = body.get("status") or body.get("state") or "not approved"
        return ChangeControlDecision(approved=False, detail=str(state))

    def close(self) -> None:
        self._client.close()
