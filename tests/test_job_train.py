"""`ci-gen job train` on real git + DVC projects with local remotes (and a dead S3 endpoint).

A template project is made once: a two-stage pipeline of plain Python scripts (no
TensorFlow), the data on a `data` remote, outputs and run cache on the default `models`
remote, and two commits: without and with dvc.lock. Each test clones it, as a CI job's
checkout would be: no outputs, an empty local cache.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ci_gen.errors import CiGenError
from ci_gen.dvcrepo import reproduce as dvc_reproduce
from support.cli import cli

BIN = Path(sys.executable).parent
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
FILES = {
    "make.py": """\
        import pathlib
        epochs = int(pathlib.Path("params.yaml").read_text().split("epochs:")[1].split()[0])
        data = pathlib.Path("data/x.txt").read_text().strip()
        pathlib.Path("model").mkdir(exist_ok=True)
        pathlib.Path("model/m.txt").write_text(f"{data}*{epochs}\\n")
        for e in range(epochs):
            print(f"Epoch {e + 1}/{epochs}", flush=True)
        """,
    "ev.py": """\
        import json, pathlib
        pathlib.Path("eval").mkdir(exist_ok=True)
        model = pathlib.Path("model/m.txt").read_text()
        pathlib.Path("eval/metrics.json").write_text(json.dumps({"size": len(model)}))
        """,
    "params.yaml": "train:\n  epochs: 1\n",
    "dvc.yaml": """\
        stages:
          train:
            cmd: python make.py
            deps: [make.py, data]
            params: [train]
            outs: [model]
          evaluate:
            cmd: python ev.py
            deps: [ev.py, model]
            metrics: [eval/metrics.json]
        """,
    "requirements.txt": "# what make.py needs: nothing\n",
}


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DVC_"))}
    env.update(IDENTITY, DVC_NO_ANALYTICS="1", HOME=str(tmp / "home"),
               XDG_CONFIG_HOME=str(tmp / "xdg"), PATH=f"{BIN}{os.pathsep}{env['PATH']}")
    return env


def _sh(cwd: Path, *cmd: str, env: dict[str, str]) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The origin project: outputs and run cache pushed, dvc.lock committed on top."""
    tmp = tmp_path_factory.mktemp("train-job")
    env = _env(tmp)
    root = tmp / "origin"
    (root / "data").mkdir(parents=True)
    for name, text in FILES.items():
        (root / name).write_text(textwrap.dedent(text))
    (root / "data" / "x.txt").write_text("7\n")
    for cmd in (["git", "init", "-q", "-b", "main"], ["dvc", "init", "-q"],
                ["dvc", "remote", "add", "-d", "models", str(tmp / "models")],
                ["dvc", "remote", "add", "data", str(tmp / "data-remote")],
                ["dvc", "add", "-q", "data"]):
        _sh(root, *cmd, env=env)
    pointer = root / "data.dvc"  # the data lives on its own remote, as in the example
    pointer.write_text(pointer.read_text().replace("  path: data\n", "  path: data\n  remote: data\n"))
    for cmd in (["dvc", "push", "-q", "data.dvc"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "pipeline without dvc.lock"]):
        _sh(root, *cmd, env=env)
    # A first "CI run" trains and pushes outputs + run cache, then the lock is committed.
    outcome = dvc_reproduce.reproduce(root, data=["data.dvc"], push_run_cache=True, out=io.StringIO(),
                              install=lambda *_: None)
    assert outcome.how == "trained"
    _sh(root, "git", "add", "-A", env=env)
    _sh(root, "git", "commit", "-qm", "dvc.lock [skip ci]", env=env)
    return tmp, root, env


