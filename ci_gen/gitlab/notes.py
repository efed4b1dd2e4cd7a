"""Post a markdown report to the merge request, updated in place (`ci-gen report`).

Inside a GitLab job: finds the merge request (CI_MERGE_REQUEST_IID, else the commit's open
MR), uploads the local images the markdown references to the project (never a third-party
host), and creates one note marked with a hidden watermark; later runs update that note
instead of adding another. Without an MR (or with --target commit) it comments on the commit.
Without a token it keeps the report as a job artifact and exits 0: a report is not worth
failing a pipeline for.
"""

from __future__ import annotations

import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ci_gen.errors import CiGenError, UsageError
from ci_gen.gitlab import api

NOTE_LIMIT = 1_000_000  # GitLab's maximum note length, in characters
MARKER = "<!-- ci-gen-report {} -->"

# ![alt](target "title"), target possibly <in angle brackets>
_MD_IMAGE = re.compile(
    r"(?P<head>!\[[^\]\n]*\]\(\s*)(?P<target><[^>\n]+>|[^)\s]+)"
    r"(?P<tail>(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^)\n]*\)))?\s*\))")
# <img ... src="target" ...>
_HTML_IMAGE = re.compile(r"(?P<head><img\b[^>]*?\bsrc\s*=\s*)(?P<q>[\"'])(?P<target>[^\"'\n]*)"
                         r"(?P=q)", re.IGNORECASE)
# [ref]: target   (reference definitions; rewritten only when the target is a local image)
_REF_DEF = re.compile(r"(?m)^(?P<head> {0,3}\[[^\]\n]+\]:[ \t]*)(?P<target><[^>\n]+>|\S+)")
_FENCE = re.compile(r"(?ms)^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^ {0,3}\1[ \t]*$|\Z)")
_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".bmp"}


# --- pure helpers --------------------------------------------------------------------

def default_watermark(env: Mapping[str, str]) -> str:
    pid, job = env.get("CI_PROJECT_ID", ""), env.get("CI_JOB_NAME", "")
    job = re.sub(r"-{2,}", "-", " ".join(job.split())).replace(">", "")
    return f"ci-gen-report:{pid}:{job}" if pid and job else "ci-gen-report"


def marker(watermark: str) -> str:
    if not watermark.strip() or "--" in watermark or ">" in watermark or "\n" in watermark:
        raise UsageError("--watermark must be one non-empty line without '--' or '>' "
                         "(it is placed in an HTML comment)")
    return MARKER.format(watermark.strip())


def _is_local(target: str) -> bool:
    if not target or target.startswith(("#", "//", "/uploads/")):
        return False
    return not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target)  # http:, https:, data:, ...


def _fenced_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _FENCE.finditer(text)]


def local_images(markdown: str, base: Path) -> dict[str, Path]:
    """Link target -> local file, for every local image outside code blocks."""
    return {t: p for t, p, _ in _image_links(markdown, base)}


def _image_links(markdown: str, base: Path):
    fences = _fenced_spans(markdown)

    def in_fence(pos: int) -> bool:
        return any(a <= pos < b for a, b in fences)

    for regex in (_MD_IMAGE, _HTML_IMAGE, _REF_DEF):
        for m in regex.finditer(markdown):
            if in_fence(m.start()):
                continue
            raw = m.group("target")
            target = raw[1:-1] if raw.startswith("<") and raw.endswith(">") else raw
            if not _is_local(target):
                continue
            path = Path(urllib.parse.unquote(target.split("#", 1)[0].split("?", 1)[0]))
            if regex is _REF_DEF and path.suffix.lower() not in _IMAGE_EXT:
                continue
            yield raw, (path if path.is_absolute() else base / path), (regex, m)


