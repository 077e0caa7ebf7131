"""Who may ask, and the headers every answer carries.

Bound to loopback the app answers anyone on this machine. Bound to any other address it needs
a token (``[web] token_env`` names the variable holding it), sent as ``Authorization: Bearer
TOKEN``, as the password of HTTP Basic, or as ``?token=TOKEN`` (feed readers rarely send
headers). Once a token is configured it is asked for on loopback too: a proxy on the same host
makes every client look local. ``/healthz`` and ``/readyz`` stay open so that orchestrators can
probe them; ``/metrics`` needs the token like any page.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Mapping
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ConfigError
from service.settings import WebSettings

OPEN_PATHS = frozenset({"/healthz", "/readyz"})

# No script runs on any page: charts are server-drawn SVG, filters are plain GET forms.
# Inline style attributes carry the status colours of the swatches (style-src-attr); style
# sheets come from this server only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def web_token(settings: WebSettings, host: str, environ: Mapping[str, str]) -> str | None:
    """The token this server asks for (None: none is needed), or a ``ConfigError`` when one is
    needed and not configured: off loopback without ``token_env``, or a variable that is empty."""
    if not settings.token_env:
        if is_loopback(host):
            return None
        raise ConfigError(
            f"web: refusing to serve on {host} without a token: set [web] token_env to the name "
            "of a variable holding one, or serve on 127.0.0.1"
        )
    token = environ.get(settings.token_env, "")
    if not token.strip():
        raise ConfigError(f"setting web.token_env: the variable {settings.token_env} is not set")
    if not (token.isascii() and token.isprintable()) or " " in token:
        # it travels in a header and a URL: anything else cannot be sent as it is
        raise ConfigError(
            f"setting web.token_env: the token in {settings.token_env} must be printable ASCII "
            "without spaces"
        )
    return token


def presented_token(scope: Scope) -> str | None:
    """The token a request carries: Bearer, Basic password, or ``?token=``."""
    authorization = Headers(scope=scope).get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    query = scope.get("query_string", b"").decode("latin-1")
    for key, found in parse_qsl(query, keep_blank_values=False):
        if key == "token":
            return found
    return None


class TokenGate:
    """ASGI middleware: 401 unless the request carries the token (when there is one)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = presented_token(scope)
        if given is not None and hmac.compare_digest(given.encode(), self.token):
            await self.app(scope, receive, send)
            return
        body = b"401 unauthorized: send the token as Authorization: Bearer TOKEN or ?token=TOKEN\n"
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="trialwatch"'),
                    *SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """ASGI middleware: the CSP and friends on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
