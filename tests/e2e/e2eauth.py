"""Credentials the end-to-end suites use. Berth is private by default, so every fixture registry is
started with BERTH_ADMIN_PASSWORD and every client (raw HTTP, skopeo, podman, buildah) authenticates
as that admin, exactly as the OCI conformance suite runs with credentials. Tests about access control
build their own identities on top."""
import base64

ADMIN_USER = "admin"
ADMIN_PASSWORD = "e2e-admin-password"


def basic(user=ADMIN_USER, password=ADMIN_PASSWORD):
    """The value of an Authorization header carrying Basic credentials."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def auth_json(hosts, user=ADMIN_USER, password=ADMIN_PASSWORD):
    """A containers-auth.json document giving `user` on each of `hosts`."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"auths": {h: {"auth": token} for h in hosts}}
