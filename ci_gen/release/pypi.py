"""Trusted publishing: exchange the job's OIDC token (GitLab `id_tokens`, audience `pypi`)
for a short-lived PyPI API token at the index's documented endpoint, `POST
<index>/_/oidc/mint-token` with `{"token": ...}`. No password is stored anywhere; the token
that comes back lives about 15 minutes and is handed to twine through its environment."""

from __future__ import annotations

import re
from typing import Any, Optional

from ci_gen.errors import CiGenError, shown
from ci_gen.http import Client, HttpError
from ci_gen.parse import Model, ParseError, parse_json
from ci_gen.patterns import RE_INDEX_BASE, RE_JWT

PYPI = "https://pypi.org"
TIMEOUT = 30


class _Minted(Model):
    token: str


class _Refusal(Model):
    message: Optional[str] = None
    errors: list[dict[str, Any]] = []


def mint_token(oidc_token: str, index: str = PYPI) -> str:
    """The upload token PyPI mints for OIDC_TOKEN; CiGenError with PyPI's reason otherwise."""
    if not re.fullmatch(RE_INDEX_BASE, index):
        raise CiGenError(f"pypi: index {shown(index)} is not an https URL (or http on 127.0.0.1)")
    if not re.fullmatch(RE_JWT, oidc_token or ""):
        raise CiGenError("pypi: no OIDC token: give the job `id_tokens:` with `aud: pypi`")
    client = Client(index, what="pypi", timeout=TIMEOUT, deadline=2 * TIMEOUT,
                    max_bytes=1024 * 1024)
    try:
        # Sent once: a token is minted per request (the Client never repeats a POST).
        resp = client.request("POST", client.url("_/oidc/mint-token"),
                              json_body={"token": oidc_token}, what="the token exchange")
    except HttpError as exc:
        raise CiGenError(f"pypi: {exc}") from None
    if not resp.ok:
        raise CiGenError(f"pypi: {index} refused the OIDC token (HTTP {resp.status}): "
                         f"{_reason(resp.body)}")
    try:
        token = parse_json(_Minted, resp.body, f"pypi: {index}'s answer").token
    except ParseError:
        token = ""
    if not token.startswith("pypi-"):
        raise CiGenError(f"pypi: {index} answered without an upload token")
    return token


def _reason(body: bytes) -> str:
    """PyPI's `errors[].description` (or `message`), shown without any token in it."""
    try:
        refusal = parse_json(_Refusal, body, "pypi's refusal")
    except ParseError:
        return "no details"
    if refusal.errors:
        return shown(str(refusal.errors[0].get("description", "")), 200)
    return shown(refusal.message or "no details", 200)
