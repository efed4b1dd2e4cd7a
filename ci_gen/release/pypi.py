"""Trusted publishing: exchange the job's OIDC token (GitLab `id_tokens`, audience `pypi`)
for a short-lived PyPI API token at the index's documented endpoint, `POST
<index>/_/oidc/mint-token` with `{"token": ...}`. No password is stored anywhere; the token
that comes back lives about 15 minutes and is handed to twine through its environment."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

from ci_gen.errors import CiGenError, shown
from ci_gen.patterns import RE_INDEX_BASE, RE_JWT

PYPI = "https://pypi.org"
TIMEOUT = 30


def mint_token(oidc_token: str, index: str = PYPI) -> str:
    """The upload token PyPI mints for OIDC_TOKEN; CiGenError with PyPI's reason otherwise."""
    if not re.fullmatch(RE_INDEX_BASE, index):
        raise CiGenError(f"pypi: index {shown(index)} is not an https URL (or http on 127.0.0.1)")
    if not re.fullmatch(RE_JWT, oidc_token or ""):
        raise CiGenError("pypi: no OIDC token: give the job `id_tokens:` with `aud: pypi`")
    request = urllib.request.Request(
        f"{index}/_/oidc/mint-token", method="POST",
        data=json.dumps({"token": oidc_token}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
            answer = json.load(resp)
    except urllib.error.HTTPError as exc:
        raise CiGenError(f"pypi: {index} refused the OIDC token (HTTP {exc.code}): {_reason(exc)}") from None
    except (OSError, ValueError) as exc:
        raise CiGenError(f"pypi: cannot reach {index}: {exc}") from None
    token = answer.get("token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token.startswith("pypi-"):
        raise CiGenError(f"pypi: {index} answered without an upload token")
    return token


def _reason(exc: urllib.error.HTTPError) -> str:
    """PyPI's `errors[].description` (or `message`), shown without any token in it."""
    try:
        body = json.load(exc)
    except (OSError, ValueError):
        return "no details"
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return shown(str(errors[0].get("description", "")), 200)
    return shown(str(body.get("message", "no details")) if isinstance(body, dict) else "no details", 200)
