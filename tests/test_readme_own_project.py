"""The README's "In your own project" block, run literally, as a new user on a fresh machine.

The block between `<!-- own-project:start -->` and `<!-- own-project:end -->` is run with
`bash -euo pipefail` in a fresh HOME, from a folder holding the ci-gen clone as `ci-gen` (the
block's default), with a PATH that has neither this repository's venv nor any ci-gen or
gitlab-ci-local: the block itself creates the venv and installs ci-gen from the clone;
`ci-gen run` installs gitlab-ci-local under HOME; the block must end with a pipeline that
printed predictions. The test changes two things in the block: the run takes `--host-env` (the
runner-like mode's own tests are tests/test_run_runner_mode.py and the example's end-to-end
test, and its pip installs would cost minutes here), and the model trains 2 epochs instead of
12 (an uncommitted params.yaml change, which the run takes; the same pipeline, a minute or
two less). Only pip's
and npm's download caches are shared with the machine (a warm cache, as a second install has).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cli import cli
from support.trees import tree_hash

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- own-project:start -->", "<!-- own-project:end -->"


def own_project_block(readme: str) -> str:
    """The shell of the README's own-project section: exactly one ```bash fence."""
    assert readme.count(START) == 1 and readme.count(END) == 1, "own-project markers missing"
    part = readme.split(START, 1)[1].split(END, 1)[0]
    match = re.fullmatch(r"\s*```bash\n(.*?)```\s*", part, re.S)
    assert match, "the own-project markers must hold exactly one ```bash block"
    return match.group(1)


def _bare_path() -> str:
    """The caller's PATH without any folder that holds ci-gen, gitlab-ci-local or this venv."""
    venv_bin = Path(sys.executable).parent
    keep = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or Path(entry) == venv_bin or Path(entry).resolve() == venv_bin.resolve():
            continue
        if any(shutil.which(tool, path=entry) for tool in ("ci-gen", "gitlab-ci-local")):
            continue
        keep.append(entry)
    return os.pathsep.join(keep)


def _fresh_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CI_", "VIRTUAL_ENV", "PYTHON", "NPM_CONFIG_", "npm_config_",
                                "GITLAB_", "REPO_TOKEN", "GIT_"))}
    env.update(HOME=str(home), PATH=_bare_path(),
               # The download caches are the machine's own (warm); everything else is new.
               PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", os.path.expanduser("~/.cache/pip")),
               npm_config_cache=os.path.expanduser("~/.npm"))
    return env


def test_block_is_one_fenced_sequence_ending_in_a_run():
    block = own_project_block((REPO / "README.md").read_text(encoding="utf-8"))
    commands = [ln.split("#", 1)[0].strip() for ln in block.splitlines()]
    commands = [c for c in commands if c]
    assert commands[0].startswith('CI_GEN_SRC="${CI_GEN_SRC:-$PWD/ci-gen}"')
    assert any("pip install" in c and "[dvc" in c for c in commands)
    assert not any("gitlab-ci-local" in c for c in commands)  # ci-gen run installs it
    assert commands[-1] == "ci-gen run --manual"  # the deploy and its inference are manual
    assert "pip install ci-gen" not in block  # not published yet


def test_bare_path_has_no_ci_gen_tools():
    path = _bare_path()
    assert shutil.which("ci-gen", path=path) is None
    assert shutil.which("gitlab-ci-local", path=path) is None
    for tool in ("bash", "git", "python3", "node", "npm", "rsync"):
        assert shutil.which(tool, path=path), f"{tool} is a prerequisite the README names"


