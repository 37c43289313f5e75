"""Debian's nginx running the shipped deploy/nginx.conf, made local: loopback ports, our
upstreams, a throwaway certificate and every path under one directory, so no root is needed.

The shipped limits per client address stay as they are, except for the addresses named
`unlimited` (by default 127.0.0.1, where the scale-out tests and the benchmark's guardians all
come from: one address standing for many people). A test of the limits sends from other
loopback addresses (127.0.0.2, 127.0.0.3...), which the shipped limits count in full."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.settings import ROOT
from tests.testkit.processes import Process, free_port, wait_for

NGINX = Path("/usr/sbin/nginx")
SHIPPED = ROOT / "deploy" / "nginx.conf"
MISSING = (f"{NGINX} not found: the scale-out test needs Debian's nginx "
           "(`make /usr/sbin/nginx` installs it)")


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key; clients trust the certificate itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _replace(text: str, old: str, new: str) -> str:
    # A shipped line that moved or changed must fail here, not quietly test something else.
    if old not in text:
        raise ValueError(f"deploy/nginx.conf no longer has {old!r}: update tests/testkit/nginx.py")
    return text.replace(old, new)


class Nginx:
    """The shipped config with X-Upstream on every TLS response and an access log that
    names the Rasa each request went to."""

    def __init__(self, directory: Path, rasa_ports: Sequence[int], actions_ports: Sequence[int],
                 unlimited: Sequence[str] = ("127.0.0.1",)):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.unlimited = tuple(unlimited)
        self.http_port, self.https_port, self.internal_port, self.actions_port = (
            free_port(), free_port(), free_port(), free_port())
        self.rasa_addresses = [f"127.0.0.1:{port}" for port in rasa_ports]
        self.certificate, key = self_signed_certificate(directory)
        self.access_log = directory / "access.log"
        self.config = directory / "nginx.conf"
        self.config.write_text(self._local(SHIPPED.read_text(), actions_ports, key))
        self.process = Process(
            "nginx",
            [str(NGINX), "-p", str(directory), "-c", str(self.config),
             "-g", f"daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log;"],
            dict(os.environ), directory)

    def _local(self, text: str, actions_ports: Sequence[int], key: Path) -> str:
        where = self.directory
        temp_paths = "".join(f"    {kind}_temp_path {where}/{kind};\n"
                             for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # As root nginx would hand its workers to "nobody", who cannot enter pytest's tmp_path.
        user = f"user {pwd.getpwuid(os.getuid()).pw_name};\n" if os.geteuid() == 0 else ""
        # One worker: round robin state is per worker, so turns alternate strictly.
        text = _replace(text, "worker_processes auto;", f"{user}worker_processes 1;")
        text = _replace(text, "access_log /var/log/nginx/access.log private;",
                        "log_format upstream '$request_method $uri $status $upstream_addr';\n"
                        f"    access_log {self.access_log} upstream;\n{temp_paths}")
        for number, port in enumerate(self.rasa_addresses, 1):
            text = _replace(text, f"rasa-{number}:5005", port)
        for number, actions_port in enumerate(actions_ports, 1):
            text = _replace(text, f"actions-{number}:5055", f"127.0.0.1:{actions_port}")
        for shipped, local in (("80;", f"{self.http_port};"),
                               ("443 ssl", f"{self.https_port} ssl"),
                               ("8000;", f"{self.internal_port};"),
                               ("5055;", f"{self.actions_port};")):
            text = _replace(text, f"listen {shipped}", f"listen 127.0.0.1:{local}")
        text = _replace(text, "/etc/nginx/tls/fullchain.pem", str(self.certificate))
        text = _replace(text, "/etc/nginx/tls/privkey.pem", str(key))
        strict = 'add_header Strict-Transport-Security "max-age=31536000" always;'
        text = _replace(text, strict, f"{strict}\n        add_header X-Upstream $upstream_addr always;")
        return self._exempt(text) if self.unlimited else text

    def _exempt(self, text: str) -> str:
        """Requests from `unlimited` get an empty key, which nginx does not count."""
        text, zones = re.subn(r"(limit_(?:req|conn)_zone) \$binary_remote_addr ",
                              r"\1 $limit_key ", text)
        if not zones:
            raise ValueError("deploy/nginx.conf no longer keys its limits by "
                             "$binary_remote_addr: update tests/testkit/nginx.py")
        addresses = "".join(f"        {address} 1;\n" for address in self.unlimited)
        keys = (f"    geo $unlimited {{\n        default 0;\n{addresses}    }}\n"
                "    map $unlimited $limit_key {\n        1 \"\";\n"
                "        default $binary_remote_addr;\n    }\n")
        return _replace(text, "    limit_req_status 429;", keys + "    limit_req_status 429;")

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def check_config(self) -> None:
        result = subprocess.run(
            [str(NGINX), "-t", "-p", str(self.directory), "-c", str(self.config),
             "-g", f"pid {self.directory}/nginx.pid; error_log {self.directory}/error.log;"],
            capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"nginx -t refused the config:\n{result.stderr}")

    def start(self) -> Nginx:
        self.check_config()
        self.process.start()

        def up() -> bool:
            if not self.process.running:
                raise RuntimeError(f"nginx exited:\n{self.process.log_tail()}")
            try:
                return requests.get(self.https_url + "/", verify=str(self.certificate),
                                    timeout=5).ok
            except requests.RequestException:
                return False

        wait_for(up, 30, "nginx")
        return self

    def stop(self) -> None:
        self.process.stop()

    def upstreams_of(self, path_prefix: str) -> list[str]:
        """The Rasa addresses that served each logged request under `path_prefix`, in order
        (a request nginx answered itself, such as a 429, names none and is left out)."""
        if not self.access_log.exists():
            return []
        lines = self.access_log.read_text().splitlines()
        return [upstream for line in lines
                if re.match(rf"\S+ {re.escape(path_prefix)}", line)
                and (upstream := line.split(" ", 3)[3]) != "-"]
