"""TLS to devices that present their own certificate. A Bambu printer's is signed by Bambu's CA with the
printer's serial as its name, not its address; a self-signed one can only be pinned. Either way the check
happens inside the handshake, before the connection sends its password: a device that fails it never
sees the access code."""

from __future__ import annotations

import hashlib
import ssl

from gateway.config import MqttSettings

# What SSLSocket.getpeercert() decodes a certificate into (typeshed's private _PeerCertRetDictType).
_Attrs = tuple[tuple[str, str], ...]
_PeerCert = dict[str, str | _Attrs | tuple[_Attrs, ...]]


class LinkRefused(ConnectionError):
    """The device answered but would not have us (credentials), or we would not have it (certificate)."""


class CertificateMismatch(LinkRefused):
    """Raised inside the handshake, so paho gives up before it sends CONNECT."""


class PinnedSocket(ssl.SSLSocket):
    """Checks the pinned fingerprint and the expected name as soon as the handshake is done."""

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        context = self.context
        der = self.getpeercert(binary_form=True) or b""
        pin = getattr(context, "fingerprint", None)
        if pin is not None:
            seen = hashlib.sha256(der).hexdigest()
            if seen != pin:
                self.close()
                raise CertificateMismatch(f"certificate mismatch: SHA-256 {seen}, pinned {pin}")
        expected = getattr(context, "expected_cn", None)
        if expected is not None:
            names = _common_names(self.getpeercert() or {})
            if expected not in names:
                self.close()
                raise CertificateMismatch(f"certificate mismatch: issued to {', '.join(names) or '?'}, not {expected}")


def _common_names(cert: _PeerCert) -> list[str]:
    """The commonName values of a decoded certificate's subject (a tuple of RDNs of (key, value) pairs)."""
    subject = cert.get("subject", ())
    if isinstance(subject, str):
        return []
    return [attr[1] for rdn in subject for attr in rdn if isinstance(attr, tuple) and attr[0] == "commonName"]


class PinnedContext(ssl.SSLContext):
    sslsocket_class = PinnedSocket
    fingerprint: str | None = None
    expected_cn: str | None = None


def tls_context(settings: MqttSettings, expected_cn: str | None = None) -> ssl.SSLContext:
    """System CAs and the host name by default; `ca_file` trusts that CA (or certificate) instead;
    `tls_fingerprint` pins the certificate itself. Without host-name checking, a CA-signed certificate must
    at least carry the device's name (`expected_cn`, the serial), so another printer's cannot pass."""
    context = PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(settings.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"ca_file {settings.ca_file}: cannot be read as PEM certificates: {exc}") from exc
    elif settings.tls_fingerprint is None:
        context.load_default_certs()
    context.check_hostname = settings.tls_verify_hostname
    if settings.ca_file is None and settings.tls_fingerprint is not None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the pin below is the whole check
    context.fingerprint = settings.tls_fingerprint
    if settings.ca_file is not None and not settings.tls_verify_hostname:
        context.expected_cn = expected_cn
    return context


def describe(exc: BaseException) -> str:
    """What a technician should read in the device's last_error."""
    if isinstance(exc, CertificateMismatch):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate mismatch: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    return str(exc) or type(exc).__name__
