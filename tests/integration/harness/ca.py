"""harness.ca - a throwaway CA and leaf certificates (certtool)."""

import os
import shutil

from .proc import HarnessError, run


class CA:
    """A throwaway certificate authority made with certtool."""

    def __init__(self, directory, name):
        self.dir = directory
        self.name = name
        self.key = os.path.join(directory, name + ".key")
        self.cert = os.path.join(directory, name + ".pem")
        tmpl = self._template(name + ".tmpl", [
            'cn = "sendq test CA %s"' % name,
            'organization = "sendq tests"',
            "serial = 1",
            "ca",
            "cert_signing_key",
            "crl_signing_key",
            "expiration_days = 3650",
        ])
        _certtool(["--generate-privkey", "--key-type=ecdsa",
                   "--outfile", self.key])
        _certtool(["--generate-self-signed", "--load-privkey", self.key,
                   "--template", tmpl, "--outfile", self.cert])
        self._serial = 1

    def _template(self, fname, lines):
        path = os.path.join(self.dir, fname)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def issue(self, name, cn, dns_names=(), ip_addresses=()):
        """A server certificate signed by this CA.  Returns (cert, key)."""
        self._serial += 1
        key = os.path.join(self.dir, name + ".key")
        cert = os.path.join(self.dir, name + ".pem")
        lines = ['cn = "%s"' % cn, 'organization = "sendq tests"',
                 "serial = %d" % self._serial,
                 "tls_www_server", "signing_key", "encryption_key",
                 "expiration_days = 365"]
        lines += ['dns_name = "%s"' % d for d in dns_names]
        lines += ['ip_address = "%s"' % i for i in ip_addresses]
        tmpl = self._template(name + ".tmpl", lines)
        _certtool(["--generate-privkey", "--key-type=ecdsa",
                   "--outfile", key])
        _certtool(["--generate-certificate", "--load-privkey", key,
                   "--load-ca-certificate", self.cert,
                   "--load-ca-privkey", self.key,
                   "--template", tmpl, "--outfile", cert])
        return cert, key


def _certtool(args):
    if not shutil.which("certtool"):
        raise HarnessError("certtool not found (apt-get install gnutls-bin)")
    run(["certtool"] + args, check=True)


class Certs:
    """The certificates the tests need, in one directory.

    ca            the CA the tests trust (ca.pem)
    good          localhost / 127.0.0.1 / ::1, signed by ca
    untrusted     the same names, signed by other_ca (not trusted)
    wrong_host    signed by ca, but for wrong.example.net only
    """

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self.ca = CA(directory, "ca")
        self.other_ca = CA(directory, "other-ca")
        names = dict(dns_names=["localhost"],
                     ip_addresses=["127.0.0.1", "::1"])
        self.good = self.ca.issue("good", "localhost", **names)
        self.untrusted = self.other_ca.issue("untrusted", "localhost",
                                             **names)
        self.wrong_host = self.ca.issue("wrong-host", "wrong.example.net",
                                        dns_names=["wrong.example.net"])