@pytest.fixture
def job(template, tmp_path, monkeypatch):
    """A fresh clone of the template, as a CI job checks it out; cwd and env set for DVC."""
    tmp, origin, env = template
    clone = tmp_path / "job"
    _sh(tmp_path, "git", "clone", "-q", str(origin), str(clone), env=env)
    for key in [k for k in os.environ if k.startswith(("AWS_", "DVC_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(clone)
    return clone


def _run(clone: Path, capfd, **kw) -> tuple[dvc_reproduce.Outcome, str, list[str]]:
    installs: list[str] = []
    out = io.StringIO()
    outcome = dvc_reproduce.reproduce(clone, data=["data.dvc"], requirements="requirements.txt", out=out,
                              install=lambda root, req: installs.append(req), **kw)
    # The stage commands write to the process's own stdout, DVC's messages go to `out`.
    return outcome, out.getvalue() + capfd.readouterr().out, installs


def test_lock_matches_outputs_are_pulled(job, capfd):
    outcome, log, installs = _run(job, capfd)
    assert (outcome.how, outcome.summary) == ("restored", dvc_reproduce.RESTORED)
    assert outcome.restored == ["train", "evaluate"]
    assert (job / "model/m.txt").read_text() == "7*1\n"
    assert (job / "eval/metrics.json").is_file()
    assert installs == [] and "Epoch" not in log
    assert subprocess.run(["git", "status", "--porcelain"], cwd=job, capture_output=True,
                          text=True).stdout == ""  # dvc.lock untouched


def test_no_lock_but_run_cache_outputs_are_reused(job, capfd):
    subprocess.run(["git", "checkout", "-q", "HEAD~1"], cwd=job, check=True)
    assert not (job / "dvc.lock").exists()
    outcome, log, installs = _run(job, capfd)
    assert (outcome.how, outcome.summary) == ("reused", dvc_reproduce.REUSED)
    assert outcome.reused == ["train", "evaluate"]
    assert "Stage 'train' is cached - skipping run" in log
    assert (job / "model/m.txt").read_text() == "7*1\n"
    assert installs == [] and "Epoch" not in log
    assert "epochs: 1" in (job / "dvc.lock").read_text()  # written as `dvc repro` would


def test_changed_params_train_after_installing(job, capfd):
    (job / "params.yaml").write_text("train:\n  epochs: 2\n")
    outcome, log, installs = _run(job, capfd)
    assert outcome.how == "trained" and outcome.ran == ["train", "evaluate"]
    assert outcome.summary.startswith("trained (ran train, evaluate: changed since dvc.lock: "
                                      "params.yaml:train;")
    assert installs == ["requirements.txt"]
    assert "Epoch 2/2" in log and (job / "model/m.txt").read_text() == "7*2\n"


def test_stages_python_is_the_interpreter_without_python_on_path(job, capfd, monkeypatch, tmp_path):
    """Debian has no `python`: a stage's `python make.py` must still find the interpreter the
    requirements went into (not a shim of the machine's PATH, nor nothing)."""
    bare = tmp_path / "bin"
    bare.mkdir()
    git = shutil.which("git")
    assert git
    (bare / "git").symlink_to(git)
    monkeypatch.setenv("PATH", str(bare))  # git only: no python, no dvc, no shim
    (job / "params.yaml").write_text("train:\n  epochs: 3\n")
    outcome, log, _ = _run(job, capfd)
    assert outcome.how == "trained" and (job / "model/m.txt").read_text() == "7*3\n", log
    assert os.environ["PATH"] == str(bare)  # put back


def test_changed_data_trains_and_the_next_run_reuses(job, capfd):
    dvc = str(BIN / "dvc")
    subprocess.run([dvc, "pull", "-q", "data.dvc"], cwd=job, check=True)
    (job / "data" / "x.txt").write_text("8\n")
    for cmd in ([dvc, "add", "-q", "data"], [dvc, "push", "-q", "data.dvc"],
                ["git", "commit", "-qam", "new data"]):
        subprocess.run(cmd, cwd=job, check=True)
    outcome, log, _ = _run(job, capfd, push_run_cache=True)
    assert outcome.how == "trained" and "changed since dvc.lock: data;" in outcome.summary
    assert (job / "model/m.txt").read_text() == "8*1\n"
    # Pushed: the next job on the same commit takes it from the run cache.
    fresh = job.parent / "again"
    subprocess.run(["git", "clone", "-q", str(job), str(fresh)], check=True)
    outcome, log, installs = _run(fresh, capfd)
    assert outcome.how == "reused" and installs == [] and "Epoch" not in log
    assert (fresh / "model/m.txt").read_text() == "8*1\n"


def test_only_a_downstream_stage_runs(job, capfd):
    with (job / "ev.py").open("a") as f:
        f.write("# reworded\n")
    outcome, _, installs = _run(job, capfd)
    assert outcome.restored == ["train"] and outcome.ran == ["evaluate"]
    assert outcome.summary.startswith("trained (ran evaluate: changed since dvc.lock: ev.py;")
    assert outcome.summary.endswith("; train restored)")
    assert installs == ["requirements.txt"]


def test_remote_without_the_outputs_falls_back_to_training(job, template, capfd):
    tmp, _, _ = template
    backup = tmp / "models-backup"
    shutil.move(tmp / "models", backup)
    try:
        outcome, log, _ = _run(job, capfd)
    finally:
        shutil.move(backup, tmp / "models")
    assert "dvc.lock matches 'train' but the remote lacks its outputs" in log
    assert outcome.how == "trained" and (job / "model/m.txt").read_text() == "7*1\n"


def test_cli_prints_one_line_for_what_happened(job):
    proc = cli("job", "train", "--data", "data.dvc", "--requirements", "requirements.txt",
               cwd=job)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == f"ci-gen: train: {dvc_reproduce.RESTORED}"
    assert proc.stderr == ""


def test_dead_remote_is_one_line(job):
    pytest.importorskip("dvc_s3")
    for args in (["url", "s3://bucket/models"], ["endpointurl", "http://127.0.0.1:9"]):
        subprocess.run([str(BIN / "dvc"), "remote", "modify", "models", *args], cwd=job, check=True)
    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_MAX_ATTEMPTS": "1"}
    proc = cli("job", "train", "--data", "data.dvc", cwd=job, env=env)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("ci-gen: error: train: cannot ")
    assert "ERROR: failed to connect to s3" in proc.stderr and "127.0.0.1:9" in proc.stderr
    assert "Having any troubles" not in proc.stdout + proc.stderr
    assert not (job / "model").exists()


def test_dead_data_remote_is_one_line(job):
    subprocess.run([str(BIN / "dvc"), "remote", "modify", "data", "url", str(job / "gone")],
                   cwd=job, check=True)
    proc = cli("job", "train", "--data", "data.dvc", cwd=job)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("ci-gen: error: train: cannot pull data.dvc: ERROR: ")


def test_failed_stage_is_dvc_error_line(job):
    (job / "params.yaml").write_text("train:\n  epochs: oops\n")
    proc = cli("job", "train", "--data", "data.dvc", cwd=job)
    assert proc.returncode == 1
    # The script's own traceback stays in the job log; ci-gen's verdict is its last line.
    assert "ValueError" in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "ci-gen: error: train: cannot reproduce train, evaluate: ERROR: failed to reproduce "
        "'train': failed to run: python make.py, exited with 1")


def test_bad_requirements_fail_in_one_line(job):
    (job / "params.yaml").write_text("train:\n  epochs: 2\n")
    (job / "requirements.txt").write_text("this is not === a requirement\n")
    with pytest.raises(CiGenError, match=r"^train: pip install -r requirements.txt failed: ERROR: "):
        dvc_reproduce.reproduce(job, data=["data.dvc"], requirements="requirements.txt", out=io.StringIO())
    with pytest.raises(CiGenError, match="requirements file nope.txt not found"):
        dvc_reproduce.reproduce(job, data=[], requirements="nope.txt", out=io.StringIO())
