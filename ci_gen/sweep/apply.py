"""apply-best (`ci-gen job sweep-apply`): a follow-up merge request that sets the best cell's
params in the params file, made with GitLab's API only:

1. `POST /projects/:id/repository/commits` creates a new branch from the pipeline's commit
   (`branch` + `start_sha`) with one `update` action on the params file;
2. `POST /projects/:id/merge_requests` opens the MR from it into the branch the sweep ran on
   (the MR's source branch): the change is reviewed, never pushed to an existing branch.

Run again for the same commit, it finds the open MR of its branch and says so; after a partial
run (the branch made, the MR not; or a closed MR whose branch was kept) it reuses the branch. The token is
GITLAB_API_TOKEN (api scope); it is never printed, and messages are scrubbed of it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from ci_gen.errors import CiGenError
from ci_gen.evaluation.metrics import flatten
from ci_gen.patterns import RE_SWEEP_BRANCH
from ci_gen.sweep import grid
from ci_gen.sweep.leaderboard import markdown

BRANCH_PREFIX = "ci-gen/sweep-best-"


def read_best(leaderboard: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(leaderboard, best cell) from sweep-collect's leaderboard.json."""
    try:
        board = json.loads(leaderboard.read_text(encoding="utf-8"))
        best = board["best"]
        params = best["params"]
    except OSError as exc:
        raise CiGenError(f"sweep-apply: cannot read {leaderboard}: {exc.strerror} (did sweep-collect "
                         f"run and keep its artifacts?)") from None
    except (ValueError, KeyError, TypeError):
        raise CiGenError(f"sweep-apply: {leaderboard} is not a leaderboard of ci-gen job sweep-collect") from None
    if not isinstance(params, dict) or not params:
        raise CiGenError(f"sweep-apply: {leaderboard}: the best cell has no params")
    return board, best


def target(env: Mapping[str, str], change: str) -> tuple[str, str, str]:
    """(source branch to create, target branch, start commit) for this pipeline; `change` says
    what to do by hand when the MR's branch cannot be reached."""
    source, here = env.get("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", ""), env.get("CI_PROJECT_ID", "")
    if source and source != here:
        # A fork's MR run in the parent project: its branch lives in the fork, where this
        # project's token cannot push. In the fork's own pipelines the two ids are equal.
        raise CiGenError(f"sweep-apply: the merge request's branch is in another project (id {source[:20]!r}, "
                         f"a fork) that this pipeline cannot push to; set {change} there by hand")
    sha = env.get("CI_COMMIT_SHA", "")
    into = env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or env.get("CI_COMMIT_BRANCH") or ""
    if not re.fullmatch(r"[0-9a-f]{40}", sha) or not into:
        raise CiGenError("sweep-apply: runs in a merge request (or branch) pipeline: CI_COMMIT_SHA and "
                         "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME are needed")
    branch = BRANCH_PREFIX + sha[:8]
    for name in (branch, into):
        if not re.fullmatch(RE_SWEEP_BRANCH, name) or ".." in name:
            raise CiGenError(f"sweep-apply: branch name {name[:80]!r} is not a plain branch name")
    return branch, into, sha


def open_mr(leaderboard: Path, params_file: Path, *, env: Mapping[str, str] | None = None,
            say: Callable[[str], None] = print) -> dict[str, Any]:
    """Open (or find) the follow-up MR; {"kind": "created"|"found"|"unchanged", ...}."""
    from ci_gen.gitlab import api

    env = os.environ if env is None else env
    board, best = read_best(leaderboard)
    from ci_gen import yamlload

    try:
        text = yamlload.read_text(params_file, str(params_file), what="params file")
    except yamlload.YamlError as exc:
        raise CiGenError(f"sweep-apply: {exc}") from None
    new = grid.apply(text, best["params"], str(params_file))
    label = grid.label(best["params"])
    if flatten(grid.load(new, str(params_file))) == flatten(grid.load(text, str(params_file))):
        say(f"sweep-apply: {params_file} already has the best cell's params ({label}); nothing to apply")
        return {"kind": "unchanged"}
    branch, into, sha = target(env, f"{label} in {params_file.as_posix()}")
    token = api.require_token("open the follow-up merge request", env)
    gl = api.connect(None, token, action="open the follow-up merge request", env=env)
    project = api.get_project(gl, env.get("CI_PROJECT_ID", ""))
    with api.errors(f"look for an open merge request from {branch}", gl.url):
        found = project.mergerequests.list(source_branch=branch, target_branch=into, state="opened",
                                           get_all=False)
    if found:
        say(f"sweep-apply: already open: {found[0].web_url}")
        return {"kind": "found", "web_url": found[0].web_url, "iid": found[0].iid}
    message = f"sweep: apply the best cell ({label})\n\nBy {board['metric']} ({board['direction']} is better), " \
              f"from the sweep of {sha[:8]}."
    commit = _commit(gl, project, branch, sha, params_file.as_posix(), new, message, say)
    description = (f"The best cell of the sweep in {env.get('CI_PIPELINE_URL') or 'the pipeline'} "
                   f"for {sha[:8]}, applied to `{params_file.as_posix()}`.\n\n{markdown(board)}")
    with api.errors(f"open a merge request from {branch} into {into}", gl.url):
        mr = project.mergerequests.create({
            "source_branch": branch, "target_branch": into, "title": f"Apply the best sweep cell: {label}",
            "description": description, "remove_source_branch": True})
    say(f"sweep-apply: opened {mr.web_url} ({branch} -> {into}, commit {commit[:8]})")
    return {"kind": "created", "web_url": mr.web_url, "iid": mr.iid, "commit": commit, "branch": branch}


def _commit(gl: Any, project: Any, branch: str, sha: str, path: str, content: str, message: str,
            say: Callable[[str], None]) -> str:
    """The branch's head holding `content` at `path`: a new branch from `sha`, or, after a
    partial run (an MR create that failed, a closed MR whose branch was kept), the existing
    branch, updated only when it does not hold the change yet. GitLab's commits API refuses
    `start_sha` for a branch that exists ("A branch called ... already exists",
    app/services/commits/create_service.rb), so an existing branch is committed to as is."""
    import gitlab.exceptions as gexc

    from ci_gen.gitlab import api

    with api.errors(f"look for branch {branch}", gl.url):
        try:
            head = project.branches.get(branch).commit["id"]
        except gexc.GitlabGetError as exc:
            if exc.response_code != 404:
                raise
            head = None
    action = {"action": "update", "file_path": path, "content": content}
    if head is None:
        with api.errors(f"create branch {branch} with {path}", gl.url):
            return project.commits.create({"branch": branch, "start_sha": sha, "commit_message": message,
                                           "actions": [action]}).id
    with api.errors(f"read {path} on {branch}", gl.url):
        try:
            current = project.files.raw(file_path=path, ref=branch).decode("utf-8", "replace")
        except gexc.GitlabGetError as exc:
            if exc.response_code != 404:
                raise
            current, action["action"] = None, "create"
    if current == content:
        say(f"sweep-apply: branch {branch} is there already with the change (an earlier run); reusing it")
        return str(head)
    say(f"sweep-apply: branch {branch} is there already (an earlier run); committing the change onto it")
    with api.errors(f"update {path} on branch {branch}", gl.url):
        return project.commits.create({"branch": branch, "commit_message": message, "actions": [action]}).id
