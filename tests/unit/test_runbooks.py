"""Runbook files, the choice of offenders, the run's control flow and the receiver's brakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from likkerctl.cli.errors import exit_code
from likkerctl.core.profile import Profile
from likkerctl.runbooks import engine, offenders, spec
from likkerctl.runbooks.context import AlertInfo, Param, RunContext, StepResult, render
from likkerctl.runbooks.steps import builtin, recovered
from likkerctl.webhook.limits import RateLimiter, TargetLocks

STEPS = builtin()


def parse(text: str) -> spec.RunbookSet:
    return spec.parse(text, "rb.toml", STEPS)


def error(text: str) -> str:
    with pytest.raises(spec.RunbookError) as exc:
        parse(text)
    assert exit_code(exc.value) == 2
    return str(exc.value)


# -- runbook files --------------------------------------------------------------------------
def test_the_built_in_runbooks_load_and_cover_the_stacks_disk_alert() -> None:
    book = spec.load(None, STEPS)
    disk = book.match("LikkerBrokerDiskFullWithinOneHour", {})
    assert disk is not None and disk.name == "disk-full"
    names = [s.step for s in disk.steps]
    # Pause before the move and resume after it, always: the lesson of the dashboard drill.
    assert names.index("takers pause") < names.index("shovel") < names.index("takers resume")
    assert disk.steps[names.index("takers resume")].when == "always"
    escalations = [s for s in disk.steps if s.step == "escalate"]
    assert [s.when for s in escalations] == ["escalated", "pending"]
    assert escalations[1].params["alertname"] == "LikkerRunbookAwaitsApproval"
    assert "purge" not in names
    assert book.mode is None  # observe unless the operator opts in


def test_an_alerts_runbook_annotation_wins_over_its_name() -> None:
    book = spec.load(None, STEPS)
    found = book.match("SomethingElse", {"runbook": "disk-full"})
    assert found is not None and found.name == "disk-full"
    assert book.match("SomethingElse", {}) is None


def test_defaults_fill_in_and_ints_count_as_floats() -> None:
    book = parse(
        '[runbooks.x]\nalerts = ["A"]\n[[runbooks.x.steps]]\nstep = "verify-forecast"\n'
        "settle_s = 5\n"
    )
    params = book.runbooks["x"].steps[0].params
    assert params["settle_s"] == 5.0 and isinstance(params["settle_s"], float)
    assert params["horizon_s"] == 3600.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mode = 'yolo'\n", "mode must be one of observe, enforce, approve, not 'yolo'"),
        ("[runbooks]\n", "no [runbooks.NAME] table"),
        ("[runbooks.x]\nalerts = ['A']\n", "needs at least one [[runbooks.x.steps]]"),
        ("[runbooks.x]\nalert = ['A']\n", "unknown key(s) alert"),
        ("[runbooks.x]\n[[runbooks.x.steps]]\nstep = 'shovl'\n", "unknown step 'shovl'; known:"),
        (
            "[runbooks.x]\n[[runbooks.x.steps]]\nstep = 'shovel'\nsauce = 1\n",
            "step 'shovel' has no parameter 'sauce'",
        ),
        (
            "[runbooks.x]\n[[runbooks.x.steps]]\nstep = 'find-offenders'\nmax_actors = 'lots'\n",
            "runbooks.x.steps[0]: max_actors must be int",
        ),
        (
            "[runbooks.x]\n[[runbooks.x.steps]]\nstep = 'find-offenders'\nmax_actors = true\n",
            "max_actors must be an integer",
        ),
        (
            "[runbooks.x]\n[[runbooks.x.steps]]\nstep = 'shovel'\nwhen = 'later'\n",
            "when must be one of ok, escalated, always",
        ),
        (
            "[runbooks.x]\n[[runbooks.x.steps]]\nstep = 'shovel'\ndestination = '{dql}'\n",
            "unknown placeholder {dql}",
        ),
        (
            "[runbooks.x]\n[[runbooks.x.steps]]\nstep = 'purge'\narchive = false\n",
            "never purges without an archive",
        ),
        (
            "[runbooks.x]\nalerts=['A']\n[[runbooks.x.steps]]\nstep='shovel'\n"
            "[runbooks.y]\nalerts=['A']\n[[runbooks.y.steps]]\nstep='shovel'\n",
            "alert 'A' is already handled by x",
        ),
        ("max_runs_per_hour = -1\n", "max_runs_per_hour must be an integer >= 0"),
        ("[runbooks.x\n", "rb.toml: not valid TOML"),
    ],
)
def test_a_mistake_in_a_runbook_file_is_named(text: str, expected: str) -> None:
    assert expected in error(text)


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(spec.RunbookError, match="cannot read"):
        spec.load(tmp_path / "nope.toml", STEPS)


def test_templates_fill_labels_and_refuse_unknown_names() -> None:
    values = {"runbook": "disk-full", "labels": {"instance": "n1"}}
    assert render("{runbook} on {labels[instance]}{labels[none]}", values) == "disk-full on n1"
    with pytest.raises(ValueError, match="unknown placeholder"):
        render("{nope}", values)


# -- offenders ------------------------------------------------------------------------------
class Msg:
    def __init__(self, actor: str, deliveries: int) -> None:
        self.actor = actor
        self.bot = int(actor[4:]) if actor.startswith("bot:") else None
        self.delivery_count = deliveries


def sample_of(**groups: tuple[int, int]) -> list[Msg]:
    """actor=(messages, deliveries each)."""
    msgs = []
    for actor, (n, d) in groups.items():
        msgs += [Msg(actor.replace("_", ":"), d) for _ in range(n)]
    return msgs


def test_the_banned_users_bot_is_chosen_and_humans_are_not() -> None:
    # The incident: bot 1 owns every refusal; a human had one transient failure.
    msgs = sample_of(bot_1=(900, 20), user_7=(50, 0), user_8=(3, 1)) + sample_of(bot_1=(100, 0))
    choice = offenders.choose(offenders.actor_stats(msgs, 5), offenders.Thresholds())
    assert choice.bots == [1]
    assert not choice.too_many


def test_when_everyone_cycles_nobody_is_blocked() -> None:
    # The likes service is down: every actor's messages cycle; blocking them all is wrong.
    msgs = sample_of(**{f"bot_{i}": (40, 10) for i in range(1, 5)})
    t = offenders.Thresholds(min_refusal_share=0.2, max_actors=3)
    choice = offenders.choose(offenders.actor_stats(msgs, 5), t)
    assert choice.selected == [] and choice.too_many == 4
    spread = sample_of(**{f"bot_{i}": (40, 10) for i in range(1, 11)})
    choice = offenders.choose(offenders.actor_stats(spread, 5), t)
    assert choice.selected == [] and not choice.too_many
    assert all("below 20%" in why for _, why in choice.passed_over)


def test_humans_and_small_fry_are_passed_over_with_reasons() -> None:
    msgs = sample_of(user_7=(100, 9), bot_2=(5, 50))
    choice = offenders.choose(offenders.actor_stats(msgs, 5), offenders.Thresholds())
    reasons = {s.actor: why for s, why in choice.passed_over}
    assert choice.selected == []
    assert reasons["user:7"] == "not a bot (only bots are acted on)"
    assert reasons["bot:2"].startswith("5 cycling message(s), fewer than 10")


def test_recovered_means_not_filling_within_the_alerts_horizon() -> None:
    assert recovered({"status": "not filling"}, 3600)
    assert recovered({"status": "filling", "eta_low_s": 7200.0}, 3600)
    assert not recovered({"status": "filling", "eta_low_s": 600.0}, 3600)
    assert not recovered({"status": "not enough data"}, 3600)
    assert not recovered(None, 3600)


# -- the run's control flow -------------------------------------------------------------------
class Scripted:
    """A step that answers what it is told to (for the engine's control flow only)."""

    def __init__(self, name: str, status: str = "ok", raises: bool = False) -> None:
        self.name = name
        self.description = ""
        self.params: dict[str, Param] = {"note": Param(str, "")}
        self.status = status
        self.raises = raises
        self.seen: list[dict[str, Any]] = []

    def run(self, ctx: RunContext, params: dict[str, Any]) -> StepResult:
        self.seen.append(params)
        if self.raises:
            raise RuntimeError("plugin bug")
        return StepResult(self.status, f"{self.name} said {self.status}")  # type: ignore[arg-type]


def run_with(tmp_path: Path, steps: list[tuple[Scripted, str]]) -> engine.RunReport:
    registry = {s.name: s for s, _ in steps}
    text = "[runbooks.t]\nalerts = ['A']\n" + "".join(
        f"[[runbooks.t.steps]]\nstep = '{s.name}'\nwhen = '{when}'\nnote = '{{alertname}}'\n"
        for s, when in steps
    )
    book = spec.parse(text, "t.toml", registry)
    profile = Profile(state_dir=str(tmp_path), audit_db_url=f"sqlite:///{tmp_path}/a.db")
    alert = AlertInfo("A", "f:t", "f", {"alertname": "A"}, {})
    ctx = RunContext(profile, "enforce", "t", alert)
    return engine.run(book.runbooks["t"], ctx, registry)


def test_an_escalation_skips_ok_steps_and_runs_escalated_and_always(tmp_path: Path) -> None:
    find, act, tidy, page = (
        Scripted("find", "escalate"),
        Scripted("act"),
        Scripted("tidy"),
        Scripted("page"),
    )
    report = run_with(tmp_path, [(find, "ok"), (act, "ok"), (tidy, "always"), (page, "escalated")])
    assert [s.status for s in report.steps] == ["escalate", "skipped", "ok", "ok"]
    assert report.outcome == "escalated"
    assert act.seen == [] and page.seen == [{"note": "A"}]  # templates filled at run time


def test_a_step_that_raises_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    buggy, tidy, page = Scripted("buggy", raises=True), Scripted("tidy"), Scripted("page")
    report = run_with(tmp_path, [(buggy, "ok"), (tidy, "always"), (page, "escalated")])
    assert report.steps[0].status == "failed"
    assert report.steps[0].summary == "RuntimeError: plugin bug"
    assert report.outcome == "failed" and page.seen


def test_a_clean_run_never_escalates(tmp_path: Path) -> None:
    a, page = Scripted("a"), Scripted("page")
    report = run_with(tmp_path, [(a, "ok"), (page, "escalated")])
    assert report.outcome == "ok" and page.seen == []


def test_stop_ends_the_run_quietly(tmp_path: Path) -> None:
    a, b, page = Scripted("a", "stop"), Scripted("b"), Scripted("page")
    report = run_with(tmp_path, [(a, "ok"), (b, "ok"), (page, "escalated")])
    assert report.outcome == "stopped" and b.seen == [] and page.seen == []


# -- the receiver's brakes ------------------------------------------------------------------
def test_the_rate_limiter_is_a_sliding_window() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 3600, clock=lambda: now[0])
    assert limiter.try_acquire() and limiter.try_acquire()
    assert not limiter.try_acquire()
    assert limiter.retry_in() == 3600
    now[0] = 3599.0
    assert not limiter.try_acquire()
    now[0] = 3600.0
    assert limiter.try_acquire()
    assert not RateLimiter(0, 60).try_acquire()


def test_one_remediation_per_target() -> None:
    locks = TargetLocks()
    assert locks.try_take("likker.actions", "alert-1") is None
    assert locks.try_take("likker.actions", "alert-2") == "alert-1"
    assert locks.try_take("other", "alert-2") is None
    locks.release("likker.actions", "alert-2")  # not the holder: no effect
    assert locks.held() == {"likker.actions": "alert-1", "other": "alert-2"}
    locks.release("likker.actions", "alert-1")
    assert locks.try_take("likker.actions", "alert-3") is None
