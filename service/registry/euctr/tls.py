"""TLS for the EU Clinical Trials Register, whose server has sent an incomplete certificate
chain: its own certificate without the intermediate that links it to a root, so OpenSSL
clients (Linux, curl, Python) fail with "unable to get local issuer certificate" where
browsers, which fetch or cache intermediates, do not (rfhb/ctrdata#19; ctrdata's CRAN notes
say the same of eudract.ema.europa.eu). Others answer with ``curl -k`` / ``verify=False``.

trialwatch keeps verification on: the register's context trusts what every registry client
trusts (``SSL_CERT_FILE``, ``SSL_CERT_DIR``, else certifi's roots, read at the first handshake
as ``service.registry.tls`` does) and also holds every PEM certificate shipped in ``certs/``
beside this module: the missing intermediate(s). An intermediate held there is only a link of
the chain, never a trust anchor of its own: the chain must still end at a trusted root
(``VERIFY_X509_PARTIAL_CHAIN`` is cleared), and host names are checked as always.
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
from pathlib import Path

from service.registry.tls import TrustOnFirstUse

CERTS = Path(__file__).resolve().parent / "certs"


class RegisterTrust(TrustOnFirstUse):
    """The trust store plus the intermediates in ``folder``, loaded before the first handshake."""

    # ssl.SSLContext takes its protocol in __new__; __init__ only adds the folder
    def __init__(self, protocol: int, folder: Path | None = None) -> None:
        del protocol
        self.folder = folder or CERTS
        self._chain_lock = threading.Lock()
        self._chain_loaded = False

    def load_trust(self) -> None:
        with self._chain_lock:
            if self._chain_loaded:
                return
            super().load_trust()
            for pem in shipped_certificates(self.folder):
                self.load_verify_locations(cadata=pem)
            self._chain_loaded = True


def shipped_certificates(folder: Path | None = None) -> list[str]:
    """The PEM texts of ``folder`` (``*.pem``, ``*.crt``; default ``certs/``), in name order;
    none when it has none."""
    folder = folder or CERTS
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix in (".pem", ".crt") and p.is_file())
    return [path.read_text(encoding="ascii") for path in files]


def register_tls_context(folder: Path | None = None) -> ssl.SSLContext:
    """A client context (certificates and host names verified) for the register's https URL."""
    context = RegisterTrust(ssl.PROTOCOL_TLS_CLIENT, folder)
    if sys.version_info >= (3, 13):  # Python 3.13's stricter client defaults, as registry_tls
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    # a shipped intermediate links the chain to a root; it must not end the chain itself
    context.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:
        context.keylog_filename = keylog
    return context
