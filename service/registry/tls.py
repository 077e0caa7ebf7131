"""TLS for the registry client, with its trust store read when the first TLS connection is made.

httpx builds its TLS context when a client is made, and reading the CA bundle is most of that
(~25–40 ms): a fifth of what a one-shot `trialwatch sync` spends before its first request, and
spent in vain when the registry is reached over plain HTTP (a local mirror or emulator). This
context reads the same trust store httpx would (``SSL_CERT_FILE``, ``SSL_CERT_DIR``, else
certifi's bundle: ``httpx._config.create_ssl_context``) the first time it wraps a socket, so a
connection to an https registry verifies exactly as before, and one that never uses TLS never
reads it. Until then it trusts nothing: it cannot verify anything by accident.
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
from typing import Any


class TrustOnFirstUse(ssl.SSLContext):
    """A client context (``PROTOCOL_TLS_CLIENT``: certificates and host names verified) whose
    CA certificates are loaded just before its first handshake."""

    _trust_lock = threading.Lock()
    _trust_loaded = False

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self.load_trust()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self.load_trust()  # TLS through an https proxy
        return super().wrap_bio(*args, **kwargs)

    def load_trust(self) -> None:
        with self._trust_lock:
            if self._trust_loaded:
                return
            if os.environ.get("SSL_CERT_FILE"):
                self.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
            elif os.environ.get("SSL_CERT_DIR"):
                self.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
            else:
                import certifi

                self.load_verify_locations(cafile=certifi.where())
            self._trust_loaded = True


def registry_tls_context() -> ssl.SSLContext:
    """What ``ssl.create_default_context`` makes for a client, but for the trust store."""
    context = TrustOnFirstUse(ssl.PROTOCOL_TLS_CLIENT)
    if sys.version_info >= (3, 13):  # the stricter defaults Python 3.13 gave client contexts
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:
        context.keylog_filename = keylog
    return context
