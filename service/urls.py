"""One way to show a URL without its credentials: in messages, logs and listings.

Credentials ride in URLs in two places: the userinfo (``postgresql://user:PASSWORD@host/db``)
and the query (``?password=…`` for libpq, ``?token=…``/``?sig=…`` for webhooks and signed
URLs). ``mask_url`` replaces the password and the value of every query key that looks secret
with ``***``; ``mask_urls`` does so for every URL inside a free text (a log line, an
exception). Paths are kept: they say where a request went, and masking them would make logs
useless — a URL whose path is the secret (a Slack hook) is never logged by trialwatch itself.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

__all__ = ["MASK", "SECRET_KEY_WORDS", "is_secret_key", "mask_url", "mask_urls"]

MASK = "***"
# a query key containing any of these (case-insensitive) is taken for a credential
SECRET_KEY_WORDS = (
    "token",
    "key",
    "secret",
    "pass",
    "pwd",
    "sig",
    "auth",
    "credential",
    "session",
    "cookie",
    "jwt",
    "bearer",
)

_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s'\"<>`]+")
_QUERY_PAIR = re.compile(r"([^&;=]*)=([^&;]*)")


def is_secret_key(key: str) -> bool:
    """True for query keys such as ``token``, ``api_key``, ``X-Amz-Signature``, ``password``."""
    folded = key.lower()
    return any(word in folded for word in SECRET_KEY_WORDS)


def mask_url(url: str) -> str:
    """``url`` with its userinfo password and secret-looking query values replaced by ***.

    Only the credential characters are replaced; everything else is kept byte for byte, so a
    masked URL still says which host, path and parameters were used. A string that does not
    parse as a URL is returned unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = _mask_netloc(parts)
    query = _QUERY_PAIR.sub(_mask_pair, parts.query)
    fragment = _QUERY_PAIR.sub(_mask_pair, parts.fragment)
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return url
    return parts._replace(netloc=netloc, query=query, fragment=fragment).geturl()


def mask_urls(text: str) -> str:
    """``text`` with every URL in it masked by ``mask_url``."""
    if "://" not in text:
        return text  # the common case of a log line, kept cheap
    return _URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), text)


def _mask_netloc(parts: SplitResult) -> str:
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return parts.netloc
    user, colon, password = userinfo.partition(":")
    if not colon or not password or password == MASK:
        return parts.netloc
    return f"{user}:{MASK}@{hostport}"


def _mask_pair(match: re.Match[str]) -> str:
    key, value = match.group(1), match.group(2)
    if value and value != MASK and is_secret_key(key):
        return f"{key}={MASK}"
    return match.group(0)
