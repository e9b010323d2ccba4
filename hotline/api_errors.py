"""Error answers of the JSON APIs, as their OpenAPI document promises them.

A request that names something wrong answers 422 in FastAPI's own validation shape
(``{"detail": [{"loc", "msg", "type", "input", "ctx"}]}``), whether FastAPI or a handler found
the fault, so a client reads one shape; the nearest valid names ride in ``ctx.suggestions``.
The other error statuses are declared per route with the models below (``responses=``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, RootModel

from kb.service import UnknownValue


def invalid(
    loc: Sequence[str | int],
    message: str,
    *,
    value: Any = None,
    kind: str = "value_error",
    suggestions: Sequence[str] | None = None,
) -> RequestValidationError:
    """A 422 naming the offending field (``loc``, e.g. ``("query", "phone")``) and why; raise
    it from a handler and FastAPI's validation handler renders it."""
    error: dict[str, Any] = {"loc": tuple(loc), "msg": message, "type": kind, "input": value}
    if suggestions is not None:
        error["ctx"] = {"suggestions": list(suggestions)}
    return RequestValidationError([error])


def unknown_value(exc: UnknownValue, where: str = "query") -> RequestValidationError:
    """An unknown catalogue name (category, district, cluster) with the closest valid ones."""
    return invalid(
        (where, exc.what),
        str(exc),
        value=exc.value,
        kind="unknown_value",
        suggestions=exc.suggestions,
    )


class Message(BaseModel):
    """FastAPI's answer for an ``HTTPException``: what went wrong, in words."""

    detail: str


class ErrorOut(BaseModel):
    """A refused ticket operation (403 not permitted, 404 no such ticket)."""

    error: str


class ConflictOut(ErrorOut):
    """409: the ticket's state or version does not allow the operation; its current ones."""

    number: str
    state: str
    version: int


class Open311Error(BaseModel):
    code: int
    description: str


class Open311Errors(RootModel[list[Open311Error]]):
    """GeoReport v2's error list (http://wiki.open311.org/GeoReport_v2#Errors)."""


def described(status: int, model: type[BaseModel], text: str) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model, "description": text}}


UNAUTHORISED = described(401, Message, "No valid bearer token")
OPEN311_ERRORS: dict[int | str, dict[str, Any]] = {
    **described(400, Open311Errors, "A required field is missing or malformed"),
    **described(403, Open311Errors, "The API key is missing or revoked"),
    **described(404, Open311Errors, "No such format, service or request"),
}