def rewrite_images(markdown: str, base: Path, upload: Callable[[Path], str],
                   warn: Callable[[str], None] = lambda msg: None) -> tuple[str, int]:
    """Markdown with each local image link pointing at `upload(path)`'s URL; (text, uploads).

    Each distinct file is uploaded once; a missing file is left as is with a warning.
    """
    urls: dict[Path, str | None] = {}
    edits: list[tuple[int, int, str]] = []
    for raw, path, (_regex, m) in _image_links(markdown, base):
        key = path.resolve()
        if key not in urls:
            if path.is_file():
                urls[key] = upload(path)
            else:
                warn(f"image not found, link left as is: {raw}")
                urls[key] = None
        url = urls[key]
        if url is not None:
            edits.append((m.start("target"), m.end("target"), url))
    for start, end, url in sorted(edits, reverse=True):
        markdown = markdown[:start] + url + markdown[end:]
    return markdown, sum(1 for u in urls.values() if u is not None)


def fit_body(body: str, job_url: str | None, limit: int = NOTE_LIMIT) -> str:
    """`body` cut to at most `limit` characters, ending with a pointer to the full report."""
    if len(body) <= limit:
        return body
    where = (f"[the job's artifacts]({job_url}/artifacts/browse)" if job_url
             else "the job's artifacts")
    suffix = (f"\n\n---\n**Report truncated** to GitLab's {limit:,}-character note limit "
              f"({len(body):,} characters): the full report is in {where}.\n")
    keep = body[: max(0, limit - len(suffix))]
    cut = keep.rfind("\n")
    if cut > len(keep) * 0.9:  # end on a whole line when that costs little
        keep = keep[:cut]
    return keep + suffix


# --- posting ---------------------------------------------------------------------

def read_report(report: Path) -> str:
    """The report's text; an empty, binary or non-UTF-8 file is refused before any network."""
    try:
        raw = report.read_bytes()
    except FileNotFoundError:
        raise CiGenError(f"report not found: {report}") from None
    except OSError as exc:
        raise CiGenError(f"cannot read report {report}: {exc.strerror}") from None
    if not raw.strip():
        raise CiGenError(f"report {report} is empty: nothing to post")
    if b"\0" in raw:
        raise CiGenError(f"report {report} is a binary file, not markdown")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CiGenError(f"report {report} is not UTF-8 text (byte {exc.start})") from None


def _say(msg: str) -> None:
    print(f"ci-gen: {api.scrub(msg)}", flush=True)


