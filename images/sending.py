"""How a stored file's bytes leave the app, once a view has decided to send them (auth, ETag, 304 and the
headers are the view's): handed to the web server, never copied through Python where the server allows.

- `FILE_ACCEL_REDIRECT` set (a path prefix such as `/_stored/`, for nginx in front: compose.yaml, the
  chaos rig): the answer carries the view's headers and `X-Accel-Redirect: <prefix>fs/<name>` (local
  files) or `<prefix>s3/<bucket>/<key>` (S3), and no body; nginx sends the file from an `internal`
  location (deploy/nginx.conf), the app's headers kept, the Content-Type the stored file's (its
  extension, or the S3 object's, both from the stored format). The app still opens the file first, so a
  missing one is the app's answer, not nginx's; on S3, nginx reads the bucket as an anonymous client
  does (README, "Running on S3": the bucket's images and renditions are public).
- Otherwise a `FileResponse`: under gunicorn a local file goes out through the WSGI file wrapper, which
  `sendfile`s it from its file descriptor (Django hands the wrapper the open file); an S3 object is
  streamed in chunks.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.base import File
from django.http import FileResponse, HttpResponse, HttpResponseBase

from images import storage

ACCEL_HEADER = "X-Accel-Redirect"


def stored_file_response(file: File, *, name: str, content_type: str, size: int) -> HttpResponseBase:
    """The body of a GET for the stored file `name`, opened as `file` (closed here when not sent)."""
    prefix = settings.FILE_ACCEL_REDIRECT
    if prefix:
        file.close()
        response: HttpResponseBase = HttpResponse()
        response[ACCEL_HEADER] = prefix + storage.internal_path(name)
        # nginx keeps an upstream's Content-Type through the redirect, even onto an error page; without
        # one it takes the stored file's (by extension, or the object's on S3: the same stored format).
        del response["Content-Type"]
        # No body from the app: nginx sends the file and its own length.
        response["Content-Length"] = "0"
        return response
    response = FileResponse(file, content_type=content_type)
    response["Content-Length"] = str(size)
    return response
