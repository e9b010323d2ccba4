from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hotline.cli import app as cli
from hotline.settings import Settings
from tests.conftest import TwilioSigner, sms_params, text_hotline


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "HOTLINE_DATABASE_URL": settings.database_url,
        "HOTLINE_REDIS_URL": settings.redis_url or "",
        "HOTLINE_VAR_DIR": str(settings.var_dir),
        "HOTLINE_TWILIO_AUTH_TOKEN": settings.auth_token,
        "HOTLINE_PUBLIC_BASE_URL": settings.public_base_url,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "worker", "db", "kb", "tickets"):
        assert command in result.output


def test_tickets_list_json_masks_phones(
    cli_env: dict[str, str], client: TestClient, twilio: TwilioSigner, settings: Settings
) -> None:
    params = sms_params("想找律师 合同纠纷 江北区", settings=settings)
    assert text_hotline(client, twilio, params)  # answered by the worker: the ticket is open
    result = CliRunner().invoke(cli, ["tickets", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 1
    row = rows[0]
    for key in (
        "number",
        "state",
        "category",
        "district",
        "institution",
        "channel",
        "caller_phone",
        "created_at",
    ):
        assert key in row
    assert row["caller_phone"] == "138****8000"
    assert row["category"] == "legal" and row["district"] == "jiangbei"
    assert row["channel"] == "sms" and row["state"] == "dispatched"


def test_kb_load_reports_a_bad_file_with_its_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "districts.csv").write_text(
        "code,name_zh,name_en,short_zh,kind,lat,lon\nxx,某区,Some,某,district,95,106\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["kb", "load", str(tmp_path)])
    assert result.exit_code == 1
    assert "districts.csv:2: lat" in result.output


def test_bad_setting_stops_with_one_line(cli_env: dict[str, str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOTLINE_DATABASE_URL", "oracle://nope")
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: HOTLINE_DATABASE_URL:")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_starts_everything_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """`hotline serve` on embedded defaults in an empty folder: migrates, starts Redis, the web
    app and a worker; answers /healthz; SIGINT stops every process it started."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    bin_dir = Path(sys.executable).parent
    process = subprocess.Popen(
        [str(bin_dir / "hotline"), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        healthy = None
        while time.monotonic() < deadline:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if healthy.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert healthy is not None and healthy.json()["status"] == "ok"
        assert (tmp_path / "var" / "hotline.db").exists()
        assert (tmp_path / "var" / "redis" / "redis.sock").exists()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=40)
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{port}/docs" in output
    assert "dev auth token" in output
    assert "stopped" in output
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()
