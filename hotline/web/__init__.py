"""The people's side: server-rendered pages for agents, institutions, supervisors and admins.

:func:`install` adds the pages, the static files (the vendored htmx) and the answers to
``LoginRequired``, ``Forbidden`` and ``CsrfFailed`` to the app; it also checks the translation
catalogue, so a broken catalogue stops start-up instead of a page.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from hotline.web.auth import SESSION_COOKIE, CsrfFailed, Forbidden, LoginRequired

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"


def install(app: FastAPI) -> None:
    from hotline.web import (
        routes_admin,
        routes_auth,
        routes_portal,
        routes_supervisor,
        routes_tickets,
    )
    from hotline.web.i18n import load_catalogue
    from hotline.web.render import render, secure

    load_catalogue()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(routes_auth.router)
    app.include_router(routes_tickets.router)
    app.include_router(routes_portal.router)
    app.include_router(routes_supervisor.router)
    app.include_router(routes_admin.router)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        location = "/login?next=" + quote(target, safe="")
        if request.headers.get("HX-Request") == "true":
            response: Response = Response(status_code=401, headers={"HX-Redirect": location})
        else:
            response = RedirectResponse(location, status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/")
        secure(response, request)
        return response

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, _exc: Forbidden) -> Response:
        return render(request, "error.html", {"message": "error.forbidden"}, status=403)

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, _exc: CsrfFailed) -> Response:
        return render(request, "error.html", {"message": "error.csrf"}, status=403)
