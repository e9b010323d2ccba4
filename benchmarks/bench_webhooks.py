"""Webhook throughput and latency, with the app started the production way.

Starts ``uvicorn hotline.app:app --workers 2`` on PostgreSQL and a Redis server (no RQ worker:
jobs wait in Redis, as they would for a busy worker pool), then drives it from a separate
load-generator process on loopback: asyncio + httpx, fixed concurrency 32, every request signed
exactly as Twilio signs it (twilio's RequestValidator over the public URL and the form). Each
scenario is bounded by a request count and a time limit, after a short warm-up.

Scenarios:

- ``ping``: ``POST /twilio/ping``, signed, constant TwiML, no database nor Redis: the floor
  (HTTP, form parsing, signature check, middleware);
- ``voice_first_step``: ``POST /twilio/voice`` for a new call (a dialogue state row, TwiML);
- ``sms_new_ticket``: ``POST /twilio/sms`` from a new number, which classifies, routes, opens a
  ticket, writes its SLA jobs to the outbox and relays them to Redis after the answer;
- ``call_status``: ``POST /twilio/call-status`` ``completed`` for the calls of the voice run.

One figure per line: ``<scenario>_rps``, ``<scenario>_p50_ms``, ``<scenario>_p99_ms`` and, for
the three real webhooks, ``<scenario>_rps_ratio`` (to the floor) and ``<scenario>_p50_ratio``.

Run::

    .venv/bin/python benchmarks/bench_webhooks.py [--requests 1000] [--seconds 20]

``BENCH_DATABASE_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test_h5``) and
``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/13``) choose the servers; the database's
public schema is used as is (migrated and loaded here), the Redis database is flushed after.
When either server does not answer, it prints why and exits 0 (``make bench`` goes on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN = "bench-auth-token-0123456789abcdef"
CONCURRENCY = 32
BODY = "我们公司在渝北区，想申请一笔贷款扩大生产"
SCENARIOS = ("ping", "voice_first_step", "sms_new_ticket", "call_status")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _servers_answer(database_url: str, redis_url: str) -> str | None:
    import redis
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(database_url)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure: no benchmark
        return f"database {database_url} not reachable ({type(exc).__name__})"
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis {redis_url} not reachable ({type(exc).__name__})"
    return None


# --- the load generator (its own process) -------------------------------------------------------


def _params(scenario: str, n: int, run: str) -> tuple[str, dict[str, str]]:
    call_sid = f"CA{run}{n:024x}"
    if scenario == "ping":
        return "/twilio/ping", {"CallSid": call_sid, "AccountSid": "AC" + "0" * 32}
    if scenario == "sms_new_ticket":
        sid = f"SM{run}{n:024x}"
        return "/twilio/sms", {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": f"+86139{(int(run, 16) * 100_000 + n) % 100_000_000:08d}",
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


async def _drive(
    base_url: str, scenario: str, requests: int, seconds: float, run: str, warmup: int
) -> dict[str, Any]:
    import httpx
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TOKEN)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = [0]
    deadline = 0.0

    async def one(client: httpx.AsyncClient, n: int, record: bool) -> None:
        path, params = _params(scenario, n, run)
        signature = validator.compute_signature(base_url + path, params)
        started = time.perf_counter()
        response = await client.post(path, data=params, headers={"X-Twilio-Signature": signature})
        took = time.perf_counter() - started
        if response.status_code != 200 or "<Response" not in response.text:
            key = str(response.status_code)
            errors[key] = errors.get(key, 0) + 1
        elif record:
            latencies.append(took)

    async def worker(client: httpx.AsyncClient, limit: int, record: bool) -> None:
        while True:
            n = counter[0]
            counter[0] += 1
            if n >= limit or (record and time.perf_counter() > deadline):
                return
            await one(client, n, record)

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client, warmup, False) for _ in range(CONCURRENCY)))
        counter[0] = warmup
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(worker(client, warmup + requests, True) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    count = len(latencies)
    return {
        "count": count,
        "elapsed": elapsed,
        "rps": count / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[min(count - 1, int(count * 0.99))] if latencies else 0.0,
        "errors": errors,
    }


def load_main(argv: list[str]) -> None:
    base_url, scenario, requests, seconds, run, warmup = argv
    result = asyncio.run(
        _drive(base_url, scenario, int(requests), float(seconds), run, int(warmup))
    )
    print(json.dumps(result))


# --- the benchmark ----------------------------------------------------------------------------


def _start_app(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(BIN / "python"),
            "-m",
            "uvicorn",
            "hotline.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--no-access-log",
            "--proxy-headers",
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
    parser.add_argument("--requests", type=int, default=1000, help="per scenario (after warm-up)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per scenario")
    parser.add_argument("--warmup", type=int, default=64)
    args = parser.parse_args()

    database_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test_h5"
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    reason = _servers_answer(database_url, redis_url)
    if reason:
        print(f"bench_webhooks skipped: {reason}")
        return

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    var_dir = tempfile.mkdtemp(prefix="bench-webhooks-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(
        {
            "HOTLINE_DATABASE_URL": database_url,
            "HOTLINE_REDIS_URL": redis_url,
            "HOTLINE_TWILIO_AUTH_TOKEN": TOKEN,
            "HOTLINE_PUBLIC_BASE_URL": base_url,
            "HOTLINE_VAR_DIR": var_dir,
            "HOTLINE_LOG_LEVEL": "WARNING",
        }
    )
    for command in (["db", "upgrade"], ["kb", "load"]):
        subprocess.run(
            [str(BIN / "hotline"), *command], env=env, cwd=ROOT, check=True, capture_output=True
        )
    app = _start_app(env, port)
    run = f"{int(time.time()) % 0xFFFFFF:06x}"
    results: dict[str, dict[str, Any]] = {}
    try:
        _wait_healthy(base_url)
        for scenario in SCENARIOS:
            # call_status replays the voice run's calls: same run id, same numbering.
            out = subprocess.run(
                [
                    str(BIN / "python"),
                    __file__,
                    "--load",
                    base_url,
                    scenario,
                    str(args.requests),
                    str(args.seconds),
                    run,
                    str(args.warmup),
                ],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise SystemExit(f"load generator failed on {scenario}:\n{out.stderr}")
            results[scenario] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, signal.SIGKILL)
        import redis

        redis.Redis.from_url(redis_url).flushdb()

    floor = results["ping"]
    load = os.getloadavg()
    print(f"bench_webhooks_concurrency {CONCURRENCY}")
    print(f"bench_webhooks_loadavg_1m {load[0]:.2f}")
    for scenario in SCENARIOS:
        r = results[scenario]
        print(f"{scenario}_requests {r['count']}")
        print(f"{scenario}_rps {r['rps']:.1f}")
        print(f"{scenario}_p50_ms {r['p50_ms']:.1f}")
        print(f"{scenario}_p99_ms {r['p99_ms']:.1f}")
        if r["errors"]:
            print(f"{scenario}_errors {json.dumps(r['errors'])}")
        if scenario != "ping":
            print(f"{scenario}_rps_ratio {r['rps'] / floor['rps']:.3f}")
            print(f"{scenario}_p50_ratio {r['p50_ms'] / floor['p50_ms']:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        load_main(sys.argv[2:])
    else:
        main()
