"""Webhook throughput and latency, with the app started the production way.

Starts ``hotline web --workers 2`` (two uvicorn processes with uvloop and httptools, each
accepting on a socket of its own; no access log; JSON logs at INFO, as docs/deploy.md sets
them, into /dev/null — until session 10 this ran at WARNING, which hid the line a served call's
end then wrote) on PostgreSQL and a Redis server (no RQ
worker: jobs wait in Redis, as they would for a busy worker pool), then drives it from a
separate load-generator process on loopback: ``wrk`` (Debian's package; ``make bench``
installs it) with ``bench_webhooks.lua``, one thread, fixed concurrency 32, cycling through
form posts precomputed here and signed exactly as Twilio signs them (twilio's RequestValidator
over the public URL and the form), each with its own MessageSid/CallSid so the
webhooks' deduplication never short-circuits. wrk is C and costs a few percent of one core; an
asyncio httpx generator (the first version of this script) took most of a core of the two the
app has, and set the floor's tail. Each scenario has a short warm-up, then a fixed duration.

Scenarios:

- ``ping``: ``POST /twilio/ping``, signed, constant TwiML, no database nor Redis: the floor
  (HTTP, form parsing, signature check, middleware). An ``async def`` since session 11, so it
  takes no thread: the greeting and the served call's end stopped taking one then, and a
  ``def`` floor (0.46–0.49 ms of app CPU against 0.36–0.39) would have flattered them;
- ``voice_first_step``: ``POST /twilio/voice`` for a new call: the greeting, which since
  session 4 is answered from the flow file alone (no claim, no state: nothing has happened yet),
  and since session 11 on the event loop;
- ``sms_new_ticket``: ``POST /twilio/sms`` from a new number with a need that opens a ticket.
  Since session 9 the webhook stores the text and the job that answers it (one statement) and
  wakes the workers' relay; the job (classify, route, open the ticket, reply through the REST
  API) is a worker's, and no worker runs here: ``benchmarks/bench_jobs.py`` measures how fast
  workers answer texts. (Before, the webhook did all of it: 0.046–0.048 of the floor.)
- ``call_status``: ``POST /twilio/call-status`` ``completed`` for calls that went through the
  flow and opened their ticket (the usual end of a call; their conversations are written in bulk
  before the phase, naming a ticket that one text of the SMS run opens, answered in a process of
  this script's: ``--answer-first-text``): the status is stored and the conversation closed,
  since session 11 by one statement per web process for every end that came meanwhile (a
  group commit: ``kb.db.GroupedStatement``), awaited on the event loop;
- ``call_status_abandoned``: the same callback for the calls of the voice run, which ended at
  the greeting: a callback ticket is opened for each (the costliest callback).

One figure per line: ``<scenario>_rps``, ``<scenario>_p50_ms``, ``<scenario>_p99_ms``,
``<scenario>_app_cpu_ms_per_request`` and ``<scenario>_postgres_cpu_ms_per_request`` (CPU time
the app's processes and PostgreSQL's spent per request served: steadier than throughput on a
shared machine), ``<scenario>_cpu_stolen_pct`` (the share of the machine's CPU time the
hypervisor gave to other tenants during the phase) and, for the real webhooks,
``<scenario>_rps_ratio`` (to the floor), ``<scenario>_p50_ratio`` and ``<scenario>_cpu_ratio``
(the floor's CPU per request, app and PostgreSQL, over the scenario's);
``sms_new_ticket_texts_stored`` counts the texts of the SMS runs (warm-up and requests still in
flight when wrk stopped included) and ``sms_new_ticket_jobs_written`` the answering jobs written
with them (the two must be equal). Any answer other than 200 counts in ``<scenario>_errors``.

Run (about 10 minutes with the defaults)::

    .venv/bin/python benchmarks/bench_webhooks.py [--seconds 10] [--warmup 2] [--rounds 3]
        [--web-threads N] [--only SCENARIO ...] [--profile DIR]

``--rounds`` runs every scenario that many times, each time right after a floor phase of its
own, and prints medians; each ratio is the median of the rounds' ratios, each taken against
the floor measured just before it (``<scenario>_rps_ratio_rounds`` lists them). On a machine
shared with other tenants the CPU on offer drifts from one minute to the next by a third (seen
in session 5: the floor at 1,059 and 1,589 req/s ten minutes apart, same code); a ratio of two
neighbouring phases drifts less.

``--only`` runs the floor and the named scenarios (``call_status`` needs ``sms_new_ticket``'s
ticket, ``call_status_abandoned`` the voice run's calls); ``--profile DIR`` samples the app's
workers with py-spy through each measured phase and writes collapsed stacks per scenario.

``BENCH_DATABASE_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/benchhooks``) and
``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/9``) choose the servers; the database's
public schema is **dropped** and made afresh (migrated and loaded here), vacuumed and analysed
before each scenario, and the Redis database is flushed after.
When either server does not answer, or wrk is not installed, it prints why and exits 0
(``make bench`` goes on).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LUA = Path(__file__).with_suffix(".lua")
TOKEN = "bench-auth-token-0123456789abcdef"
CONCURRENCY = 32
BODY = "我们公司在渝北区，想申请一笔贷款扩大生产"
# What a scenario's requests build on: the ticket of the SMS run, the calls of the voice run.
NEEDS = {"call_status": "sms_new_ticket", "call_status_abandoned": "voice_first_step"}
SCENARIOS = (
    "ping",
    "voice_first_step",
    "sms_new_ticket",
    "call_status",
    "call_status_abandoned",
)
# Distinct requests written per second of run: above what each scenario can serve here, so no
# request is sent twice (checked after each run).
REQUESTS_PER_SECOND = {
    "ping": 8000,
    "voice_first_step": 8000,
    "sms_new_ticket": 3000,
    "call_status": 4000,
    "call_status_abandoned": 1000,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_answers(database_url: str) -> str | None:
    """None when the database answers, else why not (bench_handlers uses it too)."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(database_url)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure: no benchmark
        return f"database {database_url} not reachable ({type(exc).__name__})"
    return None


