from __future__ import annotations

import subprocess
import sys

import pytest

from srservice.config import CallingPeer, Destination, load_settings
from srservice.errors import (
    ConfigError,
    DeliveryError,
    InvalidDicomError,
    InvalidUIDError,
    Outcome,
    OutOfResourcesError,
    dimse_status_for,
    outcome_for,
    reason_for,
)


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("SRSERVICE_"):
            monkeypatch.delenv(key)
    s = load_settings(data_dir=tmp_path)
    assert s.broker_url is None
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.destinations == []
    assert s.spool_dir == tmp_path / "spool"


def test_env_lists_and_destinations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRSERVICE_DESTINATIONS", "PACS@127.0.0.1:4242, B@pacs.local:104+tls")
    monkeypatch.setenv("SRSERVICE_ALLOWED_CALLING_AES", "CONSOLE,PACS@10.0.0.5")
    s = load_settings()
    assert [str(d) for d in s.destinations] == ["PACS@127.0.0.1:4242", "B@pacs.local:104+tls"]
    assert s.destinations[1].tls
    assert s.allowed_calling_aes[1].allows("PACS", "10.0.0.5")
    assert not s.allowed_calling_aes[1].allows("PACS", "10.0.0.6")
    assert s.allowed_calling_aes[0].allows("CONSOLE", "1.2.3.4")


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        ("SRSERVICE_PORT", "70000", "SRSERVICE_PORT"),
        ("SRSERVICE_DESTINATIONS", "nonsense", "SRSERVICE_DESTINATIONS.*AE@host:port"),
        ("SRSERVICE_AE_TITLE", "THIS_AE_TITLE_IS_TOO_LONG", "SRSERVICE_AE_TITLE"),
        ("SRSERVICE_NON_IVUS_POLICY", "maybe", "SRSERVICE_NON_IVUS_POLICY"),
        ("SRSERVICE_NO_SUCH_SETTING", "1", "SRSERVICE_NO_SUCH_SETTING"),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, match: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=match):
        load_settings()


def test_tls_needs_both_files() -> None:
    with pytest.raises(ConfigError, match="tls_certificate and tls_private_key"):
        load_settings(tls_certificate="/x.pem")


def test_destination_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="AE@host:port"):
        Destination.parse("PACS@host")
    assert CallingPeer.parse("A@h").host == "h"


def test_error_mapping_in_one_place() -> None:
    assert dimse_status_for(OutOfResourcesError("disk")) == 0xA700
    assert dimse_status_for(InvalidDicomError("bad")) == 0xC210
    assert dimse_status_for(InvalidUIDError("bad uid")) != 0x0000
    assert dimse_status_for(OSError(28, "No space left on device")) == 0xA700
    assert dimse_status_for(ValueError("x")) == 0xC210
    assert outcome_for(DeliveryError("down")) is Outcome.RETRY
    assert outcome_for(ConnectionRefusedError()) is Outcome.RETRY
    assert outcome_for(InvalidDicomError("bad")) is Outcome.FAIL
    assert outcome_for(ZeroDivisionError()) is Outcome.FAIL
    reason = reason_for(InvalidDicomError("no pixel data\nmore"))
    assert reason == "InvalidDicomError: no pixel data"


def test_no_environment_read_at_import() -> None:
    code = (
        "import os, sys\n"
        "os.environ['SRSERVICE_PORT'] = 'not-a-port'\n"
        "import srservice.config, srservice.cli.main, srservice.errors\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_cli_config_error_is_one_line() -> None:
    env = {"SRSERVICE_PORT": "70000", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "srservice.cli", "jobs"], capture_output=True, text=True, env=env
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "SRSERVICE_PORT" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
