"""Write the REST API's OpenAPI document (the console's typed client is generated from it).

    python -m api.openapi_dump console/openapi.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

from api.app import create_app


def openapi() -> dict[str, Any]:
    # The document depends only on the routes: no hub or database is needed to build it.
    app = create_app(cast(Any, None), cast(Any, None))
    return app.openapi()


def main(argv: list[str]) -> int:
    text = json.dumps(openapi(), ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