def _servers_answer(database_url: str, redis_url: str) -> str | None:
    import redis

    reason = database_answers(database_url)
    if reason is not None:
        return reason
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis {redis_url} not reachable ({type(exc).__name__})"
    return None


# --- CPU spent, by the app's processes and by PostgreSQL's ---------------------------------------


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (those that ended meanwhile count as 0)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _steal_ticks() -> tuple[int, int]:
    """The machine's stolen and total CPU ticks so far (``/proc/stat``): time the hypervisor
    gave this VM's virtual CPUs to someone else."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def _steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return 100 * (after[0] - before[0]) / total if total > 0 else 0.0


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (``hotline web`` and its web processes)."""
    found, frontier = [root], [root]
    while frontier:
        pid = frontier.pop()
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            kids = [int(k) for k in children.read_text().split()]
            found += kids
            frontier += kids
    return found


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


# --- the requests, precomputed and signed ------------------------------------------------------


def _call_sid(scenario: str, n: int, run: str) -> str:
    # Served calls (``call_status``) are numbered apart from the calls of the other scenarios.
    return f"CA{run}{'c' if scenario == 'call_status' else 'a'}{n:023x}"


def _params(scenario: str, n: int, run: str) -> tuple[str, dict[str, str]]:
    call_sid = _call_sid(scenario, n, run)
    if scenario == "ping":
        return "/twilio/ping", {"CallSid": call_sid, "AccountSid": "AC" + "0" * 32}
    if scenario == "sms_new_ticket":
        sid = f"SM{run}{n:024x}"
        return "/twilio/sms", {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": f"+86139{(int(run, 16) * 1_000_000 + n) % 100_000_000:08d}",
            "To": "+862312345",
            "Body": BODY,
            "NumMedia": "0",
        }
    base = {
        "CallSid": call_sid,
        "AccountSid": "AC" + "0" * 32,
        "From": f"+86138{n % 100_000_000:08d}",
        "To": "+862312345",
        "Caller": f"+86138{n % 100_000_000:08d}",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    if scenario == "voice_first_step":
        return "/twilio/voice", {**base, "CallStatus": "ringing"}
    return "/twilio/call-status", {
        **base,
        "CallStatus": "completed",
        "CallDuration": "42",
        "SequenceNumber": "3",
    }


def _write_requests(
    target: Path, base_url: str, scenario: str, first: int, count: int, run: str
) -> None:
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TOKEN)
    with target.open("w", encoding="utf-8") as out:
        for n in range(first, first + count):
            path, params = _params(scenario, n, run)
            signature = validator.compute_signature(base_url + path, params)
            out.write(f"{path}\t{signature}\t{urlencode(params)}\n")


