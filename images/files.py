"""Serves stored image files when they live on the local filesystem (`make run` needs no web server).

Names are content hashes, so a file never changes: it is cached forever and its hash is its ETag. The
Content-Type comes from the stored format only, and the browser is told not to sniff or run anything.
The route is always mounted (config/urls.py); when the files live elsewhere (S3), their URLs point there and
this answers the 404 of an unknown address.
"""

from __future__ import annotations

import re

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotModified

from api.caching import CACHE_FOREVER
from api.conditional import if_none_match_matches
from api.errors import page_not_found
from api.exception_handler import RETRY_AFTER_SECONDS
from api.problems import allow_methods, problem_response
from images import storage
from images.exceptions import StorageUnavailable
from images.formats import OutputFormat
from images.sending import stored_file_response

MEDIA_TYPES = {f.extension: f.media_type for f in OutputFormat}
_NAME = re.compile(
    rf"images/[0-9a-f]{{2}}/[0-9a-f]{{2}}/(?P<digest>[0-9a-f]{{64}})\.(?P<ext>{'|'.join(MEDIA_TYPES)})"
)

FILE_HEADERS = {
    "Cache-Control": CACHE_FOREVER,
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def serve_image_file(request: HttpRequest, name: str) -> HttpResponseBase:
    """GET or HEAD a stored file by its name (`images/ab/cd/<sha256>.<ext>`), or a 404 problem."""
    if not storage.is_local():
        # Whatever the method: the same answer as an address with no route.
        return page_not_found(request, Http404())
    return _serve_local_file(request, name)


@allow_methods("GET", "HEAD")
def _serve_local_file(request: HttpRequest, name: str) -> HttpResponseBase:
    try:
        return _local_file_response(request, name)
    except StorageUnavailable as exc:
        # Below DRF, so answered here: the disk failed, or the storage's guard is failing fast.
        response = problem_response(503, exc.message, code=exc.code)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def _local_file_response(request: HttpRequest, name: str) -> HttpResponseBase:
    match = _NAME.fullmatch(name)
    if match is None:
        return problem_response(404, "No such file.", code="not_found")
    etag = f'"{match["digest"]}"'
    headers = {**FILE_HEADERS, "ETag": etag}
    if if_none_match_matches(request.headers.get("If-None-Match", ""), etag):
        response: HttpResponseBase = HttpResponseNotModified()
    elif request.method == "HEAD":
        try:
            size = storage.size_of(name)
        except FileNotFoundError:
            return problem_response(404, "No such file.", code="not_found")
        response = HttpResponse(content_type=MEDIA_TYPES[match["ext"]])
        response["Content-Length"] = str(size)
    else:
        try:
            file = storage.open_file(name)
        except FileNotFoundError:
            return problem_response(404, "No such file.", code="not_found")
        response = stored_file_response(
            file, name=name, content_type=MEDIA_TYPES[match["ext"]], size=file.size
        )
    response["Content-Disposition"] = f'inline; filename="{match["digest"]}.{match["ext"]}"'
    for key, value in headers.items():
        response[key] = value
    return response
