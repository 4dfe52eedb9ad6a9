"""Render budgets: first renders are charged what they cost (CPU seconds, bytes stored), per key and per
address; past a budget the answer is 429 with Retry-After, and a render over a whole budget is 413. What
is stored is a read. The budgets' windows follow a clock the tests set (no window ends halfway)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image as PILImage
from rest_framework_api_key.models import APIKey

from api import rate_store, throttling
from images import render_costs
from images.pixels.processing import OutputFormat
from tests.conftest import Client, stored_names
from tests.problems import assert_problem

# The budgets' clock (api.rate_store's), 10 s into a minute. Windows slide in 60 slots, and a spending
# counts from its slot's end: one made now is forgotten a window after the end of its slot.
NOW = 1_800_000_010.0


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_store, "clock", lambda: NOW)


@pytest.fixture
def noise(posted: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """A 600x400 PNG of random pixels: it does not compress, so its renditions weigh what their pixels do."""
    im = PILImage.frombytes("RGB", (600, 400), os.urandom(600 * 400 * 3))
    return posted(im)


def get(api: Client, image: dict[str, Any], query: str, **headers: str) -> Any:
    return api.get(f"/images/{image['id']}/file?{query}", headers=headers)


def renditions_stored() -> list[str]:
    return [name for name in stored_names() if name.startswith("renditions/")]


def test_renders_are_charged_by_the_bytes_they_store_not_by_their_count(
    api: Client, noise: dict[str, Any], settings: Any
) -> None:
    settings.THROTTLE_RENDER_CPU_SECONDS_PER_ADDRESS = ""
    settings.THROTTLE_RENDER_MEGABYTES_PER_ADDRESS = "1/hour"
    small = [16, 20, 23, 26, 30, 35, 40, 46, 53, 61, 70, 80]
    for width in small:  # a dozen small renditions weigh little
        assert get(api, noise, f"width={width}&format=webp").status_code == 200
    big = get(api, noise, "width=557&format=png")  # about 0.62 MB: fits in what is left
    assert big.status_code == 200 and int(big["Content-Length"]) > 600_000
    assert_problem(get(api, noise, "width=485&format=png"), 429, "throttled")  # 0.47 MB more
    retry = get(api, noise, "width=485&format=png")["Retry-After"]
    assert 3600 <= int(retry) <= 3660  # the hour, and at most one slot (a minute) more
    assert len(renditions_stored()) == len(small) + 1
    for _ in range(3):  # what is stored is a read
        assert get(api, noise, "width=557&format=png").status_code == 200
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rate_store, "clock", lambda: NOW + 3660)  # an hour and a slot later
        assert get(api, noise, "width=485&format=png").status_code == 200


def test_renders_are_charged_the_cpu_time_they_took(
    api: Client, noise: dict[str, Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.THROTTLE_RENDER_CPU_SECONDS_PER_ADDRESS = "1/minute"
    settings.THROTTLE_RENDER_MEGABYTES_PER_ADDRESS = ""
    # Each render measures 0.5 s of CPU (two readings of this clock, one before and one after).
    readings = itertools.count(0.0, 0.5)
    monkeypatch.setattr(render_costs, "thread_cpu", lambda: next(readings))
    assert get(api, noise, "width=16&format=jpeg").status_code == 200
    assert get(api, noise, "width=20&format=jpeg").status_code == 200
    assert_problem(get(api, noise, "width=23&format=jpeg"), 429, "throttled")
    assert 60 <= int(get(api, noise, "width=23&format=jpeg")["Retry-After"]) <= 61  # a minute, a slot
    assert len(renditions_stored()) == 2


def test_a_render_over_a_whole_budget_is_413_and_renders_nothing(
    api: Client, noise: dict[str, Any], settings: Any
) -> None:
    settings.THROTTLE_RENDER_MEGABYTES_PER_ADDRESS = "0.1/hour"
    refused = assert_problem(get(api, noise, "width=557&format=png"), 413, "over_render_budget")
    assert "THROTTLE_RENDER_MEGABYTES_PER_ADDRESS" in refused["detail"]
    assert renditions_stored() == []
    assert get(api, noise, "width=80&format=webp").status_code == 200  # nothing was charged for it


def test_a_key_has_a_budget_of_its_own(api: Client, noise: dict[str, Any], settings: Any) -> None:
    settings.THROTTLE_RENDER_MEGABYTES_PER_KEY = "1/hour"
    _, key = APIKey.objects.create_key(name="walker")
    auth = {"Authorization": f"Bearer {key}"}
    assert get(api, noise, "width=557&format=png", **auth).status_code == 200
    assert_problem(get(api, noise, "width=485&format=png", **auth), 429, "throttled")
    assert get(api, noise, "width=485&format=png").status_code == 200  # without the key: the address's


def test_a_failing_counter_store_lets_renders_through(
    api: Client, noise: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the cache does not answer")

    monkeypatch.setattr(rate_store.SQLiteStore, "take", down)
    assert get(api, noise, "width=80&format=webp").status_code == 200
    assert throttling.cache_breaker.is_open()


def test_avif_is_charged_at_least_its_estimate() -> None:
    # libavif encodes in threads of its own, outside the request thread's CPU time.
    estimate = render_costs.estimate(
        source_size=(4000, 3000), source_format="jpeg", output_size=(2560, 1920), output=OutputFormat.AVIF
    )
    charged = render_costs.measured(
        estimated=estimate, output=OutputFormat.AVIF, cpu_seconds=0.1, stored_bytes=5, rendered=True
    )
    assert charged.cpu_seconds == estimate.cpu_seconds > 1
    webp = render_costs.measured(
        estimated=estimate, output=OutputFormat.WEBP, cpu_seconds=0.1, stored_bytes=5, rendered=True
    )
    assert webp.cpu_seconds == 0.1
