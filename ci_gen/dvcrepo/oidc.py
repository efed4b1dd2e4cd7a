"""Keyless DVC remote credentials (`remote-auth: oidc`): the job's GitLab ID token exchanged
for short-lived cloud credentials of a role that trusts this project and branch.

- AWS (and S3-compatible stores that implement it): STS `AssumeRoleWithWebIdentity`.
- Alibaba Cloud (OSS): STS `AssumeRoleWithOIDC` through a RAM OIDC provider, an RPC-style
  HTTPS call that needs no signature (Alibaba's API reference: "no authorization for this
  operation"); only the documented parameters and answer fields are used.

The credentials are returned to the caller, which hands them to the job's shell as `export`
lines on stdout (a pipe into the shell's memory, never a file). Nothing here prints or
stores a credential or the token; a refusal is one `Refused` line naming its cause.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from pydantic import Field

from ci_gen.components import ID_TOKEN_VARIABLE as TOKEN_VARIABLE
from ci_gen.components import OIDC_DEFAULT_DURATION as DEFAULT_DURATION
from ci_gen.components import OIDC_MAX_DURATION as MAX_DURATION
from ci_gen.components import OIDC_MIN_DURATION as MIN_DURATION
from ci_gen.components import ROLE_VARIABLE
from ci_gen.errors import CiGenError, shown
from ci_gen.parse import Model, ParseError, parse
from ci_gen.patterns import RE_ALIYUN_OIDC_PROVIDER, RE_ALIYUN_ROLE, RE_AWS_ROLE

PROVIDER_VARIABLE = "CI_GEN_OIDC_PROVIDER_ARN"  # Alibaba Cloud: the RAM OIDC provider
ALIYUN_ENDPOINT_VARIABLE = "CI_GEN_ALIYUN_STS_ENDPOINT"
ALIYUN_STS = "https://sts.aliyuncs.com"
# RoleSessionName: AWS allows 2-64 of [\w+=,.@-], Alibaba 2-64 of [\w.@-]; the common set.
_SESSION_BAD = re.compile(r"[^A-Za-z0-9_.@-]+")
SESSION_MAX = 64


class Refused(CiGenError):
    """The exchange was refused or could not happen; the message names the cause."""


@dataclass(frozen=True)
class Role:
    arn: str
    cloud: str  # "aws" | "aliyun"


def parse_role(value: str, env: Mapping[str, str]) -> Role:
    """The role from the input, or from CI_GEN_REMOTE_ROLE when the input is `none`."""
    source = "--role"
    if value in ("", "none"):
        value, source = env.get(ROLE_VARIABLE, "").strip(), ROLE_VARIABLE
        if not value:
            raise Refused(f"dvc-auth: remote-auth is oidc but no role is named: set the input "
                          f"`remote-role` or the CI/CD variable {ROLE_VARIABLE} to the role's ARN "
                          "(arn:aws:iam::ACCOUNT:role/NAME or acs:ram::ACCOUNT:role/NAME)")
    if re.fullmatch(RE_AWS_ROLE.strip("^$"), value):
        return Role(value, "aws")
    if re.fullmatch(RE_ALIYUN_ROLE.strip("^$"), value):
        return Role(value, "aliyun")
    raise Refused(f"dvc-auth: {source} {shown(value)} is not an AWS IAM role ARN "
                  "(arn:aws:iam::ACCOUNT:role/NAME) nor an Alibaba Cloud RAM role ARN "
                  "(acs:ram::ACCOUNT:role/NAME)")


# -- the ID token ---------------------------------------------------------------------------

class Claims(Model):
    """What a GitLab ID token says about itself (read, not verified: the cloud verifies it;
    reading it lets a refusal name the project, branch and audience it was minted for)."""

    iss: str = ""
    sub: str = ""
    aud: str | list[str] = ""
    exp: int = Field(default=0, ge=0)
    project_path: str = ""
    ref: str = ""
    ref_type: str = ""
    ref_protected: str = ""

    @property
    def audiences(self) -> list[str]:
        return [self.aud] if isinstance(self.aud, str) else list(self.aud)

    def who(self) -> str:
        if self.project_path:
            return f"project {self.project_path}, {self.ref_type or 'ref'} {self.ref or '?'}"
        return f"subject {shown(self.sub, 100)}"


def read_token(env: Mapping[str, str], variable: str = TOKEN_VARIABLE) -> tuple[str, Claims]:
    token = env.get(variable, "").strip()
    if not token:
        raise Refused(f"dvc-auth: remote-auth is oidc but ${variable} is empty: the job declares "
                      f"no `id_tokens: {variable}` (a component older than 0.3.0, or the job was "
                      "changed), or no GitLab minted one (`ci-gen run` cannot: pass a token with "
                      f"--variable {variable}=... or keep remote-auth: keys locally)")
    if not 4 <= len(token) <= 20000:
        raise Refused(f"dvc-auth: ${variable} is not an ID token ({len(token)} characters)")
    parts = token.split(".")
    if len(parts) != 3:
        raise Refused(f"dvc-auth: ${variable} is not an ID token (a JWT has three dot-separated parts)")
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Refused(f"dvc-auth: ${variable} is not an ID token (its claims are not base64url JSON)") from None
    try:
        return token, parse(Claims, data, f"the ID token in ${variable}")
    except ParseError as exc:
        raise Refused(f"dvc-auth: {exc}") from None


def precheck(claims: Claims, aud: str, now: float | None = None) -> None:
    """Refuse before any call what the cloud would refuse anyway, naming it: an expired token,
    a token minted for another audience."""
    now = time.time() if now is None else now
    if claims.exp and claims.exp <= now:
        raise Refused(f"dvc-auth: expired ID token ({claims.who()}): it expired "
                      f"{int(now - claims.exp)} s ago; GitLab mints one per job, valid for the "
                      "job's timeout: re-run the job")
    if aud and aud not in claims.audiences:
        raise Refused(f"dvc-auth: wrong audience: the ID token is for {', '.join(claims.audiences) or 'no audience'}, "
                      f"not {aud}; the job's `id_tokens` and the input `remote-aud` must agree")


def session_name(env: Mapping[str, str]) -> str:
    """`PROJECT_PATH.JOB_NAME.JOB_ID` in the characters both clouds allow, at most 64: the
    job id is kept whole, the path and job name are cut from their start (the end is the
    specific part)."""
    job_id = _SESSION_BAD.sub("-", env.get("CI_JOB_ID", "")).strip("-") or "local"
    project = _SESSION_BAD.sub("-", env.get("CI_PROJECT_PATH", "").replace("/", ".")).strip("-.")
    job = _SESSION_BAD.sub("-", env.get("CI_JOB_NAME", "")).strip("-.")
    room = SESSION_MAX - len(job_id) - 2
    job = job[-min(len(job), room // 2):] if job else ""
    project = project[-(room - len(job)):] if project else "ci-gen"
    name = ".".join(p for p in (project, job, job_id) if p)
    return name[-SESSION_MAX:] if len(name) > SESSION_MAX else name.ljust(2, "_")


# -- the answers ----------------------------------------------------------------------------

_KEY = r"^[A-Za-z0-9._-]{4,256}$"
_SECRET = r"^[A-Za-z0-9/+=._:-]{4,1024}$"
_TOKEN = r"^[A-Za-z0-9/+=._:-]{4,16384}$"


class AwsCredentials(Model):
    AccessKeyId: str = Field(pattern=_KEY)
    SecretAccessKey: str = Field(pattern=_SECRET)
    SessionToken: str = Field(pattern=_TOKEN)
    Expiration: datetime


class AwsAnswer(Model):
    Credentials: AwsCredentials


class AliyunCredentials(Model):
    AccessKeyId: str = Field(pattern=_KEY)
    AccessKeySecret: str = Field(pattern=_SECRET)
    SecurityToken: str = Field(pattern=_TOKEN)
    Expiration: str


class AliyunAnswer(Model):
    Credentials: AliyunCredentials


class AliyunError(Model):
    Code: str = ""
    Message: str = ""


@dataclass(frozen=True)
class Credentials:
    """Short-lived credentials: environment variable -> value, and when they expire."""

    env: dict[str, str]
    expires: str

    def __repr__(self) -> str:  # never in a traceback or a log
        return f"Credentials({', '.join(sorted(self.env))}, expires {self.expires})"


# -- AWS ------------------------------------------------------------------------------------

# AWS's documented errors of AssumeRoleWithWebIdentity -> the cause named first.
_AWS_CAUSES = {
    "AccessDenied": "the role does not trust this token",
    "ExpiredTokenException": "expired ID token",
    "IDPRejectedClaim": "the identity provider's claim was rejected",
    "IDPCommunicationError": "AWS could not reach GitLab's OIDC keys",
    "InvalidIdentityToken": "invalid ID token (signature, issuer or provider not accepted)",
    "MalformedPolicyDocument": "malformed session policy",
    "PackedPolicyTooLarge": "session policy too large",
    "RegionDisabledException": "STS is not activated in this region",
}


def assume_aws(role: Role, token: str, claims: Claims, session: str, duration: int,
               env: Mapping[str, str]) -> Credentials:
    """STS AssumeRoleWithWebIdentity through botocore (installed with dvc-s3): the call is
    unsigned, but botocore already knows STS's regional endpoints, AWS_ENDPOINT_URL(_STS),
    the query protocol, its XML answers and error codes, and retries; a second STS client
    by hand would copy all of that."""
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError  # not a BotoCoreError

    bs = botocore.session.Session()
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    client = bs.create_client("sts", region_name=region, config=Config(
        signature_version=UNSIGNED, connect_timeout=10, read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"}))
    where = client.meta.endpoint_url
    try:
        answer = client.assume_role_with_web_identity(
            RoleArn=role.arn, RoleSessionName=session, WebIdentityToken=token,
            DurationSeconds=duration)
    except ClientError as exc:
        err = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
        raise Refused(describe_refusal("aws", str(err.get("Code", "")), str(err.get("Message", "")),
                                       role, claims)) from None
    except (BotoCoreError, ResponseParserError) as exc:
        raise Refused(f"dvc-auth: AWS STS at {where} could not be asked "
                      f"({shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 160)})") from None
    creds = parse(AwsAnswer, answer, f"AWS STS answer from {where}").Credentials
    return Credentials({"AWS_ACCESS_KEY_ID": creds.AccessKeyId,
                        "AWS_SECRET_ACCESS_KEY": creds.SecretAccessKey,
                        "AWS_SESSION_TOKEN": creds.SessionToken},
                       creds.Expiration.isoformat())


# -- Alibaba Cloud --------------------------------------------------------------------------

def assume_aliyun(role: Role, token: str, claims: Claims, session: str, duration: int,
                  env: Mapping[str, str]) -> Credentials:
    """STS AssumeRoleWithOIDC (API version 2015-04-01), anonymous: Action, Version, Format
    and the operation's parameters; the token goes in the POST body, never in the URL."""
    from ci_gen.http import Client, HttpError

    provider = env.get(PROVIDER_VARIABLE, "").strip()
    if not re.fullmatch(RE_ALIYUN_OIDC_PROVIDER.strip("^$"), provider):
        raise Refused(f"dvc-auth: the role {role.arn} is an Alibaba Cloud role: set the CI/CD "
                      f"variable {PROVIDER_VARIABLE} to the RAM OIDC provider's ARN "
                      "(acs:ram::ACCOUNT:oidc-provider/NAME)"
                      + (f", not {shown(provider)}" if provider else ""))
    endpoint = env.get(ALIYUN_ENDPOINT_VARIABLE, "").strip() or ALIYUN_STS
    client = Client(endpoint, what="Alibaba Cloud STS", timeout=30, deadline=90,
                    max_bytes=256 * 1024)
    form = {"Action": "AssumeRoleWithOIDC", "Version": "2015-04-01", "Format": "JSON",
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "OIDCProviderArn": provider, "RoleArn": role.arn, "OIDCToken": token,
            "RoleSessionName": session, "DurationSeconds": str(duration)}
    from urllib.parse import urlencode
    try:
        # Safe to repeat: an exchange creates nothing but another short-lived session.
        resp = client.request("POST", client.url("/"), data=urlencode(form).encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"},
                              idempotent=True, what="AssumeRoleWithOIDC")
    except HttpError as exc:
        raise Refused(f"dvc-auth: {exc}") from None
    source = f"Alibaba Cloud STS answer from {client.where}"
    if not resp.ok:
        try:
            err = parse(AliyunError, resp.json(source), source)
        except CiGenError:
            raise Refused(f"dvc-auth: Alibaba Cloud STS at {client.where} answered HTTP "
                          f"{resp.status}: {resp.text(120)}") from None
        raise Refused(describe_refusal("aliyun", err.Code, err.Message, role, claims))
    try:
        creds = parse(AliyunAnswer, resp.json(source), source).Credentials
    except CiGenError as exc:
        raise Refused(f"dvc-auth: {exc}") from None
    return Credentials({"OSS_ACCESS_KEY_ID": creds.AccessKeyId,
                        "OSS_ACCESS_KEY_SECRET": creds.AccessKeySecret,
                        # oss2's own name for the STS token (EnvironmentVariableCredentialsProvider).
                        "OSS_SESSION_TOKEN": creds.SecurityToken},
                       creds.Expiration)


