"""The web console (``console/``, a Vue single-page app) served by the hub at ``/``.

The built files are static and public (the console asks for a login before it shows
anything; every API call it makes is authenticated). Hashed assets are cached for good;
``index.html`` never, so a new build is picked up at the next load.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response

#: Routes the console adds (public: the authorisation tests check this list).
CONSOLE_ROUTES = {("GET", "/"), ("GET", "/assets/{path:path}")}

NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>哨兵</title>
<p>控制台尚未构建 / The console is not built: run <code>scripts/run.sh</code> (it builds it)
or <code>cd console &amp;&amp; npm ci &amp;&amp; npm run build</code>. The API is at
<a href="/docs">/docs</a>.</p>"""


def console_dir() -> Path:
    """``$SHAOBING_CONSOLE_DIR``, else ``console/dist`` beside the packages."""
    env = os.environ.get("SHAOBING_CONSOLE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "console" / "dist"


def mount_console(app: FastAPI, dist: Path | None = None) -> None:
    root = (dist or console_dir()).resolve()
    assets = root / "assets"

    @app.get("/", include_in_schema=False, response_model=None)
    def index() -> Response:
        page = root / "index.html"
        if not page.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503)
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/assets/{path:path}", include_in_schema=False)
    def asset(path: str) -> FileResponse:
        try:  # a NUL or an over-long name makes the file system raise: no such file
            file = (assets / path).resolve()
            found = file.is_relative_to(assets) and file.is_file()
        except (OSError, ValueError):
            found = False
        if not found:
            raise HTTPException(404, "no such file")
        return FileResponse(file, headers={"Cache-Control": "public, max-age=31536000, immutable"})
