"""Benchmark: how long `likkerctl --help`, `status` and `forecast` take against a stack.

Run:  .venv/bin/python bench/bench_cli.py [--rounds 15] [--backlog 20000] [--baseline REV]
                                          [--bytecode cached|off]
      .venv/bin/python bench/bench_cli.py --imports --baseline REV [--rounds 15]

Starts a stack (two takers, the `requeue` policy) and times each command as a new process,
the way a person runs it (`status` and `forecast` with `--json`): first on the idle stack,
then during a storm (a backlog of contract messages the takers requeue forever, which keeps
both cores busy). Reference, in the same rounds: a Python process that imports `requests`
and makes the one management API call (`/api/overview`), the least any Python tool can do
to answer. Wall-clock medians and p90s, and their ratios to the reference, go to stdout as
JSON; docs/BENCHMARKS.md records them.

`--baseline REV` adds a second variant of each command, likkerctl as it was at REV (taken
out with `git archive` into a temp dir), run in the same rounds against the same stack,
interleaved with the current tree's (the order alternates round by round), and reports the
ratio after/before. Both variants run on this interpreter and virtualenv.

`--bytecode cached` (the default) keeps every module's .pyc in the run's temp dir
(PYTHONPYCACHEPREFIX), written by untimed first runs, as an installed likkerctl runs;
`--bytecode off` sets PYTHONDONTWRITEBYTECODE=1, so the trees' modules (which have no .pyc)
are compiled on every run, as this checkout runs when the environment sets it.

`--imports` (with `--baseline`) times nothing: for `--help`, `version`, `status` and
`forecast` it counts the modules each variant imports and sums `-X importtime`'s cumulative
time, and lists the modules imported after but not before, with the import chain of each
one that is not just a module renamed by the refactor (bench/importtime.py).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.importtime import (  # noqa: E402
    TRACER,
    chain,
    grouped,
    in_tree,
    parse_importtime,
    source_lines,
    top_level_importers,
    total_us,
)
from tests.helpers import fill_queue, start_stack, wait_for  # noqa: E402

# Not inherited: PYTHONPATH is set per variant, the other two by --bytecode.
OWN_VARS = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
TIMED = {"--help": ["--help"], "status": ["status", "--json"], "forecast": ["forecast", "--json"]}
IMPORTS = {
    "--help": ["--help"],
    "version": ["version"],
    "status": ["status", "--json"],
    "forecast": ["forecast", "--json"],
}


@dataclass(frozen=True)
class Variant:
    """One likkerctl tree, run as `python -P -c 'from <entry> import main; ...' ARGS`.

    The tree is the only entry of PYTHONPATH, and `-P` keeps the working directory (and
    a script's directory) off sys.path: with `-c`, sys.path[0] would otherwise be the
    working directory, i.e. /work/main's likkerctl whatever PYTHONPATH says. Site packages
    are processed as for the console script, so the venv's editable install of /work/main
    is there too, but its finder sits after PathFinder in sys.meta_path: it answers only for
    `likkerctl.*`/`stack.*` names the tree on PYTHONPATH lacks. `trace` checks, per command,
    that every `likkerctl.*` and `stack.*` module loaded came from the variant's own tree.
    """

    name: str  # "after" (the current tree) or "before" (the baseline)
    tree: Path
    entry: str  # the console script's target, "module:function", from the tree's pyproject

    @classmethod
    def of(cls, name: str, tree: Path) -> Variant:
        pyproject = tomllib.loads((tree / "pyproject.toml").read_text())
        return cls(name, tree, pyproject["project"]["scripts"]["likkerctl"])

    def argv(self, args: list[str], *, prelude: str = "", python_opts: tuple = ()) -> list[str]:
        module, function = self.entry.split(":")
        code = (
            f"{prelude}\nimport sys\nsys.argv[0] = 'likkerctl'\n"
            f"from {module} import {function}\nsys.exit({function}())"
        )
        return [sys.executable, "-P", *python_opts, "-c", code, *args]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, "PYTHONPATH": str(self.tree)}


def materialise(rev: str, dest: Path) -> str:
    """REV's tree into dest with `git archive` (this checkout's index and files untouched)."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", sha], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(dest, filter="data")
    return sha


