"""Throw-away certificates for tests, made with the ``openssl`` command."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

# Python 3.13 verifies strictly (VERIFY_X509_STRICT): a CA must say it is one and what its key may sign,
# and a server certificate what its key may do and for which names.
_CA_EXTENSIONS = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""
_SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:{host}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


def make_certs(directory: Path, host: str = "127.0.0.1") -> Certs:
    """A CA and a server certificate for the IP address ``host`` signed by it, valid for one day."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_csr, ca = directory / "ca.key", directory / "ca.csr", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ca_ext, server_ext = directory / "ca.ext", directory / "server.ext"
    ca_ext.write_text(_CA_EXTENSIONS)
    server_ext.write_text(_SERVER_EXTENSIONS.format(host=host))

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_csr),
        "-subj", "/CN=test-ca")
    run("x509", "-req", "-in", str(ca_csr), "-signkey", str(ca_key), "-out", str(ca), "-days", "1",
        "-extfile", str(ca_ext))
    run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={host}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "1", "-extfile", str(server_ext))
    return Certs(ca=ca, cert=cert, key=key)
