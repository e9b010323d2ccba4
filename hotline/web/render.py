"""Rendering pages: one Jinja2 environment (autoescaping on for every template), the
translator, the user and their CSRF token in every page's context, and the security headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from hotline.web.auth import CSRF_FIELD, CSRF_HEADER
from hotline.web.i18n import LANG_COOKIE, Translator, pick_language
from tickets.phones import mask_phone

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"

environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,  # every template, whatever its name: hostile text is shown as text
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters["mask"] = mask_phone
templates = Jinja2Templates(env=environment)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def language(request: Request) -> str:
    return pick_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))


def translator(request: Request) -> Translator:
    return Translator(language(request), request.app.state.settings.tz)


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    user = getattr(request.state, "web_user", None)
    t = translator(request)
    values: dict[str, Any] = {
        "t": t,
        "lang": t.language,
        "user": user,
        "csrf": user.csrf if user is not None else "",
        "csrf_field": CSRF_FIELD,
        "csrf_header": CSRF_HEADER,
        "path": request.url.path,
        "query": str(request.url.query),
    }
    values.update(context or {})
    response = templates.TemplateResponse(request, name, values, status_code=status)
    secure(response, request)
    return response


def secure(response: Any, request: Request) -> None:
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    wanted = request.query_params.get("lang")
    if wanted in ("zh", "en") and request.cookies.get(LANG_COOKIE) != wanted:
        response.set_cookie(
            LANG_COOKIE,
            wanted,
            max_age=365 * 86400,
            httponly=True,
            samesite="lax",
            secure=request.app.state.settings.public_base_url.startswith("https://"),
        )
