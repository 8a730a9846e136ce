"""``/docs`` (Swagger UI) and ``/redoc`` served from files the hub ships: no CDN.

FastAPI's own pages load Swagger UI, ReDoc and Google Fonts from jsDelivr and
fonts.googleapis.com, which leaves them blank on a county's video network (no
internet). The JavaScript and CSS come from the ``fastapi-offline`` wheel (MIT; it
carries swagger-ui-dist, Apache-2.0, and ReDoc, MIT, unmodified): a Python
dependency like any other, so the offline bundle's wheelhouse holds it too.

The pages and assets are public, like FastAPI's defaults (they hold no data; the
OpenAPI document they read is the one FastAPI serves). Swagger UI's validator badge
(an image from validator.swagger.io) is switched off.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

#: Where the assets are served (a static mount: the authorisation tests list it).
STATIC_URL = "/docs/static"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def static_dir() -> Path:
    """The folder of swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def install_offline_docs(app: FastAPI) -> None:
    """Add the docs pages to an app made with ``docs_url=None, redoc_url=None``."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None, redoc_url=None")
    app.mount(STATIC_URL, StaticFiles(directory=static_dir()), name="docs-static")
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

    # Plain Starlette routes, as FastAPI adds its own docs pages (not in the schema).
    app.add_route(DOCS_URL, swagger, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