def describe_refusal(cloud: str, code: str, message: str, role: Role, claims: Claims) -> str:
    """One line: the cause first, then who asked and what the cloud said."""
    said = f"{'AWS' if cloud == 'aws' else 'Alibaba Cloud'} STS said {code or 'no code'}"
    if message:
        said += f": {shown(message, 160)}"
    lowered = f"{code} {message}".lower()
    if "audience" in lowered or "clientid" in lowered or "client id" in lowered:
        cause = (f"wrong audience: the ID token is for {', '.join(claims.audiences) or 'no audience'}, "
                 "which the cloud's OIDC provider does not list as a client ID / audience")
    elif "expired" in lowered:
        cause = f"expired ID token ({claims.who()})"
    elif code == "AccessDenied" or "nopermission" in lowered or "notrust" in lowered:
        cause = (f"the role {role.arn} does not trust this token ({claims.who()}): its trust "
                 "policy's `sub` condition does not name this project and branch")
    elif code in _AWS_CAUSES:
        cause = _AWS_CAUSES[code]
    elif code.startswith("AuthenticationFail.OIDCToken"):
        cause = "invalid ID token (signature, issuer or provider not accepted)"
    else:
        cause = "the exchange was refused"
    return f"dvc-auth: {cause}; {said}"


def exchange(role: Role, env: Mapping[str, str], aud: str, duration: int = DEFAULT_DURATION,
             token_variable: str = TOKEN_VARIABLE) -> Credentials:
    """The job's ID token for the role's short-lived credentials, or one Refused line."""
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise Refused(f"dvc-auth: --duration {duration} is outside {MIN_DURATION}..{MAX_DURATION} s "
                      "(what AWS and Alibaba Cloud accept)")
    token, claims = read_token(env, token_variable)
    precheck(claims, aud)
    assume = assume_aws if role.cloud == "aws" else assume_aliyun
    return assume(role, token, claims, session_name(env), duration, env)


