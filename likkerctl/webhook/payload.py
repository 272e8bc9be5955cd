"""Alertmanager's webhook payload (version 4), validated; nothing else is accepted.

Pure: bytes in, a `Notification` or a `PayloadError` that says which field is wrong.
Field names and shapes: Alertmanager's `notify/webhook` (template.Data plus version,
groupKey, truncatedAlerts). Extra fields are allowed (Alertmanager may add some); missing or
mistyped ones are not.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from likkerctl.core.store.alerts import alert_key


class PayloadError(ValueError):
    """The body is not an Alertmanager v4 notification; the message names the field."""


class _Model(BaseModel):
    # Strict: Alertmanager sends RFC 3339 strings and JSON integers; a number where a time
    # belongs (pydantic's lax mode reads it as a Unix time) or "5" for a count is not its.
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True, strict=True)


class Alert(_Model):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime = Field(alias="endsAt")
    generator_url: str = Field(alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=64, pattern=r"^[0-9a-fA-F]+$")

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def key(self) -> str:
        """One firing of one alert: Alertmanager keeps startsAt until the alert resolves."""
        return alert_key(self.fingerprint, self.starts_at)


class Notification(_Model):
    version: Literal["4"]
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(alias="truncatedAlerts", ge=0, default=0)
    status: Literal["firing", "resolved"]
    receiver: str
    group_labels: dict[str, str] = Field(alias="groupLabels")
    common_labels: dict[str, str] = Field(alias="commonLabels")
    common_annotations: dict[str, str] = Field(alias="commonAnnotations")
    external_url: str = Field(alias="externalURL")
    alerts: list[Alert] = Field(min_length=1, max_length=1000)

    @field_validator("truncated_alerts", mode="before")
    @classmethod
    def _integral(cls, value: object) -> object:
        # JSON Schema (and so any client generated from the document) calls 3.0 an integer.
        return int(value) if isinstance(value, float) and value.is_integer() else value


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def parse(body: bytes) -> Notification:
    """The notification in `body`, or PayloadError naming the first thing wrong."""
    try:
        return Notification.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        if first["type"] == "json_invalid":
            raise PayloadError(
                f"malformed JSON: {first['ctx'].get('error', first['msg'])}"
            ) from None
        if first["type"] == "model_type" and not first["loc"]:
            raise PayloadError(
                "body must be a JSON object (Alertmanager's webhook payload)"
            ) from None
        if first["loc"] == ("version",):
            raise PayloadError(
                f"version: this is not an Alertmanager v4 webhook payload ({first['msg'].lower()})"
            ) from None
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise PayloadError(f"{_where(first['loc'])}: {first['msg']}{more}") from None