@pytest.mark.slow
def test_readme_own_project_block_runs_as_pasted(tmp_path):
    block = own_project_block((REPO / "README.md").read_text(encoding="utf-8"))
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (work / "ci-gen").symlink_to(REPO, target_is_directory=True)  # "the folder holding your clone"
    env = _fresh_env(home)
    started = time.monotonic()
    last = "\nci-gen run --manual         # the whole pipeline, manual jobs too, locally, in gitlab-ci-local"
    assert block.rstrip().endswith(last)
    block = block.rstrip()[: -len(last)] + ("\nsed -i 's/^  epochs: 12$/  epochs: 2/' params.yaml"
                                             "\nci-gen run --manual --host-env\n")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                          capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
    took = time.monotonic() - started
    out = proc.stdout + proc.stderr
    print(f"README own-project block: exit {proc.returncode} in {took:.0f} s")
    assert proc.returncode == 0, out[-6000:]
    assert (home / ".venvs" / "ci-gen" / "bin" / "ci-gen").is_file()
    cached = home / ".cache" / "ci-gen" / "gitlab-ci-local" / "4.73.0"
    assert (cached / "node_modules" / ".bin" / "gitlab-ci-local").exists()
    assert f"installing gitlab-ci-local 4.73.0 with npm into {cached}" in proc.stdout
    # The pipeline ran to its end: the deployed model's predictions on screen.
    assert re.search(r"predicted", proc.stdout), out[-6000:]
    assert re.search(r"sample accuracy: [01]\.[0-9]{3} \(\d+/\d+\)", proc.stdout), out[-6000:]
    project = work / "my-project"
    assert (project / ".gitlab-ci-local" / "artifacts" / "mlops-eval-report" / "report" / "report.md").is_file()
    # The default local store, relative to the project: the train job's copy pulled the data
    # from, and pushed its run cache to, the project's own .dvc-storage/.
    train_log = (project / ".gitlab-ci-local" / "output" / "mlops-train.log").read_text()
    assert "remote 'data' (local): wrote url to .dvc/config.local" in train_log
    assert "trained 2 epochs on" in train_log
    assert "ci-gen run: image" not in train_log  # --host-env took: the job ran in the block's venv
    assert any((project / ".dvc-storage" / "models" / "runs").rglob("*"))
    shutil.rmtree(home, ignore_errors=True)  # a 1.6 GB venv; kept only when the test fails


@pytest.mark.slow
def test_init_example_without_the_dvc_extra_names_it(tmp_path):
    # A plain `pip install <clone>` (no extras): `init --example` says which extra it needs.
    home = tmp_path / "home"
    home.mkdir()
    env = _fresh_env(home)
    venv = home / "plain"
    subprocess.run(["python3", "-m", "venv", str(venv)], env=env, check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "-c",
                          str(REPO / "constraints.txt"), str(REPO)], env=env,
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    proc = subprocess.run([str(venv / "bin" / "ci-gen"), "init", "p", "--example", "fashion-mnist"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == "ci-gen: error: init --example needs dvc: pip install 'ci-gen[dvc]'\n"
    assert not (tmp_path / "p").exists()


# -- the prerequisites are named up front, before anything is written ------------------------

def _project(root: Path) -> Path:
    root.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for argv in (["init", "-q", "-b", "main"],
                 ["remote", "add", "origin", "https://gitlab.example.com/mlops/demo.git"]):
        subprocess.run(git + argv, cwd=root, check=True)
    (root / ".gitlab-ci.yml").write_text("job:\n  script: [echo hi]\n")
    subprocess.run(git + ["add", "-A"], cwd=root, check=True)
    subprocess.run(git + ["commit", "-qm", "init"], cwd=root, check=True)
    return root


def test_run_without_rsync_says_so_before_anything(tmp_path):
    project = _project(tmp_path / "p")
    bin_dir = tmp_path / "bin"  # git and nothing else: no rsync
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    before = tree_hash(project)
    proc = cli("run", str(project), env={"PATH": str(bin_dir)})
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == ("ci-gen: error: rsync not found: gitlab-ci-local copies each job's "
                           "files with it (Debian: apt-get install rsync; scripts/bootstrap.sh "
                           "installs it)\n")
    assert tree_hash(project) == before
