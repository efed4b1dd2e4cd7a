"""Keyless credentials in tests: GitLab-like ID tokens, moto's server with IAM authentication
on, and a loopback STS stand-in that decides AssumeRoleWithWebIdentity as AWS documents it.

Why a stand-in: moto's STS issues credentials for any token (it checks neither signature,
audience, expiry nor the role's trust policy), and with authentication on it answers an
unsigned AssumeRoleWithWebIdentity with HTTP 500. The stand-in does what AWS does with a
GitLab ID token: verifies the RS256 signature with the provider's key, the audience against
the provider's client IDs, the expiry, and the role trust policy's `sub` condition; a refusal
is the XML error AWS documents (`ErrorResponse`, Code/Message, 403 for AccessDenied, 400 for
the token errors). An accepted token is exchanged for real credentials of the role by moto's
own STS (AssumeRole, signed with an IAM user's keys): moto's S3 then authenticates and
authorizes every request with the role's policy. What it proves: ci-gen's request, its
reading of AWS's answers and errors, and that DVC works with nothing but the issued
credentials. What it does not prove: AWS's own checks (the stand-in models them, from AWS's
documentation) or GitLab's own token contents beyond the documented claims.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from servers import free_port, wait_http

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ci-gen-dvc"
ISSUER = "https://gitlab.example.com"
AUD = "ci-gen"


# -- ID tokens -------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Signer:
    """An RSA key standing for the GitLab instance's ID token signing key."""

    key: object = field(default=None)

    def __post_init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(self, project: str = "mlops/fmnist", ref: str = "main", ref_type: str = "branch",
              aud: str = AUD, lifetime: int = 3600, protected: bool = True, job_id: int = 4242) -> str:
        """An RS256 JWT with the claims GitLab documents for ID tokens."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        namespace = project.rsplit("/", 1)[0]
        claims = {
            "iss": ISSUER, "aud": aud, "iat": now, "nbf": now - 5, "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
            "sub": f"project_path:{project}:ref_type:{ref_type}:ref:{ref}",
            "namespace_id": "7", "namespace_path": namespace, "project_id": "42",
            "project_path": project, "user_id": "1", "user_login": "dev", "user_email": "dev@example.com",
            "pipeline_id": "1001", "pipeline_source": "push", "job_id": str(job_id), "ref": ref,
            "ref_type": ref_type, "ref_path": f"refs/heads/{ref}", "ref_protected": str(protected).lower(),
            "runner_id": 1, "runner_environment": "self-hosted", "sha": "0" * 40,
        }
        header = {"alg": "RS256", "kid": "test-key", "typ": "JWT"}
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{_b64(signature)}"

    def verify(self, token: str) -> dict | None:
        """The claims when the signature is this key's, else None."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head, body, sig = token.split(".")
            self.key.public_key().verify(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)),
                                         f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
            return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, InvalidSignature):
            return None


# -- moto with authentication on ------------------------------------------------------------

