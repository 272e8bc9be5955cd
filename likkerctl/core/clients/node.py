"""RabbitMQ's own CLI tools against a node likkerctl can reach by Erlang distribution.

Used for what AMQP cannot do without side effects: reading a quorum queue's ready messages
in place (the Ra aux command `peek` that `rabbitmq-queues peek` runs), which returns each
message with its delivery count and changes nothing. Needs the node's name and Erlang
cookie (the profile's `node` and `erlang_cookie_file`; the local stack's are known).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from likkerctl.core.errors import Failed
from likkerctl.core.profile import Profile

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
# One call peeks this many positions; each position is an Erlang-side lookup.
PEEK_BATCH = 2000


def rabbitmqctl() -> str | None:
    local = RABBIT_BIN / "rabbitmqctl"
    return str(local) if local.exists() else shutil.which("rabbitmqctl")


def configured(profile: Profile) -> str | None:
    """Why the node cannot be reached by the CLI tools, or None when it is configured."""
    if not profile.node:
        return "no node configured (profile `node` and `erlang_cookie_file`)"
    if not profile.erlang_cookie_file or not Path(profile.erlang_cookie_file).is_file():
        return f"no readable Erlang cookie file for {profile.node}"
    if rabbitmqctl() is None:
        return "RabbitMQ's CLI tools (rabbitmqctl) are not installed here"
    return None


@dataclass(frozen=True)
class Peeked:
    """One ready message read in place: AMQP-encoded properties, body, delivery count."""

    position: int
    delivery_count: int
    exchange: str
    routing_keys: list[str]
    properties: bytes
    body: bytes


def _erl_bin(text: str) -> str:
    return "<<" + ",".join(str(b) for b in text.encode()) + ">>"


def _peek_expr(vhost: str, queue: str, first: int, last: int) -> str:
    # Each message: "count exchange keys props body" (base64 fields), records joined by ";".
    return f"""
{{ok, Q}} = rabbit_amqqueue:lookup(rabbit_misc:r({_erl_bin(vhost)}, queue, {_erl_bin(queue)})),
quorum = amqqueue:get_type(Q) =:= rabbit_quorum_queue andalso quorum,
L = amqqueue:get_pid(Q),
B = fun(X) -> base64:encode(iolist_to_binary(X)) end,
One = fun(P) ->
  case ra:aux_command(L, {{peek, P}}) of
    {{ok, {{H, {{basic_message, {{resource, _, exchange, X}}, Ks, C0, _, _}}}}}} ->
      C = rabbit_binary_generator:ensure_content_encoded(C0, rabbit_framing_amqp_0_9_1),
      N = case H of #{{delivery_count := D}} -> D; _ -> 0 end,
      [integer_to_binary(N), $\\s, B(X), $\\s, B(lists:join(<<"\\n">>, Ks)), $\\s,
       B(element(4, C)), $\\s, B(lists:reverse(element(6, C)))];
    {{ok, Other}} -> error({{unsupported_message_record, element(1, element(2, Other))}});
    _ -> stop
  end
end,
Loop = fun Loop(P, Acc) when P > {last} -> lists:reverse(Acc);
           Loop(P, Acc) -> case One(P) of stop -> lists:reverse(Acc);
                                          R -> Loop(P + 1, [R | Acc]) end end,
iolist_to_binary(lists:join($;, Loop({first}, []))).
"""


def _run(profile: Profile, expr: str, timeout: float) -> str:
    ctl = rabbitmqctl()
    assert ctl and profile.node and profile.erlang_cookie_file
    with tempfile.TemporaryDirectory(prefix="likkerctl-node-") as home:
        # A private HOME holding a copy of the cookie: the CLI reads $HOME/.erlang.cookie,
        # and a cookie on the command line would show in `ps`.
        cookie = Path(home) / ".erlang.cookie"
        shutil.copyfile(profile.erlang_cookie_file, cookie)
        cookie.chmod(0o400)
        env = {"HOME": home, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}
        if profile.epmd_port:
            env["ERL_EPMD_PORT"] = profile.epmd_port
        try:
            proc = subprocess.run(
                [ctl, "-q", "-n", profile.node, "eval", expr],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise Failed(f"rabbitmqctl on {profile.node} did not answer in {timeout:.0f}s") from exc
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        first = lines[0] if lines else f"exit {proc.returncode}"
        raise Failed(f"rabbitmqctl on {profile.node}: {first[:200]}")
    return proc.stdout


def _binary_text(printed: str) -> str:
    """The contents of an Erlang binary as `~p` prints it (possibly split over lines)."""
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', printed)).replace("\\n", "\n")


def peek(profile: Profile, queue: str, count: int, timeout: float = 60.0) -> list[Peeked]:
    """The first `count` ready messages of a quorum queue, read in place (no side effect)."""
    out: list[Peeked] = []
    first = 1
    while len(out) < count:
        last = min(first + PEEK_BATCH, count + 1) - 1
        text = _binary_text(_run(profile, _peek_expr(profile.vhost, queue, first, last), timeout))
        batch = [r for r in text.split(";") if r]
        for offset, record in enumerate(batch):
            n, exchange, keys, props, body = record.split(" ")
            out.append(
                Peeked(
                    first + offset,
                    int(n),
                    base64.b64decode(exchange).decode(errors="replace"),
                    base64.b64decode(keys).decode(errors="replace").split("\n"),
                    base64.b64decode(props),
                    base64.b64decode(body),
                )
            )
        if len(batch) < last - first + 1:
            break
        first = last + 1
    return out
