"""Schemathesis against crmhub's OpenAPI document (issue 12, "Prove it"): no 5xx, no
unauthorised 2xx, with no token and with a `callcenter` token.

Run with the project's interpreter; schemathesis itself comes from a virtual environment of its
own, because the `caldav` dependency pulls a urllib3 replacement into the project's environment
that breaks schemathesis:

    .venv/bin/python .ci/schemathesis.py [--venv .ci/.schemathesis-venv]

It seeds a temporary SQLite database with the privacy tests' site (tests/e2e/privacy_site.py: a
user of each role, private mailboxes, a capped one, a PBX), serves it with `crmhub serve`, saves
the document, and runs the schemathesis CLI twice. Two checks gate: the built-in
`not_a_server_error` and `NoUnauthorisedSuccess` from .ci/schemathesis_hooks.py. Every other
check schemathesis runs by default (schema conformance, negative data, ...) is printed as advice,
with `--continue-on-failure` so that such a finding never cuts the gating checks short.

Exit status 0 only when both runs finished with no gating failure and no schemathesis error, the
token run got at least one 2xx (otherwise it proved nothing), and the server logged no traceback.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import db  # noqa: E402
from tests.e2e.conftest import (  # noqa: E402
    Server,
    ServerDidNotStart,
    launch_server,
    stop_server,
)
from tests.e2e.privacy_site import seed_privacy  # noqa: E402

HOOKS = Path(__file__).resolve().parent / "schemathesis_hooks.py"
DEFAULT_VENV = Path(__file__).resolve().parent / ".schemathesis-venv"
GATING = ("not_a_server_error", "NoUnauthorisedSuccess")  # the second: schemathesis_hooks.py
# Measured on the 2-core machine: one pass of 100 examples per operation takes about 55 s with
# the callcenter token; a budget of 90 s per run lets fuzzing and stateful testing cycle past one
# pass, and the whole script (seeding, server, both runs) takes about 190 s.
MAX_EXAMPLES = 100
MAX_TIME = 90
SERVER_START_TIMEOUT = 60.0
EXCERPT = 300  # characters of a body shown in a finding
NOT_ERRORS = ("Traceback", "INFO", "WARNING", "crmhub serving")  # server log lines to leave out


class CiFailure(Exception):
    """A reason the run cannot pass, said in one line for the CI log."""


@dataclass(frozen=True)
class Caller:
    name: str
    role: str | None
    token: str | None


@dataclass(frozen=True, order=True)
class Finding:
    check: str
    operation: str
    title: str
    message: str
    request: str
    response: str

    @property
    def gating(self) -> bool:
        return self.check in GATING


@dataclass
class RunResult:
    caller: Caller
    report: dict[str, Any]
    tally: dict[str, Any]
    findings: list[Finding]
    problems: list[str]  # why this run fails, besides gating findings


def start_server(database_url: str, workdir: Path) -> Server:
    try:
        return launch_server(database_url, workdir, SERVER_START_TIMEOUT)
    except ServerDidNotStart as e:
        raise CiFailure(str(e)) from e


def save_document(server: Server, token: str, target: Path) -> dict[str, Any]:
    """The document as a signed-in user gets it; it is not public."""
    answer = httpx.get(
        f"{server.url}/api/openapi.json", headers={"Authorization": f"Bearer {token}"}, timeout=20
    )
    if answer.status_code != 200:
        raise CiFailure(f"GET /api/openapi.json answered {answer.status_code}: {answer.text}")
    document: dict[str, Any] = answer.json()
    if not document.get("paths"):
        raise CiFailure("the OpenAPI document has no paths")
    target.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return document


def schemathesis_version(executable: Path) -> str:
    if not executable.exists():
        raise CiFailure(
            f"{executable} is missing: create its environment with "
            f"`python3 -m venv {executable.parent.parent} && "
            f"{executable.parent}/pip install 'schemathesis>=4.32.5,<5'`"
        )
    done = subprocess.run(
        [str(executable), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise CiFailure(f"{executable} --version failed: {done.stderr.strip() or done.stdout}")
    return done.stdout.strip()


def run_schemathesis(
    executable: Path, document: Path, server: Server, caller: Caller, args: argparse.Namespace
) -> RunResult:
    workdir = document.parent
    stem = caller.name.replace(" ", "-")
    ndjson, report, tally = (workdir / f"{stem}.{ext}" for ext in ("ndjson", "json", "tally.json"))
    command = [
        str(executable),
        "run",
        str(document),
        "--url",
        server.url,
        "--max-examples",
        str(args.max_examples),
        "--max-time",
        str(args.max_time),
        "--workers",
        "1",
        "--continue-on-failure",
        "--generation-database",
        "none",
        "--report",
        "ndjson,json",
        "--report-ndjson-path",
        str(ndjson),
        "--report-json-path",
        str(report),
        "--no-color",
    ]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CI_SCHEMATHESIS_")}
    env.update(SCHEMATHESIS_HOOKS=str(HOOKS), CI_SCHEMATHESIS_TALLY=str(tally))
    if caller.token is not None and caller.role is not None:
        command += ["--header", f"Authorization: Bearer {caller.token}"]
        env.update(CI_SCHEMATHESIS_ROLE=caller.role, CI_SCHEMATHESIS_TOKEN=caller.token)
    log = workdir / f"{stem}.log"
    # Past the budget: the coverage phase, shrinking and writing the reports.
    timeout = args.max_time + 300
    with log.open("wb") as sink:
        try:
            done = subprocess.run(
                command,
                cwd=workdir,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise CiFailure(f"schemathesis ({caller.name}) ran past {timeout} s; see {log}") from e
    if done.returncode not in (0, 1) or not report.exists() or not ndjson.exists():
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
        raise CiFailure(f"schemathesis ({caller.name}) exited with {done.returncode}:\n{tail}")
    return judge(caller, json.loads(report.read_text(encoding="utf-8")), ndjson, tally)


def judge(caller: Caller, report: dict[str, Any], ndjson: Path, tally_file: Path) -> RunResult:
    problems = []
    if not report.get("complete"):
        problems.append(f"the run did not complete (stop reason: {report.get('stop_reason')})")
    for error in report.get("errors") or []:
        problems.append(f"schemathesis error, {error['count']} x: {error['title']}")
    if not tally_file.exists():
        problems.append(f"{GATING[1]} never reported: the hooks module was not loaded")
        tally: dict[str, Any] = {"answers": {}, "allowed": []}
    else:
        tally = json.loads(tally_file.read_text(encoding="utf-8"))
        if caller.role is not None and not tally["allowed"]:
            problems.append(
                f"no operation answered 2xx to the {caller.role} token, so the run proved nothing"
            )
    return RunResult(caller, report, tally, sorted(set(findings(ndjson))), problems)


def findings(ndjson: Path) -> Iterator[Finding]:
    """Every failed check of the run with the request and response that showed it."""
    with ndjson.open(encoding="utf-8") as events:
        for line in events:
            event = json.loads(line)
            scenario = event.get("ScenarioFinished")
            if scenario is None:
                continue
            recorder = scenario["recorder"]
            for case_id, checks in recorder.get("checks", {}).items():
                for check in checks:
                    if check["status"] != "failure":
                        continue
                    failure = check["failure_info"]["failure"]
                    interaction = recorder.get("interactions", {}).get(case_id, {})
                    yield Finding(
                        check=check["name"],
                        operation=failure["operation"],
                        title=failure["title"],
                        message=failure["message"] or failure["title"],
                        request=_request(interaction.get("request")),
                        response=_response(interaction.get("response")),
                    )


def _text(content: Any) -> str:
    if isinstance(content, dict) and "$base64" in content:
        raw = base64.b64decode(content["$base64"]).decode("utf-8", errors="replace")
    else:
        raw = "" if content is None else str(content)
    return raw if len(raw) <= EXCERPT else raw[:EXCERPT] + "..."


def _request(request: dict[str, Any] | None) -> str:
    if not request:
        return "(not recorded)"
    headers = " ".join(f"-H '{k}: {', '.join(v)}'" for k, v in request.get("headers", {}).items())
    body = f" -d '{_text(request['body'])}'" if request.get("body") else ""
    return f"curl -X {request['method']} {headers}{body} '{request['uri']}'"


def _response(response: dict[str, Any] | None) -> str:
    if not response:
        return "(no response)"
    return f"{response['status_code']} {_text(response.get('content'))}"


def print_run(result: RunResult) -> None:
    """What the run tried, each gating failure with up to three examples, and the advice."""
    report = result.report
    print(
        f"-- {result.caller.name}: {report['test_cases']['generated']} test cases in "
        f"{report['running_time']:.0f} s, seed {report['seed']}"
    )
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(result.tally["answers"].items()))
    print(f"   answers checked: {answers or 'none'}")
    if result.caller.role is not None:
        allowed = ", ".join(result.tally["allowed"]) or "none"
        print(f"   2xx to the {result.caller.role} token from: {allowed}")
    failures: dict[tuple[str, str, str], list[Finding]] = {}
    advice: dict[tuple[str, str], list[Finding]] = {}
    for f in result.findings:
        if f.gating:
            failures.setdefault((f.check, f.operation, f.message.splitlines()[0]), []).append(f)
        else:
            advice.setdefault((f.check, f.title), []).append(f)
    for (check, operation, message), found in sorted(failures.items()):
        print(f"   FAIL {check}: {operation}: {message} ({len(found)} requests)")
        for f in found[:3]:
            print(f"        {f.request}\n          -> {f.response}")
    for (check, title), found in sorted(advice.items()):
        operations = sorted({f.operation for f in found})
        print(f"   advice {check} ({title}): {len(operations)} operations: {', '.join(operations)}")
        example = found[0]
        print(f"        e.g. {example.operation}: {example.message.splitlines()[0]}")
        print(f"        {example.request}\n          -> {example.response}")
    for problem in result.problems:
        print(f"   FAIL {problem}")


def traceback_gist(output: str) -> str:
    """The error lines and crmhub's own frames of the server's tracebacks, not the library's."""
    gist = [
        line
        for line in output.splitlines()
        if (line and not line[0].isspace() and not line.startswith(NOT_ERRORS))
        or (line.startswith("  File ") and "site-packages" not in line)
    ]
    return "\n".join(f"        {line.strip()}" for line in gist)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="schemathesis against crmhub's API, for CI")
    parser.add_argument(
        "--venv",
        type=Path,
        default=Path(os.environ.get("SCHEMATHESIS_VENV", DEFAULT_VENV)),
        help="the virtual environment with schemathesis 4 (env SCHEMATHESIS_VENV)",
    )
    parser.add_argument("--max-examples", type=int, default=MAX_EXAMPLES, help="per operation")
    parser.add_argument("--max-time", type=int, default=MAX_TIME, help="seconds per run")
    parser.add_argument("--seed", type=int, help="repeat a run: the seed it printed")
    parser.add_argument("--keep", action="store_true", help="keep the work folder on success")
    args = parser.parse_args(argv)
    args.venv = args.venv.resolve()  # schemathesis runs in the work folder
    started = time.monotonic()
    try:
        version = schemathesis_version(args.venv / "bin" / "schemathesis")
    except CiFailure as e:
        print(f"schemathesis: {e}", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="crmhub-schemathesis-"))
    passed = False
    try:
        passed = check_api(args, version, workdir)
    except CiFailure as e:
        sys.stdout.flush()
        print(f"schemathesis: {e}", file=sys.stderr)
    finally:
        print(f"schemathesis: {time.monotonic() - started:.0f} s in all")
        if passed and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"schemathesis: reports, logs and the database are in {workdir}")
    return 0 if passed else 1