def _wrk(base_url: str, requests_file: Path, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{CONCURRENCY}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(LUA),
            base_url,
        ],
        env={**os.environ, "BENCH_REQUESTS": str(requests_file)},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"wrk failed:\n{out.stdout}\n{out.stderr}")
    raw = json.loads(out.stdout.strip().splitlines()[-1])
    elapsed = raw["duration_us"] / 1e6
    return {
        "count": raw["requests"],
        "elapsed": elapsed,
        "rps": raw["requests"] / elapsed if elapsed else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": {k: raw[k] for k in ("status_errors", "socket_errors", "timeouts") if raw[k]},
    }


def _quiesce(database_url: str, timeout: float = 120) -> None:
    """Wait until the app has finished the requests wrk left in flight when it stopped (the
    server still runs them): otherwise a slow scenario's backlog runs into the next phase."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(database_url)
    query = sqlalchemy.text(
        "SELECT (SELECT count(*) FROM webhook_delivery) + (SELECT count(*) FROM inbound_message)"
    )
    try:
        last, stable, deadline = -1, 0, time.monotonic() + timeout
        while stable < 2 and time.monotonic() < deadline:
            with engine.connect() as conn:
                count = int(conn.execute(query).scalar_one())
            stable = stable + 1 if count == last else 0
            last = count
            time.sleep(0.5)
    finally:
        engine.dispose()


def _scenario(
    base_url: str,
    database_url: str,
    scenario: str,
    run: str,
    seconds: float,
    warmup: float,
    work: Path,
    app_pid: int,
    env: dict[str, str],
    profile: Path | None = None,
) -> dict[str, Any]:
    """Warm up, then measure; the two phases use different requests (no repeat delivery), and
    each starts once the app has finished what the previous phase left in flight."""
    rate = REQUESTS_PER_SECOND[scenario]
    warm_count = int(rate * max(warmup, 1))
    if scenario == "call_status":
        _answer_first_text(env)
        _served_calls(database_url, run, warm_count + int(rate * seconds))
    _vacuum_analyze(database_url)
    warm_file, measured_file = work / f"{scenario}-warm.tsv", work / f"{scenario}.tsv"
    measured_count = int(rate * seconds)
    _write_requests(warm_file, base_url, scenario, 0, warm_count, run)
    _write_requests(measured_file, base_url, scenario, warm_count, measured_count, run)
    if warmup > 0:
        warmed = _wrk(base_url, warm_file, warmup)["count"]
        if warmed > warm_count:
            raise SystemExit(f"{scenario}: warm-up sent requests twice; raise its rate")
        _quiesce(database_url)
    app_pids, pg_pids = _tree(app_pid), _postgres_pids()
    app_before, pg_before = _cpu_seconds(app_pids), _cpu_seconds(pg_pids)
    profiler = _start_profiler(profile, scenario, app_pid, seconds)
    steal_before = _steal_ticks()
    result = _wrk(base_url, measured_file, seconds)
    result["steal_pct"] = _steal_share(steal_before, _steal_ticks())
    if profiler is not None:
        profiler.wait()
    if result["count"] > measured_count:
        raise SystemExit(f"{scenario}: sent requests twice; raise REQUESTS_PER_SECOND")
    _quiesce(database_url)
    # After the quiesce, so the requests wrk left in flight are paid for too; divided by what
    # wrk counted, this slightly overstates (by at most 32 requests' worth) and never flatters.
    served = max(result["count"], 1)
    result["app_cpu_ms"] = 1000 * (_cpu_seconds(app_pids) - app_before) / served
    result["pg_cpu_ms"] = 1000 * (_cpu_seconds(pg_pids) - pg_before) / served
    return result


def _start_profiler(
    profile: Path | None, scenario: str, app_pid: int, seconds: float
) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the app's workers through the measured phase, as collapsed stacks (one
    file per scenario, for flamegraph tools or a ``sort | head``). Sampling slows the workers:
    a profiled run's figures are for finding where the time goes, not for quoting. Only
    samples holding the interpreter lock count, so waits on PostgreSQL or for a thread drop out."""
    if profile is None:
        return None
    if not (BIN / "py-spy").exists():
        raise SystemExit("--profile needs py-spy (make install puts it in .venv)")
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(app_pid),
            "--subprocesses",
            "--nonblocking",
            "--gil",
            "--format",
            "raw",
            "--duration",
            str(max(1, round(seconds))),
            "--output",
            str(profile / f"{scenario}.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _fresh_schema(database_url: str) -> None:
    """Every run starts from an empty database: runs that grew one another's tables (and, with
    autovacuum off, their dead rows) measured the database's history rather than the webhooks."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("DROP SCHEMA public CASCADE"))
            conn.execute(sqlalchemy.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def _vacuum_analyze(database_url: str) -> None:
    """What autovacuum keeps doing in production: planner statistics of the tables as they are
    now, dead rows of the last phase cleared. This machine's PostgreSQL runs with autovacuum off
    (``SHOW autovacuum``), so without it the planner believed the freshly loaded tables empty
    and every phase read the previous phases' dead rows."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("VACUUM ANALYZE"))
    finally:
        engine.dispose()


def _served_calls(database_url: str, run: str, count: int) -> None:
    """The conversations the ``call_status`` scenario ends: calls that went through the flow and
    opened their ticket (the usual end of a call), written in bulk, all naming one ticket of the
    SMS scenario. Their ``completed`` callback stores the status and closes the conversation."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(database_url)
    sids = [_call_sid("call_status", n, run) for n in range(count)]
    try:
        with engine.begin() as conn:
            ticket_id = conn.execute(sqlalchemy.text("SELECT min(id) FROM ticket")).scalar_one()
            conn.execute(
                sqlalchemy.text(
                    "INSERT INTO dialogue_state (key, flow, phone, language, data, ticket_id, "
                    "finished, created_at, updated_at, expires_at) "
                    "SELECT 'call:' || sid, 'main', '+8613800000000', 'zh', "
                    "CAST(:data AS json), :ticket, false, now(), now(), now() + interval '6 hours' "
                    "FROM unnest(CAST(:sids AS text[])) AS sid"
                ),
                {
                    "data": json.dumps({"ticket_id": ticket_id, "step": "transfer"}),
                    "ticket": ticket_id,
                    "sids": sids,
                },
            )
    finally:
        engine.dispose()


def _texts_of_run(database_url: str, run: str) -> tuple[int, int]:
    """The run's texts stored, and the answering jobs written with them."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as conn:
            texts, jobs = conn.execute(
                sqlalchemy.text(
                    "SELECT count(*), count(outbox.id) FROM inbound_message "
                    "LEFT JOIN outbox ON outbox.task = 'sms_answer' "
                    "AND (outbox.payload ->> 'message_id')::int = inbound_message.id "
                    "WHERE message_sid LIKE :prefix"
                ),
                {"prefix": f"SM{run}%"},
            ).one()
            return int(texts), int(jobs)
    finally:
        engine.dispose()


def _answer_first_text(env: dict[str, str]) -> None:
    """Answer the first waiting text (its job, run in a process of this script's configured as
    the app is), so the SMS run has opened a ticket; once a ticket exists, nothing."""
    done = subprocess.run(
        [sys.executable, __file__, "--answer-first-text"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"answering a text failed:\n{done.stdout}\n{done.stderr}")


def _answer_first_text_here() -> None:
    sys.path.insert(0, str(ROOT))
    import sqlalchemy

    from hotline.settings import load_settings
    from hotline.wiring import configure_domain
    from kb.db import get_engine
    from tickets.tasks import run_outbox_job

    configure_domain(load_settings())
    with get_engine().connect() as conn:
        if conn.execute(sqlalchemy.text("SELECT count(*) FROM ticket")).scalar_one():
            return
        first = conn.execute(
            sqlalchemy.text("SELECT min(id) FROM outbox WHERE task = 'sms_answer'")
        ).scalar_one()
    if first is None:
        raise SystemExit("no text to answer: run sms_new_ticket before call_status")
    result = run_outbox_job(int(first))
    if result != "answered":
        raise SystemExit(f"the first text's job: {result}")


# --- the benchmark ----------------------------------------------------------------------------


def _start_app(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    # As production runs it (docs/deploy.md): two uvicorn processes, each accepting on a
    # socket of its own, so wrk's 32 long-lived connections spread over both.
    return subprocess.Popen(
        [
            str(BIN / "hotline"),
            "web",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_healthy(base_url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the app did not answer /healthz at {base_url} within {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured, per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds, per scenario")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="floor + scenarios this many times; medians (ratios: of each round's pair)",
    )
    parser.add_argument(
        "--web-threads", type=int, default=None, help="HOTLINE_WEB_THREADS for the app"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write py-spy's collapsed stacks of each measured phase into this folder",
    )
    parser.add_argument(
        "--only", nargs="*", default=None, help="run these scenarios only (ping always runs)"
    )
    parser.add_argument("--answer-first-text", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.answer_first_text:
        _answer_first_text_here()
        return

    database_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/benchhooks"
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
    reason = _servers_answer(database_url, redis_url)
    if reason is None and shutil.which("wrk") is None:
        reason = "wrk is not installed (apt-get install wrk; make bench does it)"
    if reason:
        print(f"bench_webhooks skipped: {reason}")
        return

    chosen = [s for s in SCENARIOS if s == "ping" or args.only is None or s in args.only]
    for scenario, needs in NEEDS.items():
        if scenario in chosen and needs not in chosen:
            # Without it the callbacks would find no served conversation (or no call) and
            # measure another path under this scenario's name.
            parser.error(f"{scenario} needs {needs} in the same run (--only {needs} {scenario})")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    var_dir = tempfile.mkdtemp(prefix="bench-webhooks-")
    work = Path(var_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(
        {
            "HOTLINE_DATABASE_URL": database_url,
            "HOTLINE_REDIS_URL": redis_url,
            "HOTLINE_TWILIO_AUTH_TOKEN": TOKEN,
            "HOTLINE_PUBLIC_BASE_URL": base_url,
            "HOTLINE_VAR_DIR": var_dir,
            "HOTLINE_LOG_LEVEL": "INFO",
        }
    )
    if args.web_threads is not None:
        env["HOTLINE_WEB_THREADS"] = str(args.web_threads)
    _fresh_schema(database_url)
    for command in (["db", "upgrade"], ["kb", "load"]):
        subprocess.run(
            [str(BIN / "hotline"), *command], env=env, cwd=ROOT, check=True, capture_output=True
        )
    _vacuum_analyze(database_url)
    app = _start_app(env, port)
    first_run = int(time.time()) % 0xFFFFF0
    runs = [f"{first_run + n:06x}" for n in range(args.rounds)]
    rounds: list[dict[str, dict[str, Any]]] = []
    load_before = os.getloadavg()[0]
    try:
        _wait_healthy(base_url)
        for run in runs:
            # Each scenario is measured right after a floor of its own: on a shared machine
            # the CPU on offer drifts from one minute to the next (and sustained load was seen
            # to slow the machine down), and a ratio of two neighbouring phases drifts less.
            rounds.append({})
            phases = [
                (key, phase)
                for scenario in chosen
                if scenario != "ping"
                for key, phase in ((f"ping:{scenario}", "ping"), (scenario, scenario))
            ] or [("ping", "ping")]
            for key, phase in phases:
                # call_status_abandoned replays the round's voice calls: same run id.
                rounds[-1][key] = _scenario(
                    base_url,
                    database_url,
                    phase,
                    run,
                    args.seconds,
                    args.warmup,
                    work,
                    app.pid,
                    env,
                    args.profile,
                )
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, signal.SIGKILL)
        shutil.rmtree(var_dir, ignore_errors=True)
        import redis

        redis.Redis.from_url(redis_url).flushdb()

    print(f"bench_webhooks_concurrency {CONCURRENCY}")
    print(f"bench_webhooks_rounds {args.rounds}")
    print(f"bench_webhooks_web_threads {args.web_threads or 'default'}")
    print(f"bench_webhooks_loadavg_1m_before {load_before:.2f}")
    print(f"bench_webhooks_loadavg_1m_after {os.getloadavg()[0]:.2f}")
    for scenario in chosen:
        measured = [m for r in rounds for key, m in r.items() if key.split(":")[0] == scenario]
        figures = {
            key: median([m[key] for m in measured])
            for key in ("rps", "p50_ms", "p99_ms", "app_cpu_ms", "pg_cpu_ms", "steal_pct")
        }
        print(f"{scenario}_requests {sum(m['count'] for m in measured)}")
        print(f"{scenario}_rps {figures['rps']:.1f}")
        print(f"{scenario}_p50_ms {figures['p50_ms']:.1f}")
        print(f"{scenario}_p99_ms {figures['p99_ms']:.1f}")
        print(f"{scenario}_app_cpu_ms_per_request {figures['app_cpu_ms']:.2f}")
        print(f"{scenario}_postgres_cpu_ms_per_request {figures['pg_cpu_ms']:.2f}")
        print(f"{scenario}_cpu_stolen_pct {figures['steal_pct']:.1f}")
        errors: dict[str, int] = {}
        for m in measured:
            for kind, count in m["errors"].items():
                errors[kind] = errors.get(kind, 0) + count
        if errors:
            print(f"{scenario}_errors {json.dumps(errors)}")
        if scenario != "ping":
            floors = [r[f"ping:{scenario}"] for r in rounds]
            ratios = [r[scenario]["rps"] / f["rps"] for r, f in zip(rounds, floors, strict=True)]
            p50_ratios = [
                r[scenario]["p50_ms"] / f["p50_ms"] for r, f in zip(rounds, floors, strict=True)
            ]
            print(f"{scenario}_rps_ratio {median(ratios):.3f}")
            if len(rounds) > 1:
                print(f"{scenario}_rps_ratio_rounds {','.join(f'{x:.3f}' for x in ratios)}")
            print(f"{scenario}_p50_ratio {median(p50_ratios):.2f}")
            # The floor's CPU per request over the scenario's (app and PostgreSQL): what the
            # throughput ratio would be with the CPU the only limit. It drifts less than
            # throughput on a shared machine; a second view, not the target's figure.
            cpu_ratios = [
                (f["app_cpu_ms"] + f["pg_cpu_ms"])
                / max(r[scenario]["app_cpu_ms"] + r[scenario]["pg_cpu_ms"], 1e-9)
                for r, f in zip(rounds, floors, strict=True)
            ]
            print(f"{scenario}_cpu_ratio {median(cpu_ratios):.3f}")
    if "sms_new_ticket" in chosen:
        stored = [_texts_of_run(database_url, run) for run in runs]
        print(f"sms_new_ticket_texts_stored {sum(texts for texts, _ in stored)}")
        print(f"sms_new_ticket_jobs_written {sum(jobs for _, jobs in stored)}")


if __name__ == "__main__":
    main()
