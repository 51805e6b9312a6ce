# SPDX-License-Identifier: Apache-2.0
"""The simulators' test CA: a root, an intermediate and leaves issued from
real CSRs, plus a TLS certificate for the simulator's own HTTPS listener.

Kept in a folder so that a restarted simulator keeps the same root.  Uses
Debian's python3-cryptography only.
"""
import datetime
import ipaddress
import os
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ALLOWED_KEYS = {("rsa", 2048), ("rsa", 3072), ("rsa", 4096), ("ec", "secp256r1"), ("ec", "secp384r1")}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _name(cn, org="p11enroll simulator"):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _load_or_make_key(path):
    if os.path.exists(path):
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return key


def _load_or_make_cert(path, build):
    if os.path.exists(path):
        with open(path, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())
    cert = build()
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return cert


def key_kind(public_key):
    """('rsa', bits) or ('ec', curve name) or (type name, None)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return ("rsa", public_key.key_size)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ("ec", public_key.curve.name)
    return (type(public_key).__name__, None)


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class SimCA:
    """root -> intermediate -> leaf, and a separate TLS chain for the listener."""

    def __init__(self, folder, label="CA"):
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        now = _now()
        self.root_key = _load_or_make_key(os.path.join(folder, "root.key"))
        self.root = _load_or_make_cert(os.path.join(folder, "root.pem"), lambda: (
            x509.CertificateBuilder()
            .subject_name(_name(f"Simulated {label} Root"))
            .issuer_name(_name(f"Simulated {label} Root"))
            .public_key(self.root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.root_key.public_key()), critical=False)
            .sign(self.root_key, hashes.SHA256())))
        self.int_key = _load_or_make_key(os.path.join(folder, "intermediate.key"))
        self.intermediate = _load_or_make_cert(os.path.join(folder, "intermediate.pem"), lambda: (
            x509.CertificateBuilder()
            .subject_name(_name(f"Simulated {label} Issuing CA"))
            .issuer_name(self.root.subject)
            .public_key(self.int_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3000))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.int_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root_key.public_key()), critical=False)
            .sign(self.root_key, hashes.SHA256())))
        self.tls_key = _load_or_make_key(os.path.join(folder, "tls.key"))
        self.tls_cert = _load_or_make_cert(os.path.join(folder, "tls.pem"), lambda: (
            x509.CertificateBuilder()
            .subject_name(_name("localhost"))
            .issuer_name(self.root.subject)
            .public_key(self.tls_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.root_key, hashes.SHA256())))
        # The TLS trust file a client puts in ca_bundle is the same root.
        self.tls_ca_path = os.path.join(folder, "root.pem")
        self.tls_cert_path = os.path.join(folder, "tls.pem")
        self.tls_key_path = os.path.join(folder, "tls.key")

    def issue(self, csr, days=90, seconds=None, dns_names=None, wrong_key=False, expired=False):
        """A leaf for the CSR's key and names (DNS SANs from the CSR unless
        dns_names is given).  wrong_key signs a fresh key instead (scenario);
        expired: valid for a day that ended an hour ago."""
        now = _now()
        public_key = csr.public_key()
        if wrong_key:
            public_key = ec.generate_private_key(ec.SECP256R1()).public_key()
        if dns_names is None:
            try:
                san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                dns_names = san.get_values_for_type(x509.DNSName)
            except x509.ExtensionNotFound:
                dns_names = []
        cn_attrs = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not dns_names and cn_attrs:
            dns_names = [cn_attrs[0].value]
        lifetime = datetime.timedelta(seconds=seconds) if seconds else datetime.timedelta(days=days)
        start = now - datetime.timedelta(minutes=5)
        if expired:
            start, lifetime = now - datetime.timedelta(days=1, hours=1), datetime.timedelta(hours=-1)
        kind = key_kind(public_key)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name(cn_attrs) if cn_attrs else x509.Name([]))
                   .issuer_name(self.intermediate.subject)
                   .public_key(public_key)
                   .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
                   .not_valid_before(start)
                   .not_valid_after(now + lifetime)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(True, kind[0] == "rsa", False, False, False, False, False,
                                                False, False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                         ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.int_key.public_key()),
                                  critical=False))
        if dns_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        return builder.sign(self.int_key, hashes.SHA256())
