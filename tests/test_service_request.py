"""The app's request class (service/request.py): a declared-length body read in one call, with
werkzeug's answers for every other case (short bodies, oversized ones, forms, chunked input)."""

from __future__ import annotations

import io

import pytest
from flask import Flask, Request, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.test import EnvironBuilder

from vigil.service.request import VigilRequest, read_declared_body


def _environ(data: bytes = b"", **kwargs):
    return EnvironBuilder(method="POST", data=data, **kwargs).get_environ()


def test_body_read_once_and_cached_like_werkzeug():
    body = bytes(range(256)) * 4000
    ours, theirs = VigilRequest(_environ(body)), Request(_environ(body))
    assert ours.get_data() == theirs.get_data() == body
    assert ours.get_data() is ours.get_data()  # cached
    assert ours.get_data(as_text=True) == theirs.get_data(as_text=True)
    uncached, theirs_uncached = VigilRequest(_environ(body)), Request(_environ(body))
    assert uncached.get_data(cache=False) == theirs_uncached.get_data(cache=False) == body
    assert uncached.get_data() == theirs_uncached.get_data() == b""  # consumed, as werkzeug's is


def test_short_body_is_a_client_that_went_away():
    def environ():
        return {**_environ(b"abc"), "CONTENT_LENGTH": "10"}  # says 10 bytes, sends 3

    with pytest.raises(ClientDisconnected):
        Request(environ()).get_data()
    with pytest.raises(ClientDisconnected):
        VigilRequest(environ()).get_data()
    terminated = environ()
    terminated["wsgi.input_terminated"] = True  # the server ends the stream: the shorter body is kept
    assert read_declared_body(terminated, 10) == b"abc"


def test_never_reads_past_the_declared_length():
    environ = {**_environ(b"0123456789"), "CONTENT_LENGTH": "4"}
    assert VigilRequest(environ).get_data() == b"0123"
    assert environ["wsgi.input"].read() == b"456789"


def test_oversized_body_and_forms_are_werkzeugs():
    app = Flask("request-test")
    app.request_class = VigilRequest
    app.config["MAX_CONTENT_LENGTH"] = 8
    with app.test_request_context(method="POST", data=b"x" * 9):
        with pytest.raises(RequestEntityTooLarge):
            request.get_data()
    app.config["MAX_CONTENT_LENGTH"] = None
    form = {"field": "value", "upload": (io.BytesIO(b"MZ\x90\x00"), "a.exe")}
    with app.test_request_context(method="POST", data=form):
        raw = request.get_data()  # read first, then parsed as a form from the cached bytes
        assert b"a.exe" in raw
        assert request.form["field"] == "value"
        assert request.files["upload"].read() == b"MZ\x90\x00"
    with app.test_request_context(method="POST", data=b"streamed"):
        assert request.stream.read(3) == b"str"  # someone read the stream: werkzeug's get_data goes on
        assert request.get_data() == b"eamed"
