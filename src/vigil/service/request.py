"""The app's request class: a body of declared length read in one call, not in 64 KiB pieces.

werkzeug's ``get_data`` reads the body through its ``LimitedStream`` 64 KiB at a time into a growing
bytearray and then copies that into bytes: for a 9.5 MB ``.npy`` matrix or a 21 MB JSON body of
EMBER vectors that is two fresh buffers and a few hundred Python-level reads, 2-3 ms and 10-25 ms
(``python -m bench.ember_batch``). When the request says how long its body is, nothing has read
from the stream yet, the length is within ``MAX_CONTENT_LENGTH`` and the body is to be kept
(``cache``, as every caller here asks), :class:`VigilRequest` asks the WSGI input for exactly that
many bytes instead (one read; the test client's and many servers' inputs hand the bytes over
without a copy). Every other case (chunked bodies, form parsing first,
a body over the limit, which werkzeug answers with 413) is werkzeug's own ``get_data``.

>>> from werkzeug.test import EnvironBuilder
>>> VigilRequest(EnvironBuilder(method="POST", data=b"[1, 2]").get_environ()).get_data()
b'[1, 2]'
"""

from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.exceptions import ClientDisconnected


def read_declared_body(environ: dict[str, Any], length: int) -> bytes:
    """``length`` bytes of ``environ["wsgi.input"]``, never more (so never past the declared body).
    A stream that ends sooner is a client that went away (werkzeug's 400), unless the server says it
    ends the stream itself (``wsgi.input_terminated``), where werkzeug keeps the shorter body too."""
    stream = environ["wsgi.input"]
    parts, left = [], length
    while left > 0:
        part = stream.read(left)
        if not part:
            if "wsgi.input_terminated" in environ:
                break
            raise ClientDisconnected()
        parts.append(part)
        left -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class VigilRequest(Request):
    def get_data(  # type: ignore[override]  # the same signature; werkzeug's overloads only narrow the return
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> bytes | str:
        length = self.content_length
        limit = self.max_content_length
        untouched = "stream" not in self.__dict__ and getattr(self, "_cached_data", None) is None
        if not cache or parse_form_data or not untouched or not length or (limit is not None and length > limit):
            data = super().get_data(cache=cache, parse_form_data=parse_form_data)
        else:
            data = read_declared_body(self.environ, length)
            self._cached_data = data  # where werkzeug keeps it: form parsing and later get_data read it there
        return data.decode(errors="replace") if as_text else data  # as werkzeug decodes it