def shell_exports(creds: Credentials, token_variable: str = TOKEN_VARIABLE) -> str:
    """POSIX shell lines for `eval`: the credentials exported, the spent ID token unset (the
    training code the job runs next has no use for it)."""
    import shlex

    lines = [f"export {name}={shlex.quote(value)}" for name, value in sorted(creds.env.items())]
    lines.append(f"unset {token_variable}")
    return "\n".join(lines) + "\n"


def oss_session_token_problem() -> str:
    """Why DVC's OSS remotes cannot use STS credentials here, or "" when they can: dvc-oss
    3.0.0 (the newest release) hands ossfs the key id and secret only (its
    `_prepare_credentials`), never a security token, and OSS refuses STS keys without one."""
    from importlib import metadata

    try:
        version = metadata.version("dvc-oss")
    except metadata.PackageNotFoundError:
        return ""  # no OSS remote can be used at all; DVC says so itself
    numbers = tuple(int(p) for p in re.findall(r"[0-9]+", version)[:3])
    if numbers <= (3, 0, 0):
        return (f"dvc-oss {version} passes no security token to OSS, so DVC cannot use the STS "
                "credentials of an Alibaba Cloud role: keep remote-auth: keys for oss:// remotes "
                "until a dvc-oss release reads one")
    return ""
