"""Reading the JSON APIs' 422 answers: FastAPI's validation shape, one error per fault."""

from __future__ import annotations

from typing import Any

import httpx


def problem(response: httpx.Response, *loc: str) -> dict[str, Any]:
    """The one validation error of a 422 answer, after checking it names ``loc``."""
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert isinstance(errors, list), errors
    [error] = errors
    assert tuple(error["loc"]) == loc, error
    assert error["msg"] and error["type"], error
    return dict(error)
