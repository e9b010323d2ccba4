"""The ``hotline`` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.engine import make_url

from hotline import (
    cli_classify,
    cli_kb,
    cli_notify,
    cli_open311,
    cli_routing,
    cli_simulator,
    cli_tickets,
    cli_users,
)
from hotline.settings import Settings, SettingsError, load_settings
from hotline.web import demo as web_demo

app = typer.Typer(help="SME service hotline.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
kb_app = typer.Typer(help="The service catalogue.", no_args_is_help=True)
tickets_app = typer.Typer(help="Tickets.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(kb_app, name="kb")
app.add_typer(tickets_app, name="tickets")
cli_simulator.register(app)  # hotline call, hotline sms
cli_tickets.register(tickets_app)  # hotline tickets show
cli_users.register(app)  # hotline users create, hotline users token
cli_kb.register(kb_app)  # hotline kb import, hotline kb search
cli_open311.register(app)  # hotline open311 keys create|revoke
cli_notify.register(app)  # hotline notify ARTICLE_SLUG
cli_routing.register(app)  # hotline route
cli_classify.register(app)  # hotline classify
web_demo.register(cli_users.users_app)  # hotline users seed-demo


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the Alembic migrations."""
    from hotline.database import upgrade

    settings = _settings()
    upgrade(settings, revision)
    typer.echo(f"database at {revision}: {_safe_url(settings.database_url)}")


@kb_app.command("load")
def kb_load(
    directory: Annotated[Path | None, typer.Argument(help="Data folder (default: kb/data)")] = None,
) -> None:
    """Load the catalogue from CSV/YAML files: an idempotent upsert, all or nothing."""
    from hotline.wiring import configure_domain
    from kb.db import session_scope
    from kb.loader import CatalogueLoadError
    from kb.service import catalogue_service

    configure_domain(_settings())
    try:
        with session_scope() as session:
            report = catalogue_service.load(session, directory, actor="cli:kb-load")
    except CatalogueLoadError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"catalogue loaded: {report.summary()}")


@tickets_app.command("list")
def tickets_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    limit: int = 50,
) -> None:
    """The most recent tickets (phone numbers masked)."""
    from hotline.wiring import configure_domain
    from kb.db import session_scope
    from tickets.views import ticket_summaries

    configure_domain(_settings())
    with session_scope() as session:
        rows = ticket_summaries(session, limit=limit)
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], ensure_ascii=False))
        return
    for r in rows:
        typer.echo(
            f"{r.number}  {r.state:<16} {r.category or '-':<11} {r.district or '-':<12} "
            f"{r.channel:<7} {r.caller_phone:<13} {r.institution or '-'}"
        )


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Stop when the queues are empty")] = False,
) -> None:
    """Run one RQ worker (with its scheduler) on the high, default and low queues."""
    from hotline.worker import run_worker

    run_worker(_settings(), burst=burst)


@app.command()
def web(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Web processes (one or two per core)")] = 2,
    forwarded_allow_ips: Annotated[
        str, typer.Option(help="Proxies whose X-Forwarded-* headers are believed")
    ] = "127.0.0.1",
    graceful_timeout: Annotated[
        int, typer.Option(help="Seconds a stopping process gives the requests in flight")
    ] = 20,
    access_log: Annotated[bool, typer.Option(help="uvicorn's access log")] = False,
) -> None:
    """Run the web app in production: WORKERS uvicorn processes on one port, each accepting on
    a socket of its own (SO_REUSEPORT), restarted if one dies; no migration, no RQ worker."""
    from hotline.logging_setup import configure_from_settings
    from hotline.webserver import WebOptions, serve_web

    # A bad setting stops here, with its message, rather than in every process.
    configure_from_settings(_settings())
    options = WebOptions(
        forwarded_allow_ips=forwarded_allow_ips,
        graceful_timeout=graceful_timeout,
        access_log=access_log,
    )
    try:
        code = serve_web(host, port, workers, options)
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc
    raise typer.Exit(code)


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Start no RQ worker")] = False,
) -> None:
    """Migrate, then run the web app, the embedded Redis (when none is configured) and a worker."""
    from hotline.database import upgrade
    from hotline.logging_setup import configure_from_settings
    from hotline.redis_server import EmbeddedRedis

    settings = _settings()
    configure_from_settings(settings)
    upgrade(settings)
    env = dict(os.environ)
    embedded: EmbeddedRedis | None = None
    redis_url = settings.redis_url
    if redis_url is None:
        embedded = EmbeddedRedis(settings.var_dir / "redis")
        redis_url = embedded.start()
        env["HOTLINE_REDIS_URL"] = redis_url
    children: list[subprocess.Popen[bytes]] = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "hotline.app:app",
                "--host",
                host,
                "--port",
                str(port),
                "--proxy-headers",
            ],
            env=env,
        )
    ]
    if not no_worker:
        children.append(subprocess.Popen([sys.executable, "-m", "hotline", "worker"], env=env))

    base = f"http://{host}:{port}"
    lines = [
        f"SME hotline running at {base}",
        f"  API docs        {base}/docs",
        f"  health          {base}/healthz",
        f"  catalogue       {base}/api/institutions",
        f"  SMS webhook     {settings.public_base_url}/twilio/sms",
        f"  database        {_safe_url(settings.database_url)}",
        f"  redis           {redis_url}{' (embedded)' if embedded else ''}",
        f"  worker          {'off' if no_worker else 'on (with scheduler)'}",
    ]
    if not settings.twilio_auth_token:
        lines.append(f"  Twilio          offline; dev auth token {settings.auth_token}")
    typer.echo("\n".join(lines) + "\nCtrl-C stops everything.")

    stopping = False

    def _stop(*_args: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    code = 0
    try:
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    typer.echo(f"error: a child process exited with {child.returncode}", err=True)
                    stopping, code = True, 1
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded is not None:
            embedded.stop()
        typer.echo("stopped")
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
