"""Failed API-key checks count per client address (THROTTLE_AUTH_FAILURES_PER_ADDRESS): past the limit,
that address's requests carrying a key answer 429, a right key included, until the window has room."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from api import rate_store
from tests.conftest import assert_nothing_stored
from tests.images import png_upload
from tests.problems import assert_problem

GUESSER = "203.0.113.9"
NEIGHBOUR = "198.51.100.7"


class Clock:
    """The throttle's time, set by the test: no waiting past a window."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(rate_store, "clock", clock)
    return clock


@pytest.fixture
def key(db: None, settings: Any) -> str:
    settings.IMAGERY_AUTH = "write"
    settings.THROTTLE_AUTH_FAILURES_PER_ADDRESS = "3/hour"
    out = io.StringIO()
    call_command("apikey", "create", "owner", stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def guess(api: Client, address: str = GUESSER, **extra: str) -> Any:
    return api.get("/images", REMOTE_ADDR=address, **bearer("aBcDeFgH.guessed-secret"), **extra)


def test_failures_past_the_limit_refuse_the_address_even_with_the_right_key(
    api: Client, key: str, clock: Clock, media_root: Any
) -> None:
    for _ in range(3):
        assert_problem(guess(api), 401)
    response = guess(api)
    assert_problem(response, 429)
    # The window, plus at most one of its 60 counting slots (api.rate_store).
    assert 3600 <= int(response["Retry-After"]) <= 3660
    # The right key now gets the same answer: a guess that happens to be right teaches nothing.
    refused = api.post("/images", png_upload(), REMOTE_ADDR=GUESSER, **bearer(key))
    assert_problem(refused, 429)
    assert_nothing_stored()
    assert_problem(api.get("/images", REMOTE_ADDR=GUESSER, **bearer(key)), 429)


def test_other_addresses_and_keyless_reads_are_unaffected(api: Client, key: str, clock: Clock) -> None:
    for _ in range(4):
        guess(api)
    assert_problem(guess(api), 429)
    assert api.get("/images", REMOTE_ADDR=NEIGHBOUR, **bearer(key)).status_code == 200
    assert_problem(guess(api, NEIGHBOUR), 401)
    # Reading needs no key under IMAGERY_AUTH=write: the address may still read without one.
    assert api.get("/images", REMOTE_ADDR=GUESSER).status_code == 200


@pytest.mark.parametrize("header", ["Bearer ", "Api-Key nope", "Bearer nope.nope"])
def test_every_kind_of_failure_counts(api: Client, key: str, clock: Clock, header: str) -> None:
    for _ in range(3):
        assert_problem(api.get("/images", REMOTE_ADDR=GUESSER, HTTP_AUTHORIZATION=header), 401)
    assert_problem(api.get("/images", REMOTE_ADDR=GUESSER, **bearer(key)), 429)


def test_a_revoked_key_counts_as_a_failure(api: Client, key: str, clock: Clock) -> None:
    call_command("apikey", "revoke", "owner", stdout=io.StringIO())
    for _ in range(3):
        assert_problem(api.get("/images", REMOTE_ADDR=GUESSER, **bearer(key)), 401)
    assert_problem(api.get("/images", REMOTE_ADDR=GUESSER, **bearer(key)), 429)


def test_successes_are_not_counted(api: Client, key: str, clock: Clock) -> None:
    for _ in range(10):
        assert api.get("/images", REMOTE_ADDR=GUESSER, **bearer(key)).status_code == 200
    assert_problem(guess(api), 401)


def test_the_window_frees_the_address(api: Client, key: str, clock: Clock) -> None:
    for _ in range(3):
        guess(api)
    clock.now += 1800
    assert_problem(guess(api), 429)  # refused attempts do not extend the window, nor count
    clock.now += 1800 + 61  # the rest of the window, and at most one counting slot (api.rate_store)
    assert api.get("/images", REMOTE_ADDR=GUESSER, **bearer(key)).status_code == 200
    assert_problem(guess(api), 401)


def test_behind_a_proxy_each_client_counts_for_itself(
    api: Client, key: str, clock: Clock, settings: Any
) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    nginx = "172.18.0.5"
    for _ in range(3):
        guess(api, nginx, HTTP_X_FORWARDED_FOR=GUESSER)
    assert_problem(guess(api, nginx, HTTP_X_FORWARDED_FOR=GUESSER), 429)
    response = api.get("/images", REMOTE_ADDR=nginx, HTTP_X_FORWARDED_FOR=NEIGHBOUR, **bearer(key))
    assert response.status_code == 200


def test_an_empty_setting_turns_the_count_off(api: Client, key: str, clock: Clock, settings: Any) -> None:
    settings.THROTTLE_AUTH_FAILURES_PER_ADDRESS = ""
    for _ in range(10):
        assert_problem(guess(api), 401)


def test_a_failing_cache_lets_checks_through(
    api: Client, key: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the cache is down")

    monkeypatch.setattr(rate_store.SQLiteStore, "take", broken)
    # As for every limit: an outage of the limiter is not an outage of the API.
    assert_problem(guess(api), 401)
    assert api.get("/images", REMOTE_ADDR=GUESSER, **bearer(key)).status_code == 200
