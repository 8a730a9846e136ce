"""HTTP webhooks: POST the stored body (or a Jinja2 rendering of it), signed."""

from __future__ import annotations

import httpx
from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

from alerts.config import DispatchTarget
from alerts.connectors.base import Message, Result
from alerts.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

#: 4xx answers that say "later", not "never".
RETRYABLE_4XX = frozenset({408, 425, 429})


def compile_template(source: str) -> Template:
    """Sandboxed (a config author cannot reach Python objects); a missing field is an
    error rather than an empty string in the centre's schema."""
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    return env.from_string(source)


def classify(status: int) -> Result:
    """2xx delivered; 4xx (but 408/425/429) dead; anything else retried."""
    if 200 <= status < 300:
        return Result(ok=True, status=status)
    retryable = not (400 <= status < 500) or status in RETRYABLE_4XX
    return Result(ok=False, retryable=retryable, status=status, error=f"HTTP {status}")


class WebhookConnector:
    def __init__(self, target: DispatchTarget, client: httpx.Client) -> None:
        self.target = target
        self.client = client
        self.template = compile_template(target.template) if target.template else None

    def render(self, message: Message) -> bytes:
        """The bytes sent (and signed): the stored body, or the template's rendering."""
        if self.template is None:
            return message.body
        data = message.data()
        return self.template.render(message=data, **data).encode("utf-8")

    def send(self, message: Message) -> Result:
        try:
            body = self.render(message)
        except Exception as exc:  # noqa: BLE001 - a template error never heals by retrying
            return Result(ok=False, retryable=False, error=f"template: {exc}")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            IDEMPOTENCY_HEADER: message.idempotency_key,
            **self.target.headers,
        }
        if self.target.secret:
            headers[SIGNATURE_HEADER] = sign(body, self.target.secret)
        try:
            resp = self.client.post(
                str(self.target.url), content=body, headers=headers, timeout=self.target.timeout_s
            )
        except httpx.HTTPError as exc:
            return Result(ok=False, error=f"{type(exc).__name__}: {exc}")
        return classify(resp.status_code)

    def close(self) -> None:
        """The HTTP client belongs to the dispatcher."""