def git(*args: str) -> str:
    run = subprocess.run(
        ["git", "--no-optional-locks", "-C", str(ROOT), *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return run.stdout.strip()


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[-3:]} exited {done.returncode}: {done.stderr[-2000:]}")
    return done


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall-clock seconds, the child's user + system CPU seconds)."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, argv[-3:])
    return wall, usage.ru_utime + usage.ru_stime


def trace(variant: Variant, args: list[str], env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """One untimed run with the import tracer: importers, and the tree check (see Variant)."""
    out = tmp / f"trace-{variant.name}-{args[0].strip('-')}.json"
    tenv = {**variant.env(env), "BENCH_TREE": str(variant.tree), "BENCH_TRACE_OUT": str(out)}
    run(variant.argv(args, prelude=TRACER), tenv)
    report = json.loads(out.read_text())
    if report["outside_tree"]:
        raise RuntimeError(
            f"{variant.name} imported outside {variant.tree}: {report['outside_tree']}"
        )
    return report


def p90(xs: list[float]) -> float:
    return sorted(xs)[int(0.9 * (len(xs) - 1))]


def ordered(variants: list[Variant], round_no: int) -> list[Variant]:
    """after, before in even rounds; before, after in odd ones."""
    return variants if round_no % 2 == 0 else variants[::-1]


def figures(times: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """times: {"reference": [(wall, cpu)], command: {variant: [(wall, cpu)]}}."""
    commands = [c for c in times if c != "reference"]
    wall: dict[str, Any] = {"reference": [w for w, _ in times["reference"]]}
    cpu: dict[str, Any] = {"reference": [c for _, c in times["reference"]]}
    for c in commands:
        wall[c] = {v: [w for w, _ in times[c][v]] for v in names}
        cpu[c] = {v: [u for _, u in times[c][v]] for v in names}
    ref = statistics.median(wall["reference"])
    ref_cpu = statistics.median(cpu["reference"])
    median = {c: {v: statistics.median(wall[c][v]) for v in names} for c in commands}
    cpu_median = {c: {v: statistics.median(cpu[c][v]) for v in names} for c in commands}
    out: dict[str, Any] = {
        "median_s": {"reference": round(ref, 3)}
        | {c: {v: round(m, 3) for v, m in median[c].items()} for c in commands},
        "p90_s": {"reference": round(p90(wall["reference"]), 3)}
        | {c: {v: round(p90(wall[c][v]), 3) for v in names} for c in commands},
        "vs_reference": {c: {v: round(m / ref, 2) for v, m in median[c].items()} for c in commands},
        # CPU time (user + system) of the process: what the load on the machine moves least.
        "cpu_median_s": {"reference": round(ref_cpu, 3)}
        | {c: {v: round(m, 3) for v, m in cpu_median[c].items()} for c in commands},
    }
    if "before" in names:
        out["after_vs_before"] = {
            c: round(median[c]["after"] / median[c]["before"], 3) for c in commands
        }
        # The same from each round's own pair: less sensitive to load drifting during the run.
        out["after_vs_before_paired"] = {
            c: round(
                statistics.median(
                    a / b for a, b in zip(wall[c]["after"], wall[c]["before"], strict=True)
                ),
                3,
            )
            for c in commands
        }
        out["cpu_after_vs_before"] = {
            c: round(cpu_median[c]["after"] / cpu_median[c]["before"], 3) for c in commands
        }
    return out


def bench_times(
    variants: list[Variant], env: dict[str, str], reference: list[str], args: Any, stack: Any
) -> dict[str, Any]:
    names = [v.name for v in variants]
    phases: dict[str, dict[str, Any]] = {}
    for phase in ("idle", "storm"):
        if phase == "storm":
            fill_queue(stack.settings.amqp_url, "likker.actions", args.backlog, declare=False)
        times: dict[str, Any] = {"reference": []}
        times |= {c: {v: [] for v in names} for c in TIMED}
        for round_no in range(args.rounds):
            times["reference"].append(timed(reference, env))
            for command, cargs in TIMED.items():
                for variant in ordered(variants, round_no):
                    times[command][variant.name].append(
                        timed(variant.argv(cargs), variant.env(env))
                    )
        phases[phase] = figures(times, names)
    return phases


def bench_imports(
    variants: list[Variant], env: dict[str, str], traces: dict[tuple[str, str], Any], args: Any
) -> dict[str, Any]:
    after, before = variants
    out: dict[str, Any] = {}
    for command, cargs in IMPORTS.items():
        runs: dict[str, list[list[Any]]] = {"after": [], "before": []}
        for round_no in range(args.rounds):
            for variant in ordered(variants, round_no):
                done = run(variant.argv(cargs, python_opts=("-X", "importtime")), variant.env(env))
                runs[variant.name].append(parse_importtime(done.stderr))
        sets = {v: [{i.name for i in r} for r in rs] for v, rs in runs.items()}
        counts = {v: sorted({len(s) for s in ss}) for v, ss in sets.items()}
        total = {v: statistics.median(total_us(r) for r in rs) / 1e6 for v, rs in runs.items()}
        ours = {  # the self time of likkerctl's own modules: executing them, not what they import
            v: statistics.median(
                sum(i.self_us for i in r if i.name.partition(".")[0] == "likkerctl") for r in rs
            )
            / 1e6
            for v, rs in runs.items()
        }
        union = {v: set.union(*ss) for v, ss in sets.items()}
        extra = union["after"] - union["before"]
        gone = union["before"] - union["after"]
        per_package = {v: {p: len(ms) for p, ms in grouped(union[v]).items()} for v in union}
        # Modules per top-level package, before and after: every package whose count changed
        # or that brings 20 modules or more.
        by_package = {
            p: {"before": per_package["before"].get(p, 0), "after": per_package["after"].get(p, 0)}
            for p in per_package["after"] | per_package["before"]
        }
        by_package = {
            p: n for p, n in by_package.items() if n["before"] != n["after"] or n["after"] >= 20
        }
        # An extra likkerctl module that the baseline tree also has is a new import, not a
        # module the refactor moved or split; so is every extra module outside likkerctl.
        new = sorted(m for m in extra if not m.startswith("likkerctl.") or in_tree(m, before.tree))
        tr = traces[(after.name, command)]
        out[command] = {
            "modules": {v: c[0] if len(c) == 1 else c for v, c in counts.items()},
            "modules_by_package": by_package,
            "importtime_total_s": {v: round(t, 3) for v, t in total.items()},
            "importtime_after_vs_before": round(total["after"] / total["before"], 3),
            "likkerctl_self_s": {v: round(t, 4) for v, t in ours.items()},
            "likkerctl_source_lines": {
                v.name: source_lines(v.tree, traces[(v.name, command)]["modules"]) for v in variants
            },
            "imported_after_not_before": grouped(extra),
            "imported_before_not_after": grouped(gone),
            "new_imports": {
                m: {
                    "chain": " → ".join(chain(tr, m)),
                    "imported_at_import_time_by": top_level_importers(after.tree, tr["modules"], m),
                }
                for m in new
            },
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--baseline", metavar="REV", help="also run likkerctl as of REV")
    parser.add_argument("--imports", action="store_true", help="compare imports, time nothing")
    parser.add_argument(
        "--bytecode",
        choices=["cached", "off"],
        default="cached",
        help="cached: .pyc files written on the untimed first runs and read after, as for an "
        "installed likkerctl; off: PYTHONDONTWRITEBYTECODE=1, as this checkout runs when the "
        "environment sets it, so likkerctl's modules are compiled on every run",
    )
    args = parser.parse_args()
    if args.imports and not args.baseline:
        parser.error("--imports needs --baseline")
    with tempfile.TemporaryDirectory(prefix="likker-bench-") as tmp_name:
        tmp = Path(tmp_name)
        state = tmp / "state"
        state.mkdir()
        variants = [Variant.of("after", ROOT)]
        revs = {"after": git("rev-parse", "HEAD")}
        # What the current tree adds to HEAD where likkerctl runs from (untracked files too).
        changed = [
            line.split(maxsplit=1)[1]
            for line in git("status", "--porcelain", "--", "likkerctl", "stack").splitlines()
        ]
        if changed:
            revs["after"] += f" + uncommitted: {', '.join(changed)}"
        if args.baseline:
            revs["before"] = materialise(args.baseline, tmp / "baseline")
            variants.append(Variant.of("before", tmp / "baseline"))
        stack = start_stack(state, takers=2, retry_policy="requeue", taker_rate=0.0)
        try:
            env = {k: v for k, v in os.environ.items() if k not in OWN_VARS}
            env["LIKKER_STATE_DIR"] = str(state)
            if args.bytecode == "cached":  # for every module, in our temp dir, not the trees
                env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
            else:
                env["PYTHONDONTWRITEBYTECODE"] = "1"
            mgmt = stack.settings.management_url
            reference = [
                sys.executable,
                "-c",
                f"import requests; requests.get({mgmt + '/api/overview'!r}, "
                "auth=('guest', 'guest'), timeout=5).raise_for_status()",
            ]

            # Let Prometheus scrape the broker, so `forecast` answers from it as it would.
            def on_prometheus() -> bool:
                for v in variants:
                    done = subprocess.run(
                        v.argv(["forecast", "--json"]), env=v.env(env), capture_output=True
                    )
                    if done.returncode != 0 or json.loads(done.stdout)["source"] != "prometheus":
                        return False
                return True

            wait_for(on_prometheus, 60, 2)
            # Untimed: each variant imports only its own tree (raises if not); and every
            # module's bytecode is written with --bytecode cached.
            run(reference, env)
            traces = {
                (v.name, command): trace(v, cargs, env, tmp)
                for v in variants
                for command, cargs in IMPORTS.items()
            }
            report: dict[str, Any] = {
                "date": datetime.now(UTC).date().isoformat(),
                "machine": f"{os.cpu_count()} cores {platform.machine()}",
                "python": platform.python_version(),
                "rounds": args.rounds,
                "bytecode": args.bytecode,
                "variants": {
                    v.name: {
                        "rev": revs[v.name],
                        "entry": v.entry,
                        "likkerctl": traces[(v.name, "status")]["likkerctl_file"],
                        "likkerctl_and_stack_modules_checked": traces[(v.name, "status")][
                            "our_modules"
                        ],
                    }
                    for v in variants
                },
            }
            if args.imports:
                report["imports"] = bench_imports(variants, env, traces, args)
            else:
                report["backlog"] = args.backlog
                report |= bench_times(variants, env, reference, args, stack)
        finally:
            stack.down()
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
