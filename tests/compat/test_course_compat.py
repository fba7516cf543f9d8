"""The web-sessions course project's clients (compat issue, item 6).

The course's API answers ``{"success": true, "predictions": p}`` for one session, and its front end reads
``success`` from the body of every answer, errors included. That convention is behind
``VIGIL_COMPAT=course``; by default Vigil answers 4xx with ``{"success": false, ...}``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from vigil.service import create_app
from vigil.tasks import get_task


@pytest.fixture(scope="module")
def sessions_client_factory(web_sessions_trained):
    settings, store, _ = web_sessions_trained

    def make(compat=frozenset()):
        return create_app(replace(settings, compat=frozenset(compat)), store).test_client()

    return make


def test_course_client_gets_a_scalar_for_one_session(sessions_client_factory):
    one = get_task("web-sessions").example_request()
    assert isinstance(one, dict)
    default = sessions_client_factory().post("/predict/web-sessions", json=one).get_json()
    course = sessions_client_factory({"course"}).post("/predict/web-sessions", json=one)
    assert course.status_code == 200 and course.get_json()["success"] is True
    assert isinstance(course.get_json()["predictions"], float)
    assert course.get_json()["predictions"] == default["predictions"][0]
    assert course.get_json()["is_alice"] == default["is_alice"][0]
    many = sessions_client_factory({"course"}).post("/predict/web-sessions", json=[one, one]).get_json()
    assert len(many["predictions"]) == 2  # a list of sessions still gets a list


@pytest.mark.parametrize(
    "send",
    [
        lambda c: c.post("/predict/web-sessions", json={"sites": []}),
        lambda c: c.post("/predict/web-sessions", data="site1=vk.com", content_type="text/plain"),
    ],
)
def test_course_client_reads_errors_from_a_200_body(sessions_client_factory, send):
    default = send(sessions_client_factory())
    assert 400 <= default.status_code < 500 and default.get_json()["success"] is False
    course = send(sessions_client_factory({"course"}))
    assert course.status_code == 200
    body = course.get_json()
    assert body["success"] is False and body["error"] and body["status"] == default.status_code
