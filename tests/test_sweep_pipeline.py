"""The sweep for real (issue 15, part 2): `ci-gen init --example fashion-mnist --sweep`, one
epoch, the default 2 x 2 grid (learning rate x dropout) in a merge request pipeline in
gitlab-ci-local, twice:

1. cold: each of the 4 `parallel: matrix` cells trains with its own params, the leaderboard
   holds the grid, ranked by accuracy, the best cell the one with the best accuracy;
2. warm (a second pipeline, nothing shared but the DVC remote): every cell is reused from
   the run cache with the same metrics, none trains; then the manual apply-best job opens a
   follow-up merge request on the loopback GitLab with a commit on a new branch whose
   params.yaml holds the best cell's params (comments kept); run again, it finds that MR.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from gitlab_fake import API, PROJECT_ID, gitlab_fake  # noqa: F401  (fixture)
from support.cli import cli
from support.pipeline import job_log, run_pipeline

from ci_gen import components as desc
from ci_gen.evaluation.metrics import flatten
from ci_gen.sweep import grid
from ci_gen.sweep.apply import BRANCH_PREFIX, open_mr

pytestmark = pytest.mark.slow

COLLECT = "mlops-sweep-collect"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout


def _board(project: Path) -> dict:
    return json.loads((project / ".gitlab-ci-local/artifacts" / COLLECT / "sweep/leaderboard.json").read_text())


def _cell_logs(project: Path) -> list[str]:
    """The logs of the last pipeline's cells (gitlab-ci-local encodes a matrix job's name)."""
    logs = [p.read_text(errors="replace") for p in (project / ".gitlab-ci-local/output").glob("*.log")]
    return [text for text in logs if "ci-gen: sweep: cell " in text]


def _by_params(board: dict) -> dict[tuple, dict]:
    return {(c["params"]["train.learning_rate"], c["params"]["train.dropout"]): c for c in board["cells"]}


def test_sweep_cold_then_warm_then_apply_best(tmp_path, gitlab_fake, monkeypatch):
    for name in ("GITLAB_API_TOKEN", "REPO_TOKEN", "CI_JOB_TOKEN", "TF_CPP_MIN_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    project = tmp_path / "fmnist"
    res = cli("init", str(project), "--example", "fashion-mnist", "--sweep")
    assert res.returncode == 0, res.stderr
    params = project / "params.yaml"
    # One epoch of a narrow CNN: four cells train at once on the runner's cores.
    text = params.read_text()
    for old, new in (("epochs: 12", "epochs: 1"), ("width: 32", "width: 8"), ("dense_units: 128", "dense_units: 32")):
        assert old in text
        text = text.replace(old, new)
    params.write_text(text)
    _git(project, "commit", "-qam", "test: 1 epoch, a narrow CNN")
    _git(project, "checkout", "-qb", "try-sweep")
    with params.open("a") as f:
        f.write("# swept in this merge request\n")
    _git(project, "commit", "-qam", "sweep the learning rate and dropout")
    head = _git(project, "rev-parse", "HEAD").strip()
    gitlab_fake.add_commit(PROJECT_ID, head, {"params.yaml": params.read_text()}, branch="try-sweep")
    api = {"CI_SERVER_URL": gitlab_fake.url, "CI_API_V4_URL": gitlab_fake.url + API,
           "CI_PROJECT_ID": str(PROJECT_ID), "GITLAB_API_TOKEN": gitlab_fake.token}
    grid_values = desc.SWEEP_EXAMPLE_MATRIX[0]
    expected = set(itertools.product(*(map(float, grid_values[v]) for v in ("train__learning_rate",
                                                                          "train__dropout"))))

    # 1. Cold: four cells, each trained with its own params, ranked by accuracy.
    code, status, out = run_pipeline(project, mr=True, job=COLLECT, variables=api)
    assert code == 0, out[-4000:]
    cells = sorted(n for n in status if n.startswith("mlops-sweep: ["))
    assert len(cells) == 4 and all(status[n] == "passed" for n in cells) and status[COLLECT] == "passed"
    cold = _board(project)
    assert set(_by_params(cold)) == expected
    assert [c["how"] for c in cold["cells"]] == ["trained"] * 4, [c["summary"] for c in cold["cells"]]
    accuracy = [c["metrics"]["accuracy"] for c in cold["cells"]]
    assert accuracy == sorted(accuracy, reverse=True) and [c["rank"] for c in cold["cells"]] == [1, 2, 3, 4]
    best = cold["best"]
    assert best["metrics"]["accuracy"] == max(accuracy) and best["index"] == cold["cells"][0]["index"]
    assert sorted(c["index"] for c in cold["cells"]) == [1, 2, 3, 4]
    logs = _cell_logs(project)
    assert len(logs) == 4 and all("trained 1 epochs on" in text for text in logs)
    section = (project / ".gitlab-ci-local/artifacts" / COLLECT / "report.d/sweep.md").read_text()
    assert section.count("🏆") == 1 and f"Best: **{grid.label(best['params'])}**" in section

    # 2. Warm, a new pipeline: every cell from the run cache (DVC remote), same metrics, no
    #    training; then apply-best opens the follow-up MR.
    code, status, out = run_pipeline(project, mr=True, job="mlops-sweep-apply", variables=api)
    assert code == 0, out[-4000:]
    assert status["mlops-sweep-apply"] == "passed"
    warm = _by_params(_board(project))
    assert [c["how"] for c in warm.values()] == ["reused"] * 4, [c["summary"] for c in warm.values()]
    for key, cell in _by_params(cold).items():
        assert warm[key]["metrics"] == cell["metrics"]
    logs = _cell_logs(project)
    assert len(logs) == 4 and not any("> python train.py" in text or "installing requirements" in text
                                      for text in logs)
    cold_s = sum(c["seconds"] for c in cold["cells"])
    warm_s = sum(c["seconds"] for c in warm.values())
    print(f"sweep cells: cold {cold_s:.1f} s, warm {warm_s:.1f} s (sum of 4 cells)")
    assert warm_s < cold_s

    branch = BRANCH_PREFIX + head[:8]
    commit = gitlab_fake.commits[PROJECT_ID][gitlab_fake.heads[PROJECT_ID][branch]]
    assert commit["parent_ids"] == [head] and gitlab_fake.heads[PROJECT_ID]["try-sweep"] == head
    assert [a["action"] for a in commit["actions"]] == ["update"]
    applied = commit["files"]["params.yaml"]
    values = flatten(yaml.safe_load(applied))
    assert {k: values[k] for k in best["params"]} == best["params"]
    assert applied.startswith("# Hyperparameters read by train.py") and "# swept in this merge request" in applied
    mrs = [mr for mr in gitlab_fake.merge_requests.values() if mr["source_branch"] == branch]
    assert len(mrs) == 1 and mrs[0]["target_branch"] == "try-sweep" and mrs[0]["state"] == "opened"
    assert grid.label(best["params"]) in mrs[0]["title"] and "## Hyperparameter sweep" in mrs[0]["description"]
    log = job_log(project, "mlops-sweep-apply")
    assert f"sweep-apply: opened {mrs[0]['web_url']}" in log and gitlab_fake.token not in log

    # Run again (the manual job re-run): the open MR is found, nothing new is pushed.
    env = {**os.environ, **api, "CI_COMMIT_SHA": head, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "try-sweep"}
    leaderboard = project / ".gitlab-ci-local/artifacts" / COLLECT / "sweep/leaderboard.json"
    again = open_mr(leaderboard, params, env=env, say=lambda line: None)
    assert again == {"kind": "found", "web_url": mrs[0]["web_url"], "iid": mrs[0]["iid"]}
    assert len(gitlab_fake.requests_to("POST", r"/repository/commits$")) == 1
