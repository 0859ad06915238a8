"""DICOM over TLS for the gateway (PS3.15 B.9, the BCP 195 non-downgrading profile: TLS 1.2
and later, Python's default cipher suites): the gateway's certificate and key
(`--dimse-tls-cert`, `--dimse-tls-key`), and with `--dimse-tls-ca` only peers presenting a
certificate that authority signed may connect; the peers named by `--dimse-tls-peer` are
reached over TLS too (C-MOVE destinations, storage commitment reports)."""

import ssl
from pathlib import Path


def server_context(cert: Path | None, key: Path | None, ca: Path | None) -> ssl.SSLContext | None:
    """The gateway's TLS context, or None for plain TCP; ValueError naming what is wrong
    (a certificate without its key, a file that cannot be read or does not match)."""
    if cert is None and key is None and ca is None:
        return None
    if cert is None or key is None:
        raise ValueError("TLS needs both the certificate and its private key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
        if ca is not None:
            context.load_verify_locations(ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot use {cert}, {key}{f' and {ca}' if ca else ''}: {exc}") from None
    return context


def client_context(cert: Path | None, key: Path | None, ca: Path | None) -> ssl.SSLContext:
    """The context the gateway reaches TLS peers with: their certificate verified against
    `ca` (else the system's authorities), its own presented when it has one; ValueError
    naming what cannot be read."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if ca is not None:
            context.load_verify_locations(ca)
        if cert is not None and key is not None:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot use {cert}, {key}{f' and {ca}' if ca else ''}: {exc}") from None
    return context
