"""sweep-apply without a pipeline: `ci-gen job sweep-apply` against the loopback GitLab, for a
merge request of the project itself and for one from a fork (the slow pipeline test runs the
job in gitlab-ci-local)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gitlab_fake import API, PROJECT_ID, SHA, gitlab_fake  # noqa: F401  (fixture)
from support.cli import cli

from ci_gen.sweep.apply import BRANCH_PREFIX

PARAMS = "# Hyperparameters\ntrain:\n  learning_rate: 0.001  # Adam\n  dropout: 0.2\n"
BEST = {"train.learning_rate": 0.003, "train.dropout": 0.1}


def _cell(index: int, params: dict, accuracy: float, rank: int) -> dict:
    return {"index": index, "rank": rank, "params": params, "metrics": {"accuracy": accuracy},
            "seconds": 1.0, "how": "trained"}


@pytest.fixture
def job(tmp_path: Path, gitlab_fake):  # noqa: F811
    """A work tree with params.yaml and a leaderboard; returns a runner of sweep-apply."""
    (tmp_path / "params.yaml").write_text(PARAMS)
    best = _cell(2, BEST, 0.91, 1)
    board = {"metric": "accuracy", "direction": "higher", "best": best,
             "cells": [best, _cell(1, {"train.learning_rate": 0.001, "train.dropout": 0.2}, 0.88, 2)]}
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep/leaderboard.json").write_text(json.dumps(board))
    gitlab_fake.add_commit(PROJECT_ID, SHA, {"params.yaml": PARAMS}, branch="try-sweep")
    env = {"CI_SERVER_URL": gitlab_fake.url, "CI_API_V4_URL": gitlab_fake.url + API,
           "CI_PROJECT_ID": str(PROJECT_ID), "GITLAB_API_TOKEN": gitlab_fake.token,
           "CI_COMMIT_SHA": SHA, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "try-sweep",
           "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": str(PROJECT_ID), "NO_PROXY": "127.0.0.1"}

    def run(**extra: str):
        return cli("job", "sweep-apply", cwd=tmp_path, env={**env, **extra})
    return run


def test_an_mr_of_the_project_gets_one_follow_up_mr_with_the_best_params(job, gitlab_fake):  # noqa: F811
    first = job()
    again = job()

    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    branch = BRANCH_PREFIX + SHA[:8]
    commit = gitlab_fake.commits[PROJECT_ID][gitlab_fake.heads[PROJECT_ID][branch]]
    applied = commit["files"]["params.yaml"]
    assert yaml.safe_load(applied)["train"] == {"learning_rate": 0.003, "dropout": 0.1}
    assert "# Adam" in applied and gitlab_fake.heads[PROJECT_ID]["try-sweep"] == SHA
    (mr,) = [m for m in gitlab_fake.merge_requests.values() if m["source_branch"] == branch]
    assert mr["target_branch"] == "try-sweep"
    assert f"sweep-apply: opened {mr['web_url']}" in first.stdout
    assert f"sweep-apply: already open: {mr['web_url']}" in again.stdout


def test_an_mr_from_a_fork_run_in_the_parent_is_one_line_and_touches_nothing(job, gitlab_fake):  # noqa: F811
    proc = job(CI_MERGE_REQUEST_SOURCE_PROJECT_ID="77")

    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "ci-gen: error: sweep-apply: the merge request's branch is in another project (id '77', a fork) "
        "that this pipeline cannot push to; set learning_rate=0.003, dropout=0.1 in params.yaml there by hand"]
    assert gitlab_fake.seen == []


@pytest.mark.parametrize("partial", ["mr-create-failed", "mr-closed-branch-kept"])
def test_a_second_run_after_a_partial_one_reuses_the_branch_and_opens_the_mr(job, gitlab_fake, partial):  # noqa: F811
    """GitLab's commits API refuses start_sha for an existing branch
    (app/services/commits/create_service.rb): the second run must commit onto it, or reuse it."""
    branch = BRANCH_PREFIX + SHA[:8]
    if partial == "mr-create-failed":
        gitlab_fake.fail(times=1, status=400, method="POST", path_re=r"/merge_requests$",
                         body={"message": "400 Bad request"})
        first = job()
        assert first.returncode == 1 and branch in gitlab_fake.heads[PROJECT_ID]
        assert not gitlab_fake.merge_requests
    else:
        first = job()
        assert first.returncode == 0, first.stderr
        (mr,) = gitlab_fake.merge_requests.values()
        mr["state"] = "closed"
        # someone changed the params on the kept branch since
        gitlab_fake.new_commit(PROJECT_ID, {"branch": branch, "commit_message": "tweak", "actions": [
            {"action": "update", "file_path": "params.yaml", "content": PARAMS}]})
    head = gitlab_fake.heads[PROJECT_ID][branch]

    again = job()

    assert again.returncode == 0, again.stderr
    (mr,) = [m for m in gitlab_fake.merge_requests.values() if m["state"] == "opened"]
    assert mr["source_branch"] == branch and mr["target_branch"] == "try-sweep"
    assert f"sweep-apply: opened {mr['web_url']}" in again.stdout
    now = gitlab_fake.heads[PROJECT_ID][branch]
    applied = gitlab_fake.commits[PROJECT_ID][now]["files"]["params.yaml"]
    assert yaml.safe_load(applied)["train"] == {"learning_rate": 0.003, "dropout": 0.1}
    if partial == "mr-create-failed":
        assert now == head and "reusing it" in again.stdout  # no second, empty commit
    else:
        assert gitlab_fake.commits[PROJECT_ID][now]["parent_ids"] == [head]
