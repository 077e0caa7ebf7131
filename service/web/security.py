"""Who may ask, and the headers every answer carries.

Bound to loopback the app answers anyone on this machine. Bound to any other address it needs
a token (``[web] token_env`` names the variable holding it), sent as ``Authorization: Bearer
TOKEN``, as the password of HTTP Basic, or as ``?token=TOKEN`` (feed readers rarely send
headers). Once a token is configured it is asked for on loopback too: a proxy on the same host
makes every client look local. ``/healthz`` and ``/readyz`` stay open so that orchestrators can
probe them; ``/metrics`` needs the token like any page. A token must be 32 characters or
more, and a client whose tokens keep failing is slowed down: after ``FAILURE_LIMIT`` 401s in
``FAILURE_WINDOW`` seconds its wrong tokens get 429 with ``Retry-After`` until the window has
passed (the right token still passes: the 429 never locks out a user who has it).

Without a token (loopback only) a page answers only a request whose ``Host`` names the bound
address or ``localhost`` (``127.0.0.1`` and ``[::1]`` too when bound to loopback), on any port
(``ssh -L 9000:…`` sends ``localhost:9000``): a web page elsewhere that rebinds its own name to
127.0.0.1 (DNS rebinding) sends its own name as ``Host`` and gets 421.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ConfigError
from service.settings import WebSettings

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
MIN_TOKEN_LENGTH = 32
FAILURE_LIMIT = 10  # 401s from one client in the window before it waits
FAILURE_WINDOW = 60.0  # seconds
MAX_CLIENTS_REMEMBERED = 10_000  # failing clients kept at once (the oldest are forgotten)

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
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"setting web.token_env: the token in {settings.token_env} has {len(token)} "
            f"characters, fewer than {MIN_TOKEN_LENGTH} (make one with: python -c "
            "'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})  # what this machine calls itself


def allowed_hosts(host: str) -> frozenset[str]:
    """The host names (no port) a server bound to ``host`` without a token answers: the bound
    address and ``localhost``; bound to ``localhost`` or to a loopback address, also
    ``127.0.0.1`` and ``::1``. Only the name matters against DNS rebinding (a rebinding page
    sends its own name): the port differs behind ``ssh -L`` or a port forward."""
    bound = host_name(host) or host.lower()
    if bound == "localhost" or is_loopback(bound):
        return frozenset({bound, *LOCAL_NAMES})
    return frozenset({bound, "localhost"})


def host_name(host: str) -> str | None:
    """The name a ``Host`` value (or a bound address) names, without its port, lowercase, an
    IP address in its canonical form (``[0:0::1]:8080`` is ``::1``); None when it is not a
    well-formed ``name[:port]``, ``[IPv6][:port]`` or bare IPv6 address."""
    value = host.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
        if not bracket or (rest and (port == rest or not _is_port(port))):
            return None
        return _canonical_ip(name, version=6)
    if value.count(":") > 1:  # a bare IPv6 address: a bound one, or a Host without brackets
        return _canonical_ip(value, version=6)
    name, colon, port = value.partition(":")
    if not name or (colon and not _is_port(port)):
        return None
    return _canonical_ip(name, version=4) or name


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5


def _canonical_ip(text: str, *, version: int) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(address) if address.version == version else None


class HostCheck:
    """ASGI middleware: 421 for a request whose ``Host`` names none of ``allowed`` host names
    (any port; None: every ``Host`` is served, as with a token, which a rebinding page does
    not have)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str] | None) -> None:
        self.app = app
        self.allowed = None if allowed is None else frozenset(h.lower() for h in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.allowed is None:
            await self.app(scope, receive, send)
            return
        if host_name(Headers(scope=scope).get("host", "")) in self.allowed:
            await self.app(scope, receive, send)
            return
        shown = ", ".join(f"[{h}]" if ":" in h else h for h in sorted(self.allowed))
        body = f"421 misdirected request: this server answers to Host {shown} only\n"
        await _plain_answer(send, 421, body.encode())


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


class FailedAttempts:
    """The 401s of each client in the last ``window`` seconds, for slowing guessers down.

    Memory is bounded: at most ``limit`` moments per client and ``max_clients`` clients (the
    least recently failing are forgotten first). IPv6 clients count by their /64, which one
    machine can fill with addresses of its own."""

    def __init__(
        self,
        *,
        limit: int = FAILURE_LIMIT,
        window: float = FAILURE_WINDOW,
        max_clients: int = MAX_CLIENTS_REMEMBERED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.max_clients, self.clock = limit, window, max_clients, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, client: str) -> float:
        """Seconds ``client`` must wait before it is heard again (0: now)."""
        moments = self._failures.get(_client_key(client))
        if moments is None or len(moments) < self.limit:
            return 0.0
        return max(0.0, moments[0] + self.window - self.clock())

    def failed(self, client: str) -> None:
        key = _client_key(client)
        moments = self._failures.pop(key, None) or deque(maxlen=self.limit)
        moments.append(self.clock())
        self._failures[key] = moments  # the most recent last
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failures)


def _client_key(client: str) -> str:
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class TokenGate:
    """ASGI middleware: 401 unless the request carries the token (when there is one). The
    token is looked at first: the right one always passes, so a guesser cannot lock anyone
    out (behind a proxy on this host every client is 127.0.0.1); a wrong or missing one from a
    client that has failed too often lately gets 429 with ``Retry-After`` instead of 401."""

    def __init__(
        self, app: ASGIApp, token: str | None, failures: FailedAttempts | None = None
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.failures = failures if failures is not None else FailedAttempts()  # has a len

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = presented_token(scope)
        if given is not None and hmac.compare_digest(given.encode(), self.token):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self.failures.wait(client)
        if wait > 0:
            body = b"429 too many failed attempts: wait, then send the right token\n"
            retry = (b"retry-after", str(math.ceil(wait)).encode())
            await _plain_answer(send, 429, body, retry)
            return
        self.failures.failed(client)
        body = b"401 unauthorized: send the token as Authorization: Bearer TOKEN or ?token=TOKEN\n"
        challenge = (b"www-authenticate", b'Bearer realm="trialwatch"')
        await _plain_answer(send, 401, body, challenge)


async def _plain_answer(send: Send, status: int, body: bytes, *extra: tuple[bytes, bytes]) -> None:
    """A one-line plain-text answer from a middleware, with the security headers."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *extra,
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
