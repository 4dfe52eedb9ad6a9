"""The OpenAPI document and the two docs pages that render it, with their assets served locally."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.test import Client

from images.titles import TITLE_MAX_LENGTH
from tests.images import png_upload

PROBLEM = "application/problem+json"
OPERATIONS = {
    ("get", "/images"),
    ("post", "/images"),
    ("get", "/images/{image_id}"),
    ("patch", "/images/{image_id}"),
    ("delete", "/images/{image_id}"),
    ("get", "/images/{image_id}/file"),
    ("get", "/webhooks"),
    ("post", "/webhooks"),
    ("get", "/webhooks/{endpoint_id}"),
    ("patch", "/webhooks/{endpoint_id}"),
    ("delete", "/webhooks/{endpoint_id}"),
    ("get", "/webhooks/{endpoint_id}/deliveries"),
    ("post", "/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry"),
    ("post", "/uploads"),
    ("get", "/uploads/{upload_id}"),
    ("post", "/uploads/{upload_id}/{secret}"),
    # tus on the upload URL (its OPTIONS and HEAD are not in the schema, as no endpoint's are).
    ("patch", "/uploads/{upload_id}/{secret}"),
    ("delete", "/uploads/{upload_id}/{secret}"),
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
ASSET = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)


@pytest.fixture
def schema(api: Client) -> dict[str, Any]:
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (and a single-item `allOf`, drf-spectacular's way of annotating one)."""
    if "allOf" in node and len(node["allOf"]) == 1:
        node = node["allOf"][0]
    if "$ref" not in node:
        return node
    target: Any = schema
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return resolve(schema, target)


def upload_form(schema: dict[str, Any]) -> dict[str, Any]:
    body = schema["paths"]["/images"]["post"]["requestBody"]["content"]["multipart/form-data"]
    return resolve(schema, body["schema"])


def field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return resolve(schema, upload_form(schema)["properties"][name])


