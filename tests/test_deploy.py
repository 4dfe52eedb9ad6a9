"""Production settings, request ids in responses and logs, probes and metrics: what a deployment relies on.

The settings are read once per process, so how the environment shapes them is tested in a fresh interpreter
(`python -c ...`), with the variables under test set explicitly: set-but-empty beats a developer's `.env`.
The whole production path, image entrypoint and all, is exercised by `.ci/deploy-check`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from pythonjsonlogger.json import JsonFormatter

from api.request_log import RequestIdFilter
from config.env import BASE_DIR
from config.logs import logging_config
from config.networks import parse_networks
from tests.problems import assert_problem

SETTINGS_FACTS = """
import json
from django.conf import settings
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "LOG_FORMAT": settings.LOG_FORMAT,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "CSRF_TRUSTED_ORIGINS": settings.CSRF_TRUSTED_ORIGINS,
    "SECURE_PROXY_SSL_HEADER": settings.SECURE_PROXY_SSL_HEADER,
    "STATICFILES": settings.STORAGES["staticfiles"]["BACKEND"],
    "WHITENOISE_USE_FINDERS": settings.WHITENOISE_USE_FINDERS,
    "NUM_PROXIES": settings.REST_FRAMEWORK["NUM_PROXIES"],
    "METRICS_ALLOWED_NETWORKS": [str(network) for network in settings.METRICS_ALLOWED_NETWORKS],
    "READINESS_ALLOWED_NETWORKS": [str(network) for network in settings.READINESS_ALLOWED_NETWORKS],
}))
"""


def run_settings(**env: str) -> subprocess.CompletedProcess[str]:
    """Load the settings in a fresh interpreter with these variables (the rest of this process's env)."""
    variables = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "", **env}
    return subprocess.run(  # noqa: S603  # our own interpreter, fixed code
        [sys.executable, "-c", "import django; django.setup()\n" + SETTINGS_FACTS],
        cwd=BASE_DIR,
        env=variables,
        capture_output=True,
        text=True,
        timeout=60,
    )


def production(**env: str) -> subprocess.CompletedProcess[str]:
    return run_settings(
        **{"IMAGERY_ENV": "production", "SECRET_KEY": "", "LOG_FORMAT": "", "STATIC_ROOT": "", **env}
    )


# --- Production settings ------------------------------------------------------------------------


def test_production_refuses_to_start_without_secret_key() -> None:
    result = production()
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is required in production" in result.stderr


