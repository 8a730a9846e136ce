"""``/docs`` (Swagger UI) and ``/redoc`` served from files the hub ships: no CDN.

FastAPI's own pages load Swagger UI, ReDoc and Google Fonts from jsDelivr and
fonts.googleapis.com, which leaves them blank on a county's video network (no
internet). The JavaScript and CSS come from the ``fastapi-offline`` wheel (MIT; it
carries swagger-ui-dist, Apache-2.0, and ReDoc, MIT, unmodified): a Python
dependency like any other, so the offline bundle's wheelhouse holds it too.

The pages and assets are public, like FastAPI's defaults (they hold no data; the
OpenAPI document they read is the one FastAPI serves). Swagger UI's validator badge
(an image from validator.swagger.io) is switched off, and ReDoc's "API docs by Redocly"
logo, which its script loads from cdn.redoc.ly, is replaced by an empty inline image
(found by scripts/offline_smoke.sh: Chromium's request log in a network namespace).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

#: Where the assets are served (one route: the authorisation tests list it).
STATIC_URL = "/docs/static"
ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
          "swagger-ui.css": "text/css; charset=utf-8",
          "redoc.standalone.js": "text/javascript; charset=utf-8",
          "favicon.png": "image/png"}  # fmt: skip
#: Absolute URLs inside the shipped scripts that a browser would fetch, and their stand-ins.
EMPTY_IMAGE = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"
PATCHES = {"redoc.standalone.js": [(b"https://cdn.redoc.ly/redoc/logo-mini.svg", EMPTY_IMAGE)]}
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def static_dir() -> Path:
    """The folder of swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


@lru_cache(maxsize=len(ASSETS))
def asset_bytes(name: str) -> bytes:
    """One asset as served: the shipped file with :data:`PATCHES` applied."""
    data = (static_dir() / name).read_bytes()
    for old, new in PATCHES.get(name, []):
        data = data.replace(old, new)
    return data


def install_offline_docs(app: FastAPI) -> None:
    """Add the docs pages to an app made with ``docs_url=None, redoc_url=None``."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None, redoc_url=None")
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title

    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return Response("no such file", status_code=404, media_type="text/plain")
        return Response(asset_bytes(name), media_type=ASSETS[name],
                        headers={"Cache-Control": "public, max-age=86400"})  # fmt: skip

    # Plain Starlette routes, as FastAPI adds its own docs pages (not in the schema).
    app.add_route(DOCS_URL, swagger, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
    app.add_route(STATIC_URL + "/{name}", asset, include_in_schema=False)