def test_schema_json_is_openapi_3(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.")


def test_schema_default_is_the_same_document_as_yaml(api: Client, schema: dict[str, Any]) -> None:
    response = api.get("/api/schema/")
    assert response.status_code == 200
    # The OpenAPI media type without "+json" is the YAML one.
    assert response["Content-Type"].split(";")[0] == "application/vnd.oai.openapi"
    assert response.content.startswith(b"openapi:")
    assert yaml.safe_load(response.content) == schema


def test_schema_lists_exactly_its_operations(schema: dict[str, Any]) -> None:
    operations = {
        (method, path) for path, item in schema["paths"].items() for method in item if method in HTTP_METHODS
    }
    assert operations == OPERATIONS


def test_schema_upload_is_multipart_with_a_binary_image(schema: dict[str, Any]) -> None:
    form = upload_form(schema)
    image = field(schema, "image")
    assert image["type"] == "string"
    assert image["format"] == "binary"
    assert "image" in form["required"]


@pytest.mark.parametrize("name", ["width", "height"])
def test_schema_upload_dimension_bounds(schema: dict[str, Any], name: str) -> None:
    dimension = field(schema, name)
    assert dimension["type"] == "integer"
    assert dimension["minimum"] == 1
    assert dimension["maximum"] == settings.IMAGE_MAX_DIMENSION


def test_schema_upload_title_bounds(schema: dict[str, Any]) -> None:
    title = field(schema, "title")
    assert title["type"] == "string"
    assert title["maxLength"] == TITLE_MAX_LENGTH


def test_schema_upload_title_may_be_empty_but_not_only_whitespace(schema: dict[str, Any]) -> None:
    # An empty field counts as absent (the file name becomes the title): no minLength. What is refused
    # instead, the pattern says.
    title = field(schema, "title")
    assert "minLength" not in title
    pattern = re.compile(title["pattern"])
    assert all(pattern.search(text) for text in ["", "Beach", " Über den Wolken 🌥 "])
    assert not any(pattern.search(text) for text in [" ", "\t\n", "\u3000", "nul\x00byte"])


def test_schema_upload_fit_choices(schema: dict[str, Any]) -> None:
    assert sorted(field(schema, "fit")["enum"]) == ["contain", "cover", "fill"]


def test_schema_upload_optional_fields_are_not_required(schema: dict[str, Any]) -> None:
    required = set(upload_form(schema).get("required", []))
    assert required.isdisjoint({"title", "width", "height", "fit"})


def test_schema_list_query_params(schema: dict[str, Any]) -> None:
    params = schema["paths"]["/images"]["get"]["parameters"]
    assert {(p["in"], p["name"]) for p in params} >= {
        ("query", "title"),
        ("query", "page"),
        ("query", "page_size"),
    }


def list_param(schema: dict[str, Any], name: str) -> dict[str, Any]:
    (param,) = [p for p in schema["paths"]["/images"]["get"]["parameters"] if p["name"] == name]
    assert param["in"] == "query"
    return param


@pytest.mark.parametrize(("name", "default"), [("page", 1), ("page_size", 20)])
def test_schema_list_page_params_are_bounded_integers(
    schema: dict[str, Any], name: str, default: int
) -> None:
    # Bounded, so no value reaches the database as an integer it cannot hold.
    param = list_param(schema, name)["schema"]
    assert param["type"] == "integer"
    assert param["minimum"] == 1
    assert param["maximum"] == 2**63 - 1
    assert param["default"] == default


def test_schema_list_page_size_says_it_is_capped(schema: dict[str, Any]) -> None:
    assert "capped at 100" in list_param(schema, "page_size")["description"]


def test_schema_list_title_may_be_empty_and_holds_no_nul(schema: dict[str, Any]) -> None:
    title = list_param(schema, "title")
    assert title["schema"]["type"] == "string"
    assert title["schema"]["maxLength"] == TITLE_MAX_LENGTH
    assert "minLength" not in title["schema"]
    assert "empty" in title["description"].lower()
    pattern = re.compile(title["schema"]["pattern"])
    assert pattern.search("") and pattern.search(" sunset ")
    assert not pattern.search("sun\x00set")


def test_schema_list_cursor_may_be_empty(schema: dict[str, Any]) -> None:
    cursor = list_param(schema, "cursor")
    assert cursor["schema"] == {"type": "string"}
    assert "`cursor=` (empty)" in cursor["description"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/images", "400"),
        ("post", "/images", "413"),
        ("post", "/images", "415"),
        ("get", "/images", "400"),
        ("get", "/images", "404"),
        ("get", "/images/{image_id}", "404"),
    ],
)
def test_schema_errors_are_problem_json(schema: dict[str, Any], method: str, path: str, status: str) -> None:
    content = schema["paths"][path][method]["responses"][status]["content"]
    assert set(content) == {PROBLEM}
    problem = resolve(schema, content[PROBLEM]["schema"])
    assert {"type", "title", "status", "detail", "code"} <= set(problem["properties"])


