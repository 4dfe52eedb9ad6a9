"""Parameters as the schema says them: one value each (a repeated one is a 400 naming it), and an integer
written as an integer (`2.0` is a 400), in the query string and in the upload's form alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.http import QueryDict
from django.test import Client
from rest_framework.exceptions import ValidationError

from api.params import one_value_each
from images.models import Image
from images.serializers import RenditionInputSerializer, rendition_query
from tests.images import quadrants
from tests.problems import assert_problem


@pytest.mark.parametrize(
    "params",
    [
        {"page_size": ["3", "2"]},
        {"page_size": ["3", "3"]},  # the same value twice is still twice
        {"page": ["1", "2"], "title": "x"},
        {"title": ["a", "b"]},
        {"cursor": ["", ""]},
    ],
)
def test_list_refuses_a_repeated_parameter_by_name(api: Client, params: dict[str, Any]) -> None:
    (repeated,) = [name for name, value in params.items() if isinstance(value, list)]
    assert_problem(api.get("/images", params), 400, "repeated", field=repeated)


def test_a_repeated_parameter_the_list_does_not_read_is_ignored(api: Client) -> None:
    response = api.get("/images", {"utm": ["a", "b"], "page_size": "2"})
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("value", ["2.0", "2.", "2.5", "1e1", "٣", " 2"])
def test_list_page_size_must_be_written_as_an_integer(api: Client, value: str) -> None:
    assert_problem(api.get("/images", {"page_size": value}), 400, field="page_size")


@pytest.mark.parametrize("value", ["2", "+2", "02"])
def test_list_page_size_written_as_an_integer_is_read(api: Client, value: str) -> None:
    response = api.get("/images", {"page_size": value})
    assert response.status_code == 200, response.content


def test_upload_refuses_a_repeated_field_and_stores_nothing(upload: Callable[..., Any]) -> None:
    response = upload(quadrants((40, 20)), width=["10", "20"])
    assert_problem(response, 400, "repeated", field="width")
    assert not Image.objects.exists()


def test_upload_width_must_be_written_as_an_integer(upload: Callable[..., Any]) -> None:
    assert_problem(upload(quadrants((40, 20)), width="10.0"), 400, field="width")
    assert not Image.objects.exists()


def test_rendition_refuses_a_repeated_parameter_and_a_decimal_width(
    api: Client, posted: Callable[..., dict[str, Any]]
) -> None:
    image = posted(quadrants((80, 40)))
    url = f"/images/{image['id']}/file"
    assert_problem(api.get(url, {"width": ["20", "40"]}), 400, "repeated", field="width")
    assert_problem(api.get(url, {"width": "20.0"}), 400, field="width")
    assert api.get(url, {"width": "20"}).status_code == 200


# --- The rendition query's quick read: the serializer's answer, without the serializer -----------


def serializer_reads(query: str) -> dict[str, Any] | dict[str, list[str]]:
    """What RenditionInputSerializer makes of a query: its validated data, or its errors' codes."""
    try:
        params = RenditionInputSerializer(data=one_value_each(QueryDict(query), RenditionInputSerializer))
    except ValidationError as error:
        return {"errors": sorted(error.get_codes())}
    if not params.is_valid():
        return {"errors": sorted(params.errors)}
    return dict(params.validated_data)


RENDITION_QUERIES = [
    "",
    "width=320",
    "height=240",
    "preset=small",
    "preset=thumb&format=avif",
    "width=320&format=jpeg",
    "format=webp&width=1",
    "format=auto",
    "format=png",
    "width=10000",  # IMAGE_MAX_DIMENSION
    "width=10001",
    "width=999999",
    "width=0",
    "width=-1",
    "width=+5",
    "width=007",
    "width=2.0",
    "width=٣",
    "width=",
    "width= 3",
    "width=320&height=240",
    "width=320&preset=small",
    "preset=nope",
    "preset=SMALL",
    "format=JPEG",
    "format=",
    "format=gif",
    "width=320&width=320",
    "format=jpeg&format=jpeg",
    "width=320&v=2",
    "Width=320",
    "width=320&format=jpeg&preset=small",
]


@pytest.mark.parametrize("query", RENDITION_QUERIES)
def test_the_rendition_query_is_read_as_the_serializer_reads_it(db: None, query: str) -> None:
    expected = serializer_reads(query)
    try:
        read: dict[str, Any] = rendition_query(QueryDict(query))
    except ValidationError as error:
        codes = error.get_codes()
        read = {"errors": sorted(codes) if isinstance(codes, dict) else codes}
    assert read == expected
