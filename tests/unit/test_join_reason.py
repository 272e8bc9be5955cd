"""The one line a failed join quotes from rabbitmqctl's output."""

from __future__ import annotations

from stack.broker import failure_reason

# rabbitmqctl 3.x's output for a node that refuses the CLI's cookie (abridged).
COOKIE_MISMATCH = """Error: unable to perform an operation on node 'likker@localhost'. Please see \
diagnostics information and suggestions below.

Most common reasons for this are:

 * Target node is unreachable (e.g. due to hostname resolution, TCP connection or firewall issues)

DIAGNOSTICS
===========

likker@localhost:
  * connected to epmd (port 29602) on localhost
  * TCP connection succeeded but Erlang distribution failed
  * suggestion: check if the Erlang cookie is identical for all server nodes and CLI tools
  * suggestion: check if all server nodes and CLI tools use consistent hostnames

Current node details:
 * node name: 'rabbitmqcli-289-likker-2@localhost'
 * Erlang cookie hash: tcnnPdSeA3uh20+3V56xWw==
"""


def test_a_cookie_mismatch_is_quoted_by_its_error_and_first_suggestion() -> None:
    reason = failure_reason(COOKIE_MISMATCH)
    assert reason.startswith("Error: unable to perform an operation on node 'likker@localhost'.")
    assert reason.endswith(
        "suggestion: check if the Erlang cookie is identical for all server nodes and CLI tools"
    )
    assert "cookie hash" not in reason


def test_output_without_an_error_line_is_quoted_by_its_last_line() -> None:
    assert failure_reason("starting\nnode is already a member\n") == "node is already a member"
    assert failure_reason("  \n") == ""
