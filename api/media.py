"""Serves stored image files when they live on the local filesystem (`make run` needs no web server).

Names are content hashes, so a file never changes: it is cached forever and its hash is its ETag. The
Content-Type comes from the stored format only, and the browser is told not to sniff or run anything.
"""

from __future__ import annotations

import re

from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseNotModified

from api.conditional import if_none_match_matches
from api.problems import allow_methods, problem_response
from images import storage
from images.processing import OutputFormat

MEDIA_TYPES = {f.extension: f.media_type for f in OutputFormat}
_NAME = re.compile(
    rf"images/[0-9a-f]{{2}}/[0-9a-f]{{2}}/(?P<digest>[0-9a-f]{{64}})\.(?P<ext>{'|'.join(MEDIA_TYPES)})"
)

FILE_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


@allow_methods("GET", "HEAD")
def serve_image_file(request: HttpRequest, name: str) -> HttpResponse:
    match = _NAME.fullmatch(name)
    if match is None:
        return problem_response(404, "No such file.", code="not_found")
    etag = f'"{match["digest"]}"'
    headers = {**FILE_HEADERS, "ETag": etag}
    if if_none_match_matches(request.headers.get("If-None-Match", ""), etag):
        response: HttpResponse = HttpResponseNotModified()
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
        response = FileResponse(file, content_type=MEDIA_TYPES[match["ext"]])
    response["Content-Disposition"] = f'inline; filename="{match["digest"]}.{match["ext"]}"'
    for key, value in headers.items():
        response[key] = value
    return response