def test_production_is_the_default_mode() -> None:
    if (BASE_DIR / ".env").is_file() and "IMAGERY_ENV" in (BASE_DIR / ".env").read_text():
        pytest.skip("a local .env sets IMAGERY_ENV")
    environment = {k: v for k, v in os.environ.items() if k != "IMAGERY_ENV"}
    result = subprocess.run(  # our own interpreter, fixed code
        [sys.executable, "-c", "import config.settings"],
        cwd=BASE_DIR,
        env={**environment, "SECRET_KEY": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "SECRET_KEY is required in production" in result.stderr


def test_production_defaults_are_safe() -> None:
    result = production(SECRET_KEY="a-long-production-secret")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["DEBUG"] is False
    assert facts["LOG_FORMAT"] == "json"
    assert facts["SECURE_PROXY_SSL_HEADER"] is None
    assert facts["CSRF_TRUSTED_ORIGINS"] == []


def test_production_refuses_debug() -> None:
    result = production(SECRET_KEY="a-long-production-secret", DEBUG="true")
    assert result.returncode != 0
    assert "DEBUG=true" in result.stderr


def test_development_makes_up_a_secret_key_and_logs_plain_text() -> None:
    result = run_settings(IMAGERY_ENV="development", SECRET_KEY="", LOG_FORMAT="")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["LOG_FORMAT"] == "plain"


def test_unknown_mode_is_refused() -> None:
    result = run_settings(IMAGERY_ENV="staging")
    assert result.returncode != 0
    assert "IMAGERY_ENV must be development or production" in result.stderr


def test_proxy_hosts_and_origins_come_from_the_environment() -> None:
    result = production(
        SECRET_KEY="a-long-production-secret",
        ALLOWED_HOSTS="images.example.com,.internal",
        CSRF_TRUSTED_ORIGINS="https://images.example.com",
        USE_X_FORWARDED_PROTO="true",
    )
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["ALLOWED_HOSTS"] == ["images.example.com", ".internal"]
    assert facts["CSRF_TRUSTED_ORIGINS"] == ["https://images.example.com"]
    assert facts["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_no_proxy_is_trusted_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    if (BASE_DIR / ".env").is_file() and "NUM_PROXIES" in (BASE_DIR / ".env").read_text():
        pytest.skip("a local .env sets NUM_PROXIES")
    monkeypatch.delenv("NUM_PROXIES", raising=False)
    result = production(SECRET_KEY="a-long-production-secret")
    assert result.returncode == 0, result.stderr
    # 0, not DRF's None: None reads the client's address from a header the client writes.
    assert json.loads(result.stdout)["NUM_PROXIES"] == 0


def test_a_negative_number_of_proxies_is_refused() -> None:
    result = production(SECRET_KEY="a-long-production-secret", NUM_PROXIES="-1")
    assert result.returncode != 0
    assert "ImproperlyConfigured: NUM_PROXIES must be 0 or more" in result.stderr


def test_metrics_answer_only_this_machine_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    if (BASE_DIR / ".env").is_file() and "METRICS_ALLOWED_NETWORKS" in (BASE_DIR / ".env").read_text():
        pytest.skip("a local .env sets METRICS_ALLOWED_NETWORKS")
    monkeypatch.delenv("METRICS_ALLOWED_NETWORKS", raising=False)
    result = production(SECRET_KEY="a-long-production-secret")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["METRICS_ALLOWED_NETWORKS"] == ["127.0.0.0/8", "::1/128"]


def test_readiness_answers_only_this_machine_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    if (BASE_DIR / ".env").is_file() and "READINESS_ALLOWED_NETWORKS" in (BASE_DIR / ".env").read_text():
        pytest.skip("a local .env sets READINESS_ALLOWED_NETWORKS")
    monkeypatch.delenv("READINESS_ALLOWED_NETWORKS", raising=False)
    result = production(SECRET_KEY="a-long-production-secret")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["READINESS_ALLOWED_NETWORKS"] == ["127.0.0.0/8", "::1/128"]


def test_a_bad_readiness_network_stops_the_start() -> None:
    result = production(SECRET_KEY="a-long-production-secret", READINESS_ALLOWED_NETWORKS="10.0.0.1/8")
    assert result.returncode != 0
    assert "ImproperlyConfigured: READINESS_ALLOWED_NETWORKS: '10.0.0.1/8' is not a network" in result.stderr


def test_metrics_networks_come_from_the_environment() -> None:
    result = production(
        SECRET_KEY="a-long-production-secret", METRICS_ALLOWED_NETWORKS=" 10.0.0.0/8 ,fd00::/8,"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["METRICS_ALLOWED_NETWORKS"] == ["10.0.0.0/8", "fd00::/8"]


@pytest.mark.parametrize("value", ["10.0.0.0/33", "10.0.0.1/8", "localhost", "*"])
def test_a_bad_metrics_network_stops_the_start(value: str) -> None:
    result = production(
        SECRET_KEY="a-long-production-secret", METRICS_ALLOWED_NETWORKS=f"127.0.0.0/8,{value}"
    )
    assert result.returncode != 0
    assert f"ImproperlyConfigured: METRICS_ALLOWED_NETWORKS: {value!r} is not a network" in result.stderr


def test_collected_static_files_get_hashed_names_and_finders_go(tmp_path: Path) -> None:
    result = production(SECRET_KEY="a-long-production-secret", STATIC_ROOT=str(tmp_path))
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["STATICFILES"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    assert facts["WHITENOISE_USE_FINDERS"] is False


def test_unknown_log_format_is_refused() -> None:
    result = production(SECRET_KEY="a-long-production-secret", LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT must be json or plain" in result.stderr


# --- Request ids ----------------------------------------------------------------------------------


def test_every_response_has_a_request_id(api: Client) -> None:
    response = api.get("/images")
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert api.get("/images")["X-Request-ID"] != response["X-Request-ID"]


def test_a_sane_request_id_from_the_caller_is_kept(api: Client) -> None:
    response = api.get("/images", headers={"X-Request-ID": "lb-4f2a:7/9+x=="})
    assert response["X-Request-ID"] == "lb-4f2a:7/9+x=="


@pytest.mark.parametrize(
    "header", ["two words", "x" * 129, "-leading-dash", "id\u00e9", '"quoted"', "a;b", "<script>"]
)
def test_an_odd_request_id_is_replaced(api: Client, header: str) -> None:
    response = api.get("/images", headers={"X-Request-ID": header})
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The root logger also writes to a buffer, as production does to stderr: JSON with the request id."""
    spec = logging_config(log_format="json", level="INFO")["formatters"]["json"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(**{k: v for k, v in spec.items() if k != "()"}))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_log_lines_are_json_with_the_request_id(api: Client, json_log: io.StringIO) -> None:
    response = api.get("/images/12345", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 404
    lines = records(json_log)
    assert {"time", "level", "logger", "message", "request_id"} <= set(lines[0])
    # Django logs the 404 after the middleware has returned: it still belongs to the request.
    assert {(line["logger"], line["request_id"]) for line in lines} >= {
        ("api.access", "trace-me"),
        ("django.request", "trace-me"),
    }


def test_the_access_log_has_one_line_per_request(api: Client, json_log: io.StringIO) -> None:
    response = api.get("/images", {"title": "x"})
    (line,) = [r for r in records(json_log) if r["logger"] == "api.access"]
    assert line["request_id"] == response["X-Request-ID"]
    assert (line["method"], line["path"], line["status"]) == ("GET", "/images?title=x", 200)
    assert isinstance(line["duration_ms"], float)


def test_lines_outside_a_request_have_no_request_id(api: Client, json_log: io.StringIO) -> None:
    api.get("/healthz")
    logging.getLogger("tests").warning("between requests")
    assert records(json_log)[-1]["request_id"] == "-"


# --- Probes and metrics ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_answer_whatever_the_host(api: Client, path: str) -> None:
    # A container HEALTHCHECK, a Kubernetes probe or Prometheus address the app by IP, not by its name.
    response = api.get(path, HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200


def test_other_paths_still_check_the_host(api: Client) -> None:
    assert api.get("/images", HTTP_HOST="10.1.2.3:8000").status_code == 400


def test_metrics_are_prometheus_text(api: Client) -> None:
    api.get("/images")
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert "# TYPE django_http_requests_total_by_method_total counter" in body
    assert re.search(r'^django_http_requests_total_by_method_total\{method="GET"\} [1-9]', body, re.M)


def test_metrics_only_answer_reads(api: Client) -> None:
    assert api.post("/metrics").status_code == 405


def assert_metrics_hidden(response: Any, api: Client) -> None:
    """The answer is the 404 of a path that does not exist: nothing says /metrics is there."""
    assert_problem(response, 404, "not_found")
    assert response.content == api.get("/no-such-path").content


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_metrics_answer_loopback(api: Client, address: str) -> None:
    response = api.get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content


@pytest.mark.parametrize("method", ["get", "head", "post"])
@pytest.mark.parametrize("address", ["203.0.113.9", "2001:db8::9", "172.18.0.7", "", "unix:/run/app.sock"])
def test_metrics_are_404_to_any_other_address(api: Client, method: str, address: str) -> None:
    response = getattr(api, method)("/metrics", REMOTE_ADDR=address)
    if method == "head":
        assert response.status_code == 404
    else:
        assert_metrics_hidden(response, api)


@pytest.mark.parametrize("num_proxies", [0, 1])
@pytest.mark.parametrize(
    "header",
    ["HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED"],
    ids=["x-forwarded-for", "x-real-ip", "forwarded"],
)
def test_a_forwarded_header_claiming_loopback_is_not_believed(
    api: Client, settings: Any, num_proxies: int, header: str
) -> None:
    # Whatever NUM_PROXIES tells the rate limits, /metrics looks at the socket only.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": num_proxies}
    claim = "for=127.0.0.1" if header == "HTTP_FORWARDED" else "127.0.0.1"
    assert_metrics_hidden(api.get("/metrics", REMOTE_ADDR="203.0.113.9", **{header: claim}), api)


def test_a_request_relayed_by_an_allowed_proxy_is_not_answered(api: Client, settings: Any) -> None:
    # compose's nginx sits in the allowed network; what it relays comes from the internet.
    settings.METRICS_ALLOWED_NETWORKS = parse_networks("METRICS_ALLOWED_NETWORKS", "172.16.0.0/12")
    nginx = {"REMOTE_ADDR": "172.18.0.5"}
    assert api.get("/metrics", **nginx).status_code == 200
    assert_metrics_hidden(api.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9", **nginx), api)


def test_metrics_answer_a_configured_network_and_only_it(api: Client, settings: Any) -> None:
    settings.METRICS_ALLOWED_NETWORKS = parse_networks("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,fd00::/8")
    assert api.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert api.get("/metrics", REMOTE_ADDR="fd12::7").status_code == 200
    assert api.get("/metrics", REMOTE_ADDR="::ffff:10.1.1.1").status_code == 200
    assert_metrics_hidden(api.get("/metrics", REMOTE_ADDR="11.0.0.1"), api)
    # The list replaces the default: loopback is in it only when named.
    assert_metrics_hidden(api.get("/metrics", REMOTE_ADDR="127.0.0.1"), api)


def test_an_empty_list_hides_metrics_from_everyone(api: Client, settings: Any) -> None:
    settings.METRICS_ALLOWED_NETWORKS = parse_networks("METRICS_ALLOWED_NETWORKS", "")
    assert_metrics_hidden(api.get("/metrics", REMOTE_ADDR="127.0.0.1"), api)


def test_liveness_answers_any_address(api: Client) -> None:
    # It costs nothing and says nothing: Docker's HEALTHCHECK and any load balancer may ask it from anywhere.
    assert api.get("/healthz", REMOTE_ADDR="203.0.113.9").status_code == 200
    assert (
        api.get("/healthz", REMOTE_ADDR="172.18.0.5", HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 200
    )


@pytest.mark.parametrize("method", ["get", "head", "post"])
@pytest.mark.parametrize("address", ["203.0.113.9", "2001:db8::9", "172.18.0.7", ""])
def test_readiness_is_404_outside_its_networks(api: Client, method: str, address: str) -> None:
    # Each call costs a database query and a storage request of up to 2 s: not for the internet.
    response = getattr(api, method)("/readyz", REMOTE_ADDR=address)
    assert response.status_code == 404
    if method != "head":
        assert response.content == api.get("/no-such-path").content


def test_readiness_answers_its_networks_and_nothing_they_relay(api: Client, settings: Any) -> None:
    settings.READINESS_ALLOWED_NETWORKS = parse_networks("READINESS_ALLOWED_NETWORKS", "172.16.0.0/12")
    load_balancer = {"REMOTE_ADDR": "172.18.0.5"}
    response = api.get("/readyz", **load_balancer)
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "storage": "ok"}
    # compose's nginx sits in that network; what it relays comes from the internet.
    assert api.get("/readyz", HTTP_X_FORWARDED_FOR="203.0.113.9", **load_balancer).status_code == 404
    assert api.get("/readyz", REMOTE_ADDR="127.0.0.1").status_code == 404
    # Its own list: /metrics' is not consulted.
    assert api.get("/metrics", **load_balancer).status_code == 404


# The headers SecurityMiddleware and XFrameOptionsMiddleware give every response (config/settings.py).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@pytest.mark.parametrize(
    ("path", "address"),
    [
        ("/healthz", "127.0.0.1"),
        ("/readyz", "127.0.0.1"),
        ("/metrics", "127.0.0.1"),
        ("/readyz", "203.0.113.9"),  # the hidden probe's 404
        ("/metrics", "203.0.113.9"),
    ],
)
def test_probes_carry_the_security_headers(api: Client, path: str, address: str) -> None:
    other = api.get("/images")
    assert {name: other.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
    response = api.get(path, REMOTE_ADDR=address)
    assert {name: response.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


def test_probes_carry_hsts_like_every_secure_response(api: Client, settings: Any) -> None:
    settings.SECURE_HSTS_SECONDS = 31536000
    hsts = api.get("/images", secure=True)["Strict-Transport-Security"]
    assert api.get("/healthz", secure=True)["Strict-Transport-Security"] == hsts


def test_metrics_stay_out_of_the_api_schema(api: Client) -> None:
    schema = api.get("/api/schema/", {"format": "json"}).json()
    assert not [path for path in schema["paths"] if "metrics" in path]


# --- Start-up -------------------------------------------------------------------------------------


# Transactional: the command closes its connection when done, which must not end a test's transaction.
@pytest.mark.django_db(transaction=True)
def test_wait_for_database_returns_once_it_answers() -> None:
    out = io.StringIO()
    call_command("wait_for_database", timeout=5, stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == "The database answers."


def test_wait_for_database_gives_up_with_the_reason() -> None:
    result = subprocess.run(  # our own interpreter, fixed arguments
        [sys.executable, "manage.py", "wait_for_database", "--timeout", "1"],
        cwd=BASE_DIR,
        env={**os.environ, "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Waiting for the database" in result.stderr
    assert "The database did not answer within 1 s" in result.stderr
