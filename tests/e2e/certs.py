"""TLS for test servers on 127.0.0.1: a self-signed certificate (its own CA) and a server socket
wrapped with it, for the receivers and issuers that Berth must reach over https with a `ca_file`."""
import datetime
import ipaddress
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(directory, name):
    """Writes DIRECTORY/NAME-cert.pem (for 127.0.0.1, valid for an hour) and NAME-key.pem; returns
    the certificate's path, which is also the CA file that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"e2e {name}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (directory / f"{name}-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path = directory / f"{name}-cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def serve_tls(server, directory, name):
    """Wraps `server`'s listening socket in TLS with a new self_signed() certificate; returns its path."""
    cert = self_signed(directory, name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, directory / f"{name}-key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return cert
