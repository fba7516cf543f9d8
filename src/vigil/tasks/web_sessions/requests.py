"""What ``POST /predict/web-sessions`` takes: one session, a list of them, or ``{"sessions": [...]}``.

A session is ``{"sites": [...], "times": [...]}`` (up to 10 visits in order, sites as ids or names,
times as ISO strings) or the course's flat ``site1..site10`` / ``time1..time10``. The model documents
the body; :func:`vigil.tasks.web_sessions.api_input.sessions_frame` reads the sessions and names the
session and field of a fault (``{"session", "field"}``, as the course's clients read it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

MAX_VISITS = 10

_FLAT: dict[str, Any] = {
    **{f"site{i}": (int | str | None, None) for i in range(1, MAX_VISITS + 1)},
    **{f"time{i}": (str | None, None) for i in range(1, MAX_VISITS + 1)},
}


class _Visits(BaseModel):
    model_config = ConfigDict(extra="allow")
    sites: Annotated[
        list[int | str] | None,
        Field(min_length=1, max_length=MAX_VISITS, description="site ids or names, in visit order"),
    ] = None
    times: Annotated[list[datetime] | None, Field(min_length=1, max_length=MAX_VISITS)] = None


Session = create_model("Session", __base__=_Visits, **_FLAT)  # type: ignore[call-overload]


class Sessions(BaseModel):
    sessions: list[Session]  # type: ignore[valid-type]


# a union, not one of: {"sessions": [...]} also matches the one-session object
REQUEST: Any = Session | list[Session] | Sessions  # type: ignore[valid-type]

__all__ = ["REQUEST", "Session", "Sessions"]
