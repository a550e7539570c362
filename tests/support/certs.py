"""Throwaway certificates for TLS tests, made with the `cryptography` package: a CA, a server
certificate for 127.0.0.1 and localhost, a client certificate signed by the CA, and a second,
unrelated CA with a client certificate of its own (what a stranger would present). Written as
PEM files in a folder; EC P-256 keys, valid for a day."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=1)
SERVER_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate and its private key, as PEM file paths."""

    cert: str
    key: str


@dataclass(frozen=True, slots=True)
class Certs:
    ca: str  # the CA certificate that signed `server` and `client`
    server: KeyPair
    client: KeyPair
    other_ca: str  # a CA that signed nothing above
    other_client: KeyPair  # signed by `other_ca`


@dataclass(frozen=True, slots=True)
class _Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _write(
    folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> KeyPair:
    cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return KeyPair(str(cert_path), str(key_path))


def _ca(folder: Path, stem: str) -> tuple[_Issuer, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"agentplex test {stem}")
    usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    return _Issuer(name, key), _write(folder, stem, cert, key).cert


def _leaf(
    folder: Path, stem: str, issuer: _Issuer, purpose: x509.ObjectIdentifier, names: tuple[str, ...]
) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(_name(stem), issuer.name, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
    return _write(folder, stem, builder.sign(issuer.key, hashes.SHA256()), key)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_certs(folder: Path) -> Certs:
    """Write every certificate and key into `folder` (which must exist)."""
    ca, ca_file = _ca(folder, "ca")
    other, other_file = _ca(folder, "other-ca")
    server_auth, client_auth = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    return Certs(
        ca=ca_file,
        server=_leaf(folder, "server", ca, server_auth, SERVER_NAMES),
        client=_leaf(folder, "client", ca, client_auth, ()),
        other_ca=other_file,
        other_client=_leaf(folder, "other-client", other, client_auth, ()),
    )