def test_schema_every_error_response_is_problem_json(schema: dict[str, Any]) -> None:
    errors = [
        response
        for item in schema["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
        for status, response in operation["responses"].items()
        if int(status) >= 400
    ]
    assert errors
    assert all(set(response["content"]) == {PROBLEM} for response in errors)


def assets_of(api: Client, page: str) -> list[str]:
    response = api.get(page)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    return ASSET.findall(response.content.decode())


def test_swagger_ui_assets_are_local(api: Client) -> None:
    assets = assets_of(api, "/api/docs/")
    assert assets
    assert all(url.startswith("/static/") for url in assets), assets
    assert not any("cdn" in url.lower() for url in assets), assets


def test_redoc_assets_are_local(api: Client) -> None:
    assets = assets_of(api, "/api/redoc/")
    assert assets
    assert all(url.startswith("/static/") for url in assets), assets
    assert not any("cdn" in url.lower() for url in assets), assets


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_local_assets_are_served(api: Client, page: str) -> None:
    local = [url for url in assets_of(api, page) if url.startswith("/static/")]
    assert local
    for url in local:
        response = api.get(url)
        assert response.status_code == 200, url
        assert b"".join(response.streaming_content), url


def test_schema_edit_needs_a_title_visibility_or_metadata_and_documents_if_match(
    schema: dict[str, Any],
) -> None:
    operation = schema["paths"]["/images/{image_id}"]["patch"]
    for content in operation["requestBody"]["content"].values():
        ref = content["schema"]["$ref"].rsplit("/", 1)[-1]
        component = schema["components"]["schemas"][ref]
        assert set(component["properties"]) == {"title", "visibility", "focal", "metadata"}
        assert component["minProperties"] == 1 and "required" not in component
    assert operation["requestBody"]["required"] is True
    assert "If-Match" in [p["name"] for p in operation["parameters"]]
    assert {"200", "400", "403", "404", "412"} <= operation["responses"].keys()
    assert {"204", "403", "404"} <= schema["paths"]["/images/{image_id}"]["delete"]["responses"].keys()


def test_schema_delete_documents_if_match_and_its_412(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/images/{image_id}"]["delete"]
    assert "If-Match" in [p["name"] for p in operation["parameters"] if p["in"] == "header"]
    assert "412" in operation["responses"]


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def test_schema_edit_body_is_json_only(schema: dict[str, Any]) -> None:
    # Offered JSON, form and multipart at once, a generated client sent multipart with the title twice.
    body = schema["paths"]["/images/{image_id}"]["patch"]["requestBody"]["content"]
    assert set(body) == {"application/json"}


def test_schema_image_object_requires_every_field_it_always_answers(schema: dict[str, Any]) -> None:
    image = schema["components"]["schemas"]["Image"]
    assert set(image["required"]) == set(image["properties"])
    assert "created_at" in image["required"]


def test_schema_every_operation_declares_401_429_and_503_with_retry_after(schema: dict[str, Any]) -> None:
    for method, path, operation in operations(schema):
        responses = operation["responses"]
        assert {"401", "429", "503"} <= responses.keys(), (method, path)
        for status in ("429", "503"):
            assert responses[status]["headers"]["Retry-After"]["schema"]["type"] == "integer", (method, path)
            assert set(responses[status]["content"]) == {PROBLEM}


def test_schema_declares_etag_and_location_where_they_are_answered(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    for method, path in [
        ("get", "/images"),
        ("get", "/images/{image_id}"),
        ("patch", "/images/{image_id}"),
        ("get", "/images/{image_id}/file"),
    ]:
        assert "ETag" in paths[path][method]["responses"]["200"]["headers"], (method, path)
    assert "Location" in paths["/images"]["post"]["responses"]["201"]["headers"]


def test_declared_headers_are_the_ones_answered(api: Client) -> None:
    created = api.post("/images", png_upload())
    assert created.status_code == 201 and created["Location"].endswith(f"/images/{created.json()['id']}")
    for url in ["/images", f"/images/{created.json()['id']}", f"/images/{created.json()['id']}/file"]:
        assert api.get(url)["ETag"], url


def test_schema_documents_metadata_everywhere(schema: dict[str, Any]) -> None:
    """An object of scalars in the image object and the edit, JSON text in the upload form, and the list's
    `metadata.KEY` filter in its description (a parameter per key cannot be declared by name)."""
    scalars = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
    image = schema["components"]["schemas"]["Image"]
    assert "metadata" in image["required"]
    assert resolve(schema, image["properties"]["metadata"])["additionalProperties"] == scalars
    edit = schema["components"]["schemas"]["ImageUpdateRequest"]["properties"]["metadata"]
    assert resolve(schema, edit)["additionalProperties"] == scalars
    assert field(schema, "metadata")["type"] == "string"
    assert "metadata.KEY=VALUE" in schema["paths"]["/images"]["get"]["description"]