def post_report(report: Path, *, target: str = "auto", watermark: str | None = None,
                env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Post `report`; returns what was done ({"kind": "note"|"commit"|"skipped", ...})."""
    env = os.environ if env is None else env
    if report.is_dir():
        raise CiGenError(f"report {report} is a directory, not a markdown file")
    markdown = read_report(report)
    # the marker is validated here, before any network traffic
    mark = marker(watermark if watermark is not None else default_watermark(env))
    job_url = env.get("CI_JOB_URL") or None

    token = api.find_token(env)
    if token is None or not _in_job(env):
        _keep_as_artifact(report, token, env, job_url)
        return {"kind": "skipped"}

    sha = env.get("CI_COMMIT_SHA", "")
    gl = api.connect(None, token, action="post the report", env=env)
    user = api.authenticate(gl)
    project = api.get_project(gl, env["CI_PROJECT_ID"])
    mr = _target_mr(gl, project, env, sha, target)
    body, uploads = _note_body(markdown, report.parent, mark, gl, project, job_url)
    if mr is None:
        return _comment_on_commit(gl, project, sha, body, uploads)
    return _upsert_note(gl, mr, user, mark, body, uploads)


def _in_job(env: Mapping[str, str]) -> bool:
    return bool((env.get("CI_SERVER_URL") or env.get("CI_API_V4_URL"))
                and env.get("CI_PROJECT_ID"))


def _keep_as_artifact(report: Path, token: str | None, env: Mapping[str, str],
                      job_url: str | None) -> None:
    """Say why nothing is posted: a report is not worth failing a pipeline for."""
    where = f" ({job_url}/artifacts/browse)" if job_url else ""
    if token is None:
        print(f"ci-gen: no GitLab token (GITLAB_API_TOKEN or REPO_TOKEN): report kept as a "
              f"job artifact at {report}{where}")
        if env.get("CI_JOB_TOKEN"):
            print(f"ci-gen: CI_JOB_TOKEN cannot post notes: {api.TOKEN_HELP}")
    else:
        print(f"ci-gen: not in a GitLab job (CI_SERVER_URL/CI_PROJECT_ID unset): report "
              f"kept at {report}{where}")


def _target_mr(gl: Any, project: Any, env: Mapping[str, str], sha: str, target: str) -> Any:
    """The merge request to post to, or None for a commit comment (checked to be possible)."""
    mr = None
    if target != "commit":
        mr = _find_mr(gl, project, env, sha)
        if mr is None and target == "mr":
            raise CiGenError(f"--target mr: no open merge request for commit {sha[:12] or '?'}"
                             " (and CI_MERGE_REQUEST_IID is unset)")
    if mr is None and not sha:
        raise CiGenError("CI_COMMIT_SHA is unset: cannot comment on the commit")
    return mr


def _note_body(markdown: str, base: Path, mark: str, gl: Any, project: Any,
               job_url: str | None) -> tuple[str, int]:
    """(note text with images uploaded and the marker first, number of uploads)."""
    def upload(path: Path) -> str:
        with api.errors(f"upload {path.name}", gl.url):
            info = project.upload(path.name, filepath=str(path))
        return info["url"]

    markdown, n = rewrite_images(markdown, base, upload,
                                 warn=lambda m: print(f"ci-gen: warning: {m}", file=sys.stderr))
    _say(f"uploaded {n} image{'s' if n != 1 else ''}")
    full = f"{mark}\n{markdown}"
    body = fit_body(full, job_url)
    if body != full:
        _say(f"report truncated from {len(full):,} to {len(body):,} characters "
             "(GitLab's note limit)")
    return body, n


def _comment_on_commit(gl: Any, project: Any, sha: str, body: str, uploads: int,
                       ) -> dict[str, Any]:
    with api.errors(f"comment on commit {sha[:12]}", gl.url):
        project.commits.get(sha, lazy=True).comments.create({"note": body})
    _say(f"commented on commit {sha[:12]}")
    return {"kind": "commit", "sha": sha, "uploads": uploads}


def _upsert_note(gl: Any, mr: Any, user: Any, mark: str, body: str, uploads: int,
                 ) -> dict[str, Any]:
    """Update the token user's last note carrying `mark`, else create one."""
    with api.errors(f"list the notes of merge request !{mr.iid}", gl.url):
        mine = [note for note in mr.notes.list(iterator=True, sort="asc", order_by="created_at")
                if mark in (note.body or "") and not getattr(note, "system", False)
                and (note.author or {}).get("id") == user.id]
    if mine:
        note = mine[-1]
        with api.errors(f"update note {note.id} on merge request !{mr.iid}", gl.url):
            note.body = body
            note.save()
        _say(f"updated note {note.id} on merge request !{mr.iid}")
        action = "updated"
    else:
        with api.errors(f"create a note on merge request !{mr.iid}", gl.url):
            note = mr.notes.create({"body": body})
        _say(f"created note {note.id} on merge request !{mr.iid}")
        action = "created"
    return {"kind": "note", "action": action, "id": note.id, "iid": mr.iid, "uploads": uploads}


def _find_mr(gl: Any, project: Any, env: Mapping[str, str], sha: str) -> Any:
    iid = env.get("CI_MERGE_REQUEST_IID", "").strip()
    if iid:
        with api.errors(f"get merge request !{iid}", gl.url):
            mr = project.mergerequests.get(int(iid))
        _say(f"merge request !{mr.iid} (CI_MERGE_REQUEST_IID)")
        return mr
    if not sha:
        return None
    with api.errors(f"list merge requests of commit {sha[:12]}", gl.url):
        found = project.commits.get(sha, lazy=True).merge_requests(iterator=True)
        opened = [m for m in found if m.get("state") == "opened"]
    if not opened:
        _say(f"no open merge request for commit {sha[:12]}")
        return None
    branch = env.get("CI_COMMIT_BRANCH") or env.get("CI_COMMIT_REF_NAME")
    opened.sort(key=lambda m: (m.get("source_branch") != branch, -int(m.get("iid", 0))))
    iid = opened[0]["iid"]
    with api.errors(f"get merge request !{iid}", gl.url):
        mr = project.mergerequests.get(int(iid))
    _say(f"merge request !{mr.iid} (open merge request of commit {sha[:12]})")
    return mr
