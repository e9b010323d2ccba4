from __future__ import annotations

from pathlib import Path

import pytest

from hotline.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("database_url", "mysql://x"),
        ("redis_url", "http://localhost"),
        ("public_base_url", "hotline.example"),
        ("timezone", "Mars/Olympus"),
        ("main_number", "not-a-number"),
        ("web_threads", "0"),
    ],
)
def test_a_bad_value_names_the_setting_in_one_line(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(f"HOTLINE_{name.upper()}", value)
    with pytest.raises(SettingsError) as failure:
        load_settings()
    message = str(failure.value)
    assert message.startswith(f"HOTLINE_{name.upper()}: ")
    assert "\n" not in message


def test_offline_auth_token_is_generated_once_and_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOTLINE_TWILIO_AUTH_TOKEN", raising=False)
    first = load_settings(var_dir=tmp_path / "var").auth_token
    second = load_settings(var_dir=tmp_path / "var").auth_token
    assert first == second and len(first) == 32
    assert (tmp_path / "var" / "dev_twilio_auth_token").stat().st_mode & 0o077 == 0


def test_env_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOTLINE_MAIN_NUMBER", raising=False)
    (tmp_path / ".env").write_text("HOTLINE_MAIN_NUMBER=023 6388 0000\n")
    assert load_settings().main_number == "+862363880000"