@dataclass
class AuthMoto:
    url: str
    process: subprocess.Popen
    user_keys: tuple[str, str] = ("", "")

    def client(self, service: str, keys: tuple[str, str, str | None] | None = None):
        import boto3

        key, secret, token = keys or (*self.user_keys, None)
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token)

    def authenticate_from_now(self) -> None:
        """moto's own switch (the same setting as INITIAL_NO_AUTH_ACTION_COUNT): every later
        request is authenticated and authorized."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(req, timeout=10).close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_auth_moto(bucket: str, prefix: str = "") -> AuthMoto:
    """A moto server of its own (a process: moto's auth settings are per process), with an IAM
    user that may only assume the role, the role (trusting GitLab's OIDC provider, as a real
    account's would) allowed S3 on `bucket`, and the bucket. Authentication is still off."""
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    # Setup requests pass unauthenticated; authenticate_from_now() turns it on.
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "1000000"}
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moto = AuthMoto(f"http://127.0.0.1:{port}", proc, ("AKIASETUPONLY0000000", "setup-secret"))
    try:
        wait_http(f"{moto.url}/moto-api/", timeout=30)
        iam = moto.client("iam")
        iam.create_user(UserName="sts-broker")
        made = iam.create_access_key(UserName="sts-broker")["AccessKey"]
        iam.put_user_policy(UserName="sts-broker", PolicyName="assume", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                # moto authorizes STS actions against the resource "*" only
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"},
                {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"}]}))
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
            "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/gitlab.example.com"},
            "Condition": {"StringEquals": {"gitlab.example.com:aud": AUD}}}, {
            # moto checks trust for AssumeRole: the broker (the stand-in's, standing for AWS's
            # own STS) may assume the role; no one else's keys can.
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/sts-broker"}}]}
        iam.create_role(RoleName="ci-gen-dvc", AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName="ci-gen-dvc", PolicyName="dvc", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*",
                 "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))
        moto.client("s3").create_bucket(Bucket=bucket)
        moto.user_keys = (made["AccessKeyId"], made["SecretAccessKey"])
    except BaseException:
        moto.stop()
        raise
    return moto


# -- the STS stand-in ------------------------------------------------------------------------

_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


@dataclass
class StsStandIn:
    """AssumeRoleWithWebIdentity for ROLE, trusting `sub` values matching `trusted` (the trust
    policy's StringLike on `gitlab.example.com:sub`) and client IDs `audiences`."""

    signer: Signer
    moto: AuthMoto | None
    trusted: str = "project_path:mlops/fmnist:ref_type:branch:ref:main"
    audiences: tuple[str, ...] = (AUD,)
    clock_skew: int = 0  # seconds the stand-in's clock is ahead of the test's
    requests: list[dict] = field(default_factory=list)
    issued: list[dict] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def decide(self, form: dict[str, str]) -> tuple[int, str]:
        self.requests.append({k: v for k, v in form.items() if k != "WebIdentityToken"})
        if form.get("Action") != "AssumeRoleWithWebIdentity":
            return 400, _error("InvalidAction", "Could not find operation " + form.get("Action", ""))
        claims = self.signer.verify(form.get("WebIdentityToken", ""))
        if claims is None:
            return 400, _error("InvalidIdentityToken", "Couldn't verify the signature of the token")
        if claims.get("aud") not in self.audiences:
            return 400, _error("InvalidIdentityToken", "Incorrect token audience")
        if claims.get("exp", 0) <= time.time() + self.clock_skew:
            return 400, _error("ExpiredTokenException", "Token expired: current date/time must be "
                                                        "before the expiration date/time")
        if form.get("RoleArn") != ROLE or not fnmatch.fnmatchcase(claims.get("sub", ""), self.trusted):
            return 403, _error("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        duration = int(form.get("DurationSeconds", "3600"))
        session = form.get("RoleSessionName", "")
        creds = self.moto.client("sts").assume_role(RoleArn=ROLE, RoleSessionName=session,
                                                    DurationSeconds=duration)["Credentials"]
        self.issued.append(creds)
        body = (f'<AssumeRoleWithWebIdentityResponse xmlns="{_NS}"><AssumeRoleWithWebIdentityResult>'
                f"<SubjectFromWebIdentityToken>{escape(claims['sub'])}</SubjectFromWebIdentityToken>"
                f"<Audience>{escape(claims['aud'])}</Audience>"
                f"<AssumedRoleUser><Arn>arn:aws:sts::{ACCOUNT}:assumed-role/ci-gen-dvc/{escape(session)}</Arn>"
                f"<AssumedRoleId>AROAEXAMPLE:{escape(session)}</AssumedRoleId></AssumedRoleUser>"
                f"<Credentials><SessionToken>{escape(creds['SessionToken'])}</SessionToken>"
                f"<SecretAccessKey>{escape(creds['SecretAccessKey'])}</SecretAccessKey>"
                f"<Expiration>{creds['Expiration'].strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration>"
                f"<AccessKeyId>{escape(creds['AccessKeyId'])}</AccessKeyId></Credentials>"
                f"<Provider>{escape(claims['iss'])}</Provider></AssumeRoleWithWebIdentityResult>"
                f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
                "</AssumeRoleWithWebIdentityResponse>")
        return 200, body

    def start(self) -> "StsStandIn":
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = standin.decide(form)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def _error(code: str, message: str) -> str:
    return (f'<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
            "</ErrorResponse>")
