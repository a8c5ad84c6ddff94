"""The API's one request parser: DRF's JSON parser, with hostile nesting answered as a 400.

``json`` recurses once per nesting level; a body of ``[[[[...]]]]`` a few hundred kilobytes
long (well under ``DATA_UPLOAD_MAX_MEMORY_SIZE``) exhausts the interpreter's recursion limit, and
the ``RecursionError`` would otherwise escape DRF's parser as a 500.
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
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
