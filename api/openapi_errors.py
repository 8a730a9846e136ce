"""The error answers every route can give, written into the OpenAPI document.

FastAPI documents only 200 and 422 unless a route lists more; its 422 schema says
``detail`` is an array while the API's own refusals (``HTTPException``) carry a string.
The document is made true once, here, instead of route by route: every operation gets the
4xx answers the app's layers give it (authentication, permission or scope, a missing
object, an over-large body, throttling), all with :data:`ERROR_SCHEMA`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
    ]}},  # fmt: skip
    "required": ["detail"],
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_DESCRIPTIONS = {
    "400": "bad request (a Host header not allowed, an invalid Content-Length)",
    "401": "not authenticated, or the credential is invalid, expired or revoked",
    "403": "the role lacks the permission, or the object lies outside the caller's area",
    "404": "no such object, or one outside the caller's scope",
    "413": "request body over the route's limit",
    "422": "invalid parameters or body",
    "429": "too many failed logins: wait Retry-After seconds",
}


def document_errors(
    build: Callable[[], dict[str, Any]], public: Collection[tuple[str, str]]
) -> Callable[[], dict[str, Any]]:
    """Wrap ``app.openapi``: the document it builds, with the error answers added."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not cache:
            cache.update(_with_errors(build(), public))
        return cache

    return openapi


def _with_errors(spec: dict[str, Any], public: Collection[tuple[str, str]]) -> dict[str, Any]:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    if "HTTPValidationError" in schemas:  # the API's own 422s carry a string
        schemas["HTTPValidationError"]["properties"]["detail"] = ERROR_SCHEMA["properties"][
            "detail"]  # fmt: skip
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes = ["400", "413", "422"]
            if (method.upper(), path) not in public:
                codes += ["401", "403", "404"]
            elif path == "/api/auth/login":
                codes += ["401", "429", "503"]
            elif path == "/api/feedback":
                codes += ["401", "404", "409"]
            for code in codes:
                entry = operation["responses"].setdefault(
                    code, {"description": _DESCRIPTIONS.get(code, "error")}
                )
                entry.setdefault("content", {"application/json": {"schema": _ERROR_REF}})
            for code, entry in operation["responses"].items():  # the route's own errors
                if code[:1] in "45" and isinstance(entry, dict):
                    entry.setdefault("content", {"application/json": {"schema": _ERROR_REF}})
    return spec
