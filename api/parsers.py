"""Request body parsers: DRF's JSON parser, with a body nested deeper than Python's parser recurses a 400.

`json.loads` raises RecursionError (not ValueError, which DRF turns into a 400) for `[[[[…]]]]` some
thousand levels deep, which a body well under the size limit holds: without this, a 500.
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
