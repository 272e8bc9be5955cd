"""Property tests (hypothesis) of the pure parts that take outside input: the `--where`
predicate parser, the disk forecast, the runbook file loader and the Alertmanager payload
validator. Each either answers or refuses in its own documented way, never with another
exception. Seeded (derandomized) and bounded, so a run is the same cases every time.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from likkerctl.core.disk.figures import Forecast, Sample
from likkerctl.core.disk.forecast import forecast
from likkerctl.core.messages import fields, predicate
from likkerctl.runbooks import spec
from likkerctl.runbooks.steps import builtin
from likkerctl.webhook import payload

PROPERTY = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
STEPS = builtin()

# -- the predicate parser -------------------------------------------------------------------

# Words of the grammar, so generated text gets past the tokenizer into the parser.
_TOKENS = st.sampled_from(
    [
        *fields.LIKKER_ALIASES,
        *fields.PROPERTIES,
        *fields.COMPUTED,
        "header.x-tenant",
        'header."x tenant"',
        "body.tenant",
        "body.actor.user_id",
        "body[0]",
        "exists",
        "missing",
        *predicate.OPS,
        "in",
        "and",
        "or",
        "not",
        "(",
        ")",
        ",",
        "none",
        "true",
        "false",
        "bot:42",
        "user:7",
        '"quoted"',
        '"',
        "42",
        "-1",
        "99999999999999999999999",
        "forbidden",
        " ",
    ]
)
_PREDICATE_TEXT = st.one_of(st.text(max_size=60), st.lists(_TOKENS, max_size=14).map(" ".join))
_HEADERS = st.dictionaries(
    st.sampled_from(
        [
            *(h.removeprefix("header.") for h in fields.LIKKER_ALIASES.values()),
            "x-delivery-count",
            "x-tenant",
            "other",
        ]
    ),
    st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=8),
        st.binary(max_size=8),
        st.booleans(),
        st.floats(),
    ),
    max_size=6,
)


def _parsed(text: str) -> predicate.Predicate | None:
    try:
        return predicate.parse(text)
    except predicate.PredicateError as exc:
        message = str(exc)
        assert message.startswith("bad predicate: ")
        # The caret sits under a column of the predicate as written.
        caret = message.splitlines()[-1]
        assert caret.strip() == "^" and 0 <= exc.pos <= len(text), message
        return None


@PROPERTY
@given(_PREDICATE_TEXT)
@example("bot=42 and (user in (7, 9) or deliveries >= 10)")
@example("user in ()")
@example("not not not")
def test_any_text_is_a_predicate_or_a_caret_error(text: str) -> None:
    _parsed(text)


@PROPERTY
@given(
    st.lists(_TOKENS, min_size=1, max_size=12).map(" ".join),
    st.lists(st.tuples(_HEADERS, st.booleans()), max_size=5),
)
def test_a_parsed_predicate_judges_any_message_and_compiles_or_declines(
    text: str, messages: list[tuple[dict[str, Any], bool]]
) -> None:
    parsed = _parsed(text)
    if parsed is None:
        return
    for headers, redelivered in messages:
        assert parsed.matches(headers, redelivered) in (True, False)
    bindings = parsed.bindings()
    assert bindings is None or isinstance(bindings, list)


# -- the forecast ---------------------------------------------------------------------------

_BYTES = st.one_of(
    st.floats(min_value=-1e12, max_value=1e13, allow_nan=False),
    st.just(math.nan),
    st.just(0.0),
)


@st.composite
def _series(draw: st.DrawFn) -> list[Sample]:
    """Samples as brokers and Prometheus give them: steady or noisy fills, repeats of one
    reading, steps up and down, gaps, duplicate times, a NaN or two, any order."""
    n = draw(st.integers(min_value=0, max_value=60))
    t0 = draw(st.floats(min_value=0, max_value=2e9))
    free = draw(st.floats(min_value=0, max_value=1e12))
    rate = draw(st.floats(min_value=-1e8, max_value=1e8))
    limit = draw(st.sampled_from([50e6, 0.0, 1e9]))
    samples = []
    t = t0
    for _ in range(n):
        t += draw(st.sampled_from([0.0, 0.001, 1.0, 5.0, 5.0, 5.0, 60.0]))
        kind = draw(st.sampled_from(["trend", "trend", "trend", "repeat", "step", "any"]))
        if kind == "trend":
            free += rate * 5
        elif kind == "step":
            free += draw(st.sampled_from([-1e9, 5e8, 2e7]))
        elif kind == "any":
            free = draw(_BYTES)
        samples.append(Sample(t, free, draw(st.one_of(st.just(limit), _BYTES))))
    return draw(st.permutations(samples)) if draw(st.booleans()) else samples


def _assert_an_answer(result: Forecast) -> None:
    assert result.status in ("filling", "not filling", "not enough data", "at limit")
    for name in ("eta_s", "eta_low_s", "eta_high_s"):
        value = getattr(result, name)
        assert value is None or (not math.isnan(value) and value >= 0), (name, result)
    if result.status == "filling":
        assert result.eta_s is not None and math.isfinite(result.eta_s), result
    json.dumps(result.as_json(), allow_nan=False)  # what --json prints is valid JSON


@settings(PROPERTY, max_examples=150)
@given(_series())
@example([])
@example([Sample(1.0, 1e9, 50e6)])
@example([Sample(1.0, 1e9, 50e6)] * 10)
@example([Sample(float(i), math.nan, 50e6) for i in range(10)])
@example([Sample(float(i), 1e9 - i * 1e6, math.nan) for i in range(10)])
@example([Sample(float(i // 2) * 5, 1e9 - (i // 2) * 1e6, 50e6) for i in range(40)])
def test_any_series_gets_a_status_never_an_exception_or_a_nan_eta(samples: list[Sample]) -> None:
    _assert_an_answer(forecast(samples))


# -- the runbook file loader ---------------------------------------------------------------

_DEFAULT = spec.default_text().splitlines()
_TOML_VALUES = st.sampled_from(
    [
        "1",
        "-1",
        "0",
        "1.5",
        "true",
        '"x"',
        '""',
        '"{labels[queue]}"',
        '"{nope}"',
        '"{labels:d}"',
        '"{0}"',
        '"{"',
        '"{actions_queue!r:>{x}}"',
        "[]",
        '["a", 1]',
        "{}",
        "{ a = 1 }",
        '"observe"',
        '"approve"',
        "inf",
        "nan",
        "1979-05-27",
    ]
)


@st.composite
def _runbook_text(draw: st.DrawFn) -> str:
    """The built-in runbooks with lines dropped, duplicated, or given other values."""
    lines = list(_DEFAULT)
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        if not lines:
            break
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        action = draw(st.sampled_from(["drop", "dup", "value", "header"]))
        if action == "drop":
            del lines[i]
        elif action == "dup":
            lines.insert(i, lines[i])
        elif action == "value" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {draw(_TOML_VALUES)}"
        elif action == "header":
            lines.insert(
                i,
                draw(st.sampled_from(["[runbooks.x]", "[[runbooks.x.steps]]", "[x]", "[[x]]"])),
            )
    return "\n".join(lines)


@PROPERTY
@given(st.one_of(_runbook_text(), st.text(max_size=200)))
@example('[runbooks.a]\nalerts = ["A"]\n[[runbooks.a.steps]]\nstep = "block-bots"\nwhen = []')
@example('[runbooks.a]\ntarget = "{labels:d}"\n[[runbooks.a.steps]]\nstep = "pause-takers"')
def test_any_runbook_file_loads_or_is_a_runbook_error(text: str) -> None:
    try:
        loaded = spec.parse(text, "rb.toml", STEPS)
    except spec.RunbookError as exc:
        assert str(exc).startswith("rb.toml"), exc
        return
    assert loaded.runbooks
    for runbook in loaded.runbooks.values():
        assert runbook.steps and all(s.step in STEPS for s in runbook.steps)


# -- the Alertmanager payload validator ----------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_TIME = st.sampled_from(
    ["2026-12-01T11:00:00Z", "2026-12-01T11:00:00.123456789+01:00", "0001-01-01T00:00:00Z"]
)
_LABELS = st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)
_ALERT = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved"]),
        "labels": _LABELS,
        "annotations": _LABELS,
        "startsAt": _TIME,
        "endsAt": _TIME,
        "generatorURL": st.text(max_size=10),
        "fingerprint": st.text("0123456789abcdef", min_size=1, max_size=16),
    }
)
_NOTIFICATION = st.fixed_dictionaries(
    {
        "version": st.just("4"),
        "groupKey": st.text(max_size=10),
        "truncatedAlerts": st.integers(min_value=0, max_value=10),
        "status": st.sampled_from(["firing", "resolved"]),
        "receiver": st.text(max_size=10),
        "groupLabels": _LABELS,
        "commonLabels": _LABELS,
        "commonAnnotations": _LABELS,
        "externalURL": st.text(max_size=10),
        "alerts": st.lists(_ALERT, min_size=1, max_size=3),
    }
)


def _spoil(draw: st.DrawFn, note: dict[str, Any]) -> dict[str, Any]:
    """A notification with one field removed or given any JSON value."""
    note = json.loads(json.dumps(note))
    target = note if draw(st.booleans()) else note["alerts"][0]
    key = draw(st.sampled_from(sorted(target)))
    if draw(st.booleans()):
        del target[key]
    else:
        target[key] = draw(_JSON)
    return note


@PROPERTY
@given(st.one_of(st.binary(max_size=200), _JSON.map(lambda v: json.dumps(v).encode())))
@example(b"")
@example(b"\xff\xfe")
@example(b'{"version": 4}')
def test_any_body_is_a_notification_or_a_payload_error(body: bytes) -> None:
    try:
        payload.parse(body)
    except payload.PayloadError as exc:
        assert str(exc)


@PROPERTY
@given(st.data(), _NOTIFICATION)
def test_alertmanagers_payloads_parse_and_spoiled_ones_name_the_field(
    data: st.DataObject, note: dict[str, Any]
) -> None:
    parsed = payload.parse(json.dumps(note).encode())
    assert len(parsed.alerts) == len(note["alerts"])
    assert [a.fingerprint for a in parsed.alerts] == [a["fingerprint"] for a in note["alerts"]]
    spoiled = _spoil(data.draw, note)
    try:
        payload.parse(json.dumps(spoiled).encode())
    except payload.PayloadError as exc:
        assert str(exc)
