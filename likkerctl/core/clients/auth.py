"""Bots through the auth service's admin API (DESIGN §9): list, block, unblock."""

from __future__ import annotations

from typing import Any

import requests

from likkerctl.core.errors import AuthRefused, Failed, InvalidInput, NotFound, Unreachable
from likkerctl.core.profile import Profile


class AuthAdmin:
    def __init__(self, profile: Profile, timeout: float = 5.0) -> None:
        if not profile.auth_url:
            raise InvalidInput(f"profile {profile.name!r} has no auth_url (LIKKER_AUTH_URL)")
        token = profile.token()
        if not token:
            raise AuthRefused(
                f"profile {profile.name!r} has no admin token "
                "(admin_token, admin_token_file, or LIKKER_ADMIN_TOKEN)",
            )
        self.base = profile.auth_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = self.http.request(method, f"{self.base}{path}", timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            raise Unreachable(
                f"auth service unreachable at {self.base}: {type(exc).__name__}", self.base
            ) from exc
        if resp.status_code in (401, 403):
            raise AuthRefused(f"auth service at {self.base} refused the admin token")
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if resp.status_code == 404:
            raise NotFound(data.get("detail") or f"not found: {path}")
        if resp.status_code >= 400:
            error = InvalidInput if resp.status_code < 500 else Failed
            raise error(
                f"auth service: HTTP {resp.status_code} {data.get('detail') or resp.text[:200]}"
            )
        return data

    def bots(self, blocked: bool | None = None) -> list[dict[str, Any]]:
        params = {} if blocked is None else {"blocked": str(blocked).lower()}
        return list(self._call("GET", "/v1/bots", params=params)["bots"])

    def bot(self, bot_id: int) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/bots/{bot_id}"))

    def block(self, bot_id: int, reason: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/v1/bots/{bot_id}/block", json={"reason": reason}))

    def unblock(self, bot_id: int) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/v1/bots/{bot_id}/block"))