def check_api(args: argparse.Namespace, version: str, workdir: Path) -> bool:
    """Seed, serve, run both callers, stop the server whatever happens, then judge."""
    executable = args.venv / "bin" / "schemathesis"
    database_url = f"sqlite:///{workdir / 'site.db'}"
    db.upgrade(database_url)
    _, tokens = seed_privacy(database_url, workdir)
    callers = (
        Caller("no token", None, None),
        Caller("callcenter", "callcenter", tokens["callcenter"]),
    )
    server = start_server(database_url, workdir)
    try:
        document = workdir / "openapi.json"
        paths = save_document(server, tokens["callcenter"], document)["paths"]
        print(
            f"schemathesis: {version}, {sum(map(len, paths.values()))} operations, at most "
            f"{args.max_examples} examples per operation and {args.max_time} s per run",
            flush=True,
        )
        results = []
        for caller in callers:
            print(f"schemathesis: running with {caller.name}", flush=True)
            results.append(run_schemathesis(executable, document, server, caller, args))
        exit_code = server.process.poll()
    finally:
        stop_server(server)
    for result in results:
        print_run(result)
    problems = [p for r in results for p in r.problems]
    if exit_code is not None:
        problems.append(f"crmhub serve died during the run (exit {exit_code})")
        print(f"   FAIL {problems[-1]}")
    output = server.output()
    if "Traceback" in output:
        problems.append(f"the server logged tracebacks ({server.log}):\n{traceback_gist(output)}")
        print(f"   FAIL {problems[-1]}")
    failed = sum(1 for r in results for f in r.findings if f.gating)
    advice = sum(1 for r in results for f in r.findings if not f.gating)
    print(
        f"schemathesis: {failed} requests failed {' or '.join(GATING)}, "
        f"{len(problems)} other problems, {advice} advisory findings"
    )
    return not failed and not problems


if __name__ == "__main__":
    sys.exit(main())
