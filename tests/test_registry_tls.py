"""The registry client over TLS: certificates are verified against the trust store httpx would
use (``SSL_CERT_FILE``, else certifi's bundle), read at the first TLS handshake and never over
plain HTTP. A real HTTPS registry emulator with a throwaway certificate for 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import TlsFiles

from service.errors import RegistryError
from service.registry.ctgov import CtgovClient, build_http_client
from service.registry.tls import registry_tls_context
from service.settings import CtgovSettings

RECORD = TESTS_DATA / "records" / "NCT00763412.json"
STUDY_ID = "NCT00763412"


@pytest.fixture
def https_registry(emulator_factory: Callable[..., Emulator], tls_files: TlsFiles) -> Emulator:
    registry = emulator_factory(tls=tls_files.server_context())
    registry.publish(json.loads(RECORD.read_text()))
    return registry


def client_for(registry: Emulator) -> CtgovClient:
    settings = CtgovSettings(api_url=registry.api_url, history=False, max_attempts=1)
    return CtgovClient(build_http_client(settings), settings)


def test_an_https_registry_is_verified_against_ssl_cert_file(
    https_registry: Emulator, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert https_registry.api_url.startswith("https://")
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.cert))
    raw = client_for(https_registry).fetch_study(STUDY_ID)
    assert raw["protocolSection"]["identificationModule"]["nctId"] == STUDY_ID


def test_a_certificate_the_trust_store_does_not_hold_is_refused(
    https_registry: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(RegistryError, match=r"(?i)certificate"):
        client_for(https_registry).fetch_study(STUDY_ID)


def test_the_trust_store_is_read_at_the_first_handshake_only(
    emulator_factory: Callable[..., Emulator],
    https_registry: Emulator,
    tls_files: TlsFiles,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.cert))
    plain = emulator_factory()
    plain.publish(json.loads(RECORD.read_text()))
    context = registry_tls_context()
    with httpx.Client(verify=context) as http:
        assert http.get(f"{plain.api_url}/studies/{STUDY_ID}").status_code == 200
        assert context.cert_store_stats()["x509_ca"] == 0  # plain HTTP: nothing read
        assert http.get(f"{https_registry.api_url}/studies/{STUDY_ID}").status_code == 200
        assert context.cert_store_stats()["x509_ca"] == 1  # the one certificate trusted


def test_trialwatch_syncs_from_an_https_registry(
    https_registry: Emulator, tls_files: TlsFiles, tmp_path: Path
) -> None:
    config = twconfig.ctgov(https_registry.api_url, https_registry.history_url, history=False)
    env = twconfig.environment(
        tmp_path,
        config,
        f"sqlite:///{tmp_path / 'tw.db'}",
        SSL_CERT_FILE=str(tls_files.cert),
    )
    trialwatch = twconfig.runner(env)
    assert trialwatch("watch", "add", STUDY_ID).exit_code == 0
    ran = trialwatch("sync", "--json")
    assert ran.exit_code == 0, ran.stderr
    assert json.loads(ran.stdout)["new"] == 1
