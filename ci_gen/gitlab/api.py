"""Shared GitLab plumbing for `report`, `variables`, server-side lint and commit-back.

One place decides where the token comes from, which server and project to talk to, how
python-gitlab retries, and how its exceptions become one-line `CiGenError`s. Every message
that leaves this module goes through `scrub()`, so a token that a server or library echoes
back is replaced by `[MASKED]` before anyone sees it.

python-gitlab (and requests) are imported inside functions only: `ci-gen --help` stays fast.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import os
import re
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from ci_gen.errors import CiGenError

TOKEN_VARS = ("GITLAB_API_TOKEN", "REPO_TOKEN")
TOKEN_HELP = ("create a project access token with the `api` scope and store it as a masked "
              "CI/CD variable named GITLAB_API_TOKEN")

# Retry knobs (environment, so jobs and tests can tune them without new CLI options).
RETRIES_VAR = "CI_GEN_GITLAB_RETRIES"      # retries after 429/5xx/connection errors
MAX_WAIT_VAR = "CI_GEN_GITLAB_MAX_WAIT"    # cap, in seconds, on one server-requested wait
TIMEOUT_VAR = "CI_GEN_GITLAB_TIMEOUT"      # seconds per HTTP request
DEFAULT_RETRIES = 4
DEFAULT_MAX_WAIT = 30
DEFAULT_TIMEOUT = 30.0
TRANSIENT = frozenset([429, 500, 502, 503, 504, *range(520, 531)])

_secrets: set[str] = set()


class GitLabApiError(CiGenError):
    """GitLab refused or could not be reached; the message names what to do."""


# --- secrets -------------------------------------------------------------------------

def register_secret(value: str | None) -> None:
    """Remember a secret so every message built here has it masked."""
    if value and len(value) >= 4:  # shorter strings would mask ordinary words
        _secrets.add(value)
        _secrets.add(urllib.parse.quote(value, safe=""))
        _secrets.add(base64.b64encode(f"oauth2:{value}".encode()).decode())


def scrub(text: object, extra: tuple[str, ...] = ()) -> str:
    """`text` as a string with every known secret replaced by [MASKED]."""
    out = str(text)
    for secret in sorted({*_secrets, *(s for s in extra if s and len(s) >= 4)},
                         key=len, reverse=True):
        out = out.replace(secret, "[MASKED]")
    # user:password@ in any URL, whatever the secret
    return re.sub(r"(://[^/\s:@]+:)[^@\s/]+@", r"\1[MASKED]@", out)


# --- token, server, project ----------------------------------------------------------

def find_token(env: Mapping[str, str] | None = None) -> str | None:
    """GITLAB_API_TOKEN, else REPO_TOKEN (CML's name), else None. Never CI_JOB_TOKEN."""
    env = os.environ if env is None else env
    for name in TOKEN_VARS:
        value = env.get(name, "").strip()
        if value:
            register_secret(value)
            return value
    return None


def missing_token_message(action: str, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if env.get("CI_JOB_TOKEN"):
        return (f"only CI_JOB_TOKEN is set, and it cannot {action}: {TOKEN_HELP} "
                "(REPO_TOKEN is also read)")
    return f"no GitLab token (GITLAB_API_TOKEN or REPO_TOKEN) to {action}: {TOKEN_HELP}"


def require_token(action: str, env: Mapping[str, str] | None = None) -> str:
    token = find_token(env)
    if token is None:
        raise GitLabApiError(missing_token_message(action, env))
    return token


def server_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """Base URL of the GitLab server: explicit, else CI_SERVER_URL, else from CI_API_V4_URL."""
    env = os.environ if env is None else env
    url = (explicit or env.get("CI_SERVER_URL") or env.get("CI_API_V4_URL") or "").strip()
    if not url:
        raise GitLabApiError("no GitLab URL: pass --gitlab-url URL or run inside a GitLab job "
                             "(CI_SERVER_URL)")
    url = url.rstrip("/")
    url = re.sub(r"/api/v4$", "", url)
    if not re.match(r"^https?://[^/\s]+", url):
        raise GitLabApiError(f"GitLab URL must start with http:// or https://: {scrub(url)}")
    return url


def _env_number(name: str, default: float, kind: type = float) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise CiGenError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise CiGenError(f"{name} must not be negative")
    return value


def _retry_after_seconds(value: str) -> float | None:
    """Retry-After as seconds: an integer, or an HTTP date (RFC 9110)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


def _cap_waits(max_wait: float):
    """A requests response hook bounding how long python-gitlab sleeps on one 429/5xx.

    python-gitlab sleeps int(Retry-After) (or until RateLimit-Reset) with no upper bound,
    and crashes on the HTTP-date form; rewrite both to a whole number of seconds <= max_wait.
    """
    def hook(response, *args, **kwargs):
        if response.status_code not in TRANSIENT:
            return response
        headers = response.headers
        if "Retry-After" in headers:
            secs = _retry_after_seconds(headers["Retry-After"])
            headers["Retry-After"] = str(int(min(secs if secs is not None else 1, max_wait)))
        if "RateLimit-Reset" in headers:
            del headers["RateLimit-Reset"]  # Retry-After (capped) or exponential backoff wins
        return response
    return hook


_client_class: Any = None


def _bounded_client_class() -> Any:
    """python-gitlab's Gitlab, with retries bounded on every call (it defaults to 10 a call)."""
    global _client_class
    if _client_class is None:
        import gitlab

        import gitlab.exceptions as gexc
        import requests

        class BoundedGitlab(gitlab.Gitlab):
            ci_gen_retries = DEFAULT_RETRIES
            ci_gen_max_wait: float = DEFAULT_MAX_WAIT

            def http_request(self, verb: str, path: str, *args: Any, **kwargs: Any) -> Any:
                if not kwargs.get("files"):
                    kwargs.update(max_retries=self.ci_gen_retries, obey_rate_limit=True,
                                  retry_transient_errors=True)
                    return super().http_request(verb, path, *args, **kwargs)
                # python-gitlab's own retry re-sends the already consumed multipart stream
                # (the server then waits for a body that never comes): retry here, so each
                # attempt encodes the file afresh.
                kwargs.update(max_retries=0, obey_rate_limit=False, retry_transient_errors=False)
                for attempt in range(self.ci_gen_retries + 1):
                    last = attempt == self.ci_gen_retries
                    try:
                        return super().http_request(verb, path, *args, **kwargs)
                    except gexc.GitlabHttpError as exc:
                        if last or exc.response_code not in TRANSIENT:
                            raise
                    except (requests.ConnectionError, requests.Timeout):
                        if last:
                            raise
                    time.sleep(min(0.1 * 2 ** attempt, self.ci_gen_max_wait))
                raise AssertionError("unreachable")

        _client_class = BoundedGitlab
    return _client_class


def connect(url: str | None = None, token: str | None = None, *, action: str = "use the API",
            env: Mapping[str, str] | None = None) -> Any:
    """A python-gitlab client for `url` (or the job's server) authenticated with the token.

    Retries 429 and 5xx answers, connection errors and timeouts: at most
    $CI_GEN_GITLAB_RETRIES times (default 4), backing off 0.1, 0.2, 0.4... s, or as long as
    the server's Retry-After says, capped at $CI_GEN_GITLAB_MAX_WAIT seconds (default 30).
    """
    import requests

    base = server_url(url, env)
    token = token or require_token(action, env)
    register_secret(token)
    session = requests.Session()
    max_wait = _env_number(MAX_WAIT_VAR, DEFAULT_MAX_WAIT)
    session.hooks["response"].append(_cap_waits(max_wait))
    cls = _bounded_client_class()
    gl = cls(base, private_token=token, timeout=_env_number(TIMEOUT_VAR, DEFAULT_TIMEOUT),
             keep_base_url=True, session=session, per_page=100)
    gl.ci_gen_retries = int(_env_number(RETRIES_VAR, DEFAULT_RETRIES, int))
    gl.ci_gen_max_wait = max_wait
    return gl


def project_ref(value: str | int) -> str | int:
    """A numeric project id as int, else the path ("group/sub/name") unchanged."""
    text = str(value).strip().strip("/")
    if not text:
        raise CiGenError("empty project: pass a numeric id or a path like group/name")
    return int(text) if text.isdigit() else text


def get_project(gl: Any, ref: str | int) -> Any:
    """The project, fetched (not lazy): its numeric id then drives every later URL.

    A lazy project made from a path sends it double-encoded to the uploads API
    (python-gitlab 8), and a real GET gives a clear 401/404 up front.
    """
    ref = project_ref(ref)
    with errors(f"get project {ref}", gl.url):
        return gl.projects.get(ref)


def authenticate(gl: Any) -> Any:
    """GET /user: checks the token and returns the user notes are posted as."""
    with errors("check the token", gl.url):
        gl.auth()
    return gl.user


# Gitlab::Access levels (lib/gitlab/access.rb) by name, for messages.
ROLES = {10: "Guest", 15: "Planner", 20: "Reporter", 30: "Developer", 40: "Maintainer", 50: "Owner"}


def token_role(gl: Any, project: Any) -> str:
    """The token user's role in the project ("Maintainer"), or "unknown" when GitLab does not
    say (GET /user, then GET /projects/:id/members/all/:user_id)."""
    import gitlab.exceptions as gexc
    import requests

    try:
        gl.auth()
        level = project.members_all.get(gl.user.id).access_level
    except (gexc.GitlabError, requests.exceptions.RequestException, AttributeError):
        return "unknown"
    return ROLES.get(level, f"access level {level}")


# --- errors --------------------------------------------------------------------------

def _server_message(exc: Any) -> str:
    msg = getattr(exc, "error_message", "") or ""
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    if not isinstance(msg, str):
        msg = str(msg)
    msg = " ".join(msg.split())
    return msg[:300]


def describe(exc: BaseException, action: str, url: str) -> str:
    """One line saying what failed and what to do; never the token."""
    import gitlab.exceptions as gexc
    import requests

    where = f"GitLab at {url}"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"cannot {action}: {where} did not answer in time (after retries)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        reason = ("connection refused" if "refused" in text.lower()
                  else "name not resolved" if "resolve" in text.lower()
                  or "Name or service" in text
                  else "SSL error" if "SSL" in text else "connection failed")
        return f"cannot {action}: cannot reach {where} ({reason})"
    if isinstance(exc, gexc.RedirectError):
        return (f"cannot {action}: {where} redirected the request; use the server's canonical "
                "https:// URL")
    if isinstance(exc, gexc.GitlabError):
        code = exc.response_code
        msg = _server_message(exc)
        if code == 401:
            return (f"cannot {action}: {where} rejected the token (401 Unauthorized); check "
                    "that GITLAB_API_TOKEN (or REPO_TOKEN) is valid, not expired and has the "
                    "`api` scope")
        if code == 403:
            return (f"cannot {action}: {where} answered 403 Forbidden ({msg}); the token needs "
                    "the `api` scope and a role allowed to do this (Maintainer for CI/CD "
                    "variables)")
        if code == 404:
            return (f"cannot {action}: {where} answered 404 ({msg}); check the project/merge "
                    "request exists and the token's user can see it")
        if code in TRANSIENT:
            return (f"cannot {action}: {where} answered {code} ({msg}) after retries; "
                    "try again later")
        if code is None:
            return f"cannot {action}: {msg or type(exc).__name__}"
        return f"cannot {action}: {where} answered {code} ({msg})"
    return f"cannot {action}: {type(exc).__name__}: {exc}"


@contextlib.contextmanager
def errors(action: str, url: str) -> Iterator[None]:
    """Turn python-gitlab/requests failures into one scrubbed GitLabApiError line."""
    import gitlab.exceptions as gexc
    import requests

    try:
        yield
    except (gexc.GitlabError, requests.exceptions.RequestException) as exc:
        # `from None`: the original (which may hold request headers) is not chained.
        raise GitLabApiError(scrub(describe(exc, action, url))) from None
