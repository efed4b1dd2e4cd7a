"""`ci-gen init --example` and git: only its own files are staged or committed, never the
user's; the user's identity; refusals before anything is written (issue 9, section 2).

Real git in temporary repositories, with a git identity of the test's own (GIT_CONFIG_GLOBAL)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from ci_gen import components as desc
from ci_gen.scaffold import example as project_setup, plan as scaffold
from support.cli import cli
from support.trees import tree_hash

SECRET = "sentinel-secret-5b1f0c"
USER = ("Ada Lovelace", "ada@example.com")


@pytest.fixture
def git_env(tmp_path):
    """A git identity of the test's own, and nothing from the machine's git configuration."""
    cfg = tmp_path / "gitconfig"
    cfg.write_text(f"[user]\n\tname = {USER[0]}\n\temail = {USER[1]}\n[init]\n\tdefaultBranch = main\n")
    return {"GIT_CONFIG_GLOBAL": str(cfg), "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd, *args, env=None, check=True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0 or not check, proc.stderr
    return proc.stdout


def own_files() -> set[str]:
    """Every file `init --example` writes in a fresh project (what it may stage or commit)."""
    plan = scaffold.plan("fashion-mnist", scaffold.DEFAULT_TEMPLATES_PROJECT, "0.1.0", "component")
    return {*plan.files, "train_data.dvc", ".dvc/config", ".dvc/.gitignore", ".dvcignore"}


def commit_files(repo, rev="HEAD", env=None) -> set[str]:
    return set(git(repo, "diff-tree", "--root", "--no-commit-id", "--name-only", "-r", rev, env=env).split())


def users_repo(path, env) -> None:
    """A repository with history, a dirty tracked file, a staged change and an untracked .env."""
    path.mkdir()
    git(path, "init", "-q", env=env)
    (path / "app.py").write_text("print('v1')\n")
    (path / "notes.txt").write_text("one\n")
    git(path, "add", ".", env=env)
    git(path, "commit", "-q", "-m", "the user's work", env=env)
    (path / "app.py").write_text("print('v2, not committed')\n")
    (path / "notes.txt").write_text("one\ntwo, staged\n")
    git(path, "add", "notes.txt", env=env)
    (path / ".env").write_text(f"API_TOKEN={SECRET}\n")


def users_state(repo, env) -> dict:
    return {
        "status": git(repo, "status", "--porcelain", "--", "app.py", "notes.txt", ".env", env=env),
        "staged": git(repo, "diff", "--cached", "--", "notes.txt", env=env),
        "app": (repo / "app.py").read_text(),
    }


def assert_secret_untouched(repo, env) -> None:
    assert git(repo, "status", "--porcelain", "--", ".env", env=env) == "?? .env\n"
    assert ".env" not in git(repo, "ls-files", "--stage", env=env)
    history = git(repo, "log", "--all", "-p", "--format=%H", env=env)
    assert SECRET not in history and SECRET not in git(repo, "diff", "--cached", env=env)


@pytest.mark.slow
def test_new_repository_commits_only_cigen_files_as_the_user(tmp_path, git_env):
    """A folder (not a repository) that holds a .env: init creates the repository and commits
    its own files, by the user's identity; the .env stays untracked and out of the commit."""
    target = tmp_path / "p"
    target.mkdir()
    (target / ".env").write_text(f"API_TOKEN={SECRET}\n")
    res = cli("init", str(target), "--example", "fashion-mnist", env=git_env)
    assert res.returncode == 0, res.stderr
    assert "[6/6] first commit" in res.stdout and "next: cd" in res.stdout
    assert git(target, "rev-list", "--count", "HEAD", env=git_env).strip() == "1"
    assert commit_files(target, env=git_env) == own_files()
    assert git(target, "log", "-1", "--format=%an <%ae>", env=git_env).strip() == f"{USER[0]} <{USER[1]}>"
    assert git(target, "status", "--porcelain", env=git_env) == "?? .env\n"
    assert_secret_untouched(target, git_env)


@pytest.mark.slow
def test_new_repository_without_identity_says_who_committed(tmp_path):
    empty = tmp_path / "empty-gitconfig"
    empty.write_text("")
    env = {"GIT_CONFIG_GLOBAL": str(empty), "GIT_CONFIG_NOSYSTEM": "1"}
    target = tmp_path / "p"
    res = cli("init", str(target), "--example", "fashion-mnist", env=env)
    assert res.returncode == 0, res.stderr
    assert "no git identity is configured: committed as ci-gen <ci-gen@localhost>" in res.stdout
    assert git(target, "log", "-1", "--format=%an <%ae>", env=env).strip() == "ci-gen <ci-gen@localhost>"
    assert commit_files(target, env=env) == own_files()


@pytest.mark.slow
def test_existing_repository_stages_only_cigen_files_and_prints_the_commit(tmp_path, git_env):
    repo = tmp_path / "work"
    users_repo(repo, git_env)
    head = git(repo, "rev-parse", "HEAD", env=git_env)
    before = users_state(repo, git_env)

    res = cli("init", str(repo), "--example", "fashion-mnist", env=git_env)
    assert res.returncode == 0, res.stderr
    assert "nothing committed" in res.stdout and "first: commit ci-gen's files" in res.stdout
    assert git(repo, "rev-parse", "HEAD", env=git_env) == head  # no commit by default
    assert users_state(repo, git_env) == before
    assert_secret_untouched(repo, git_env)
    staged = set(git(repo, "diff", "--cached", "--name-only", env=git_env).split())
    assert staged == own_files() | {"notes.txt"}

    # The printed command, run as printed, commits ci-gen's files and nothing of the user's.
    line = next(ln for ln in res.stdout.splitlines() if "commit them with: " in ln)
    command = shlex.split(line.split("commit them with: ", 1)[1])
    assert command[:2] == ["git", "commit"] and "notes.txt" not in command
    git(repo, *command[1:], env=git_env)
    assert git(repo, "rev-parse", "HEAD~1", env=git_env) == head
    assert commit_files(repo, env=git_env) == own_files()
    assert users_state(repo, git_env) == before
    assert_secret_untouched(repo, git_env)


@pytest.mark.slow
def test_existing_repository_commit_flag_and_force(tmp_path, git_env):
    """--commit: one new commit of exactly ci-gen's files, by the user; a committed file the
    example also has (train.py) is refused without --force (nothing written), replaced with it;
    the user's README.md is never replaced: the example's goes to README.ci-gen.md."""
    repo = tmp_path / "work"
    users_repo(repo, git_env)
    (repo / "README.md").write_text("# the user's project\n")
    (repo / "train.py").write_text("print('my training')\n")
    git(repo, "add", "README.md", "train.py", env=git_env)
    git(repo, "commit", "-q", "-m", "readme", "--", "README.md", "train.py", env=git_env)
    head = git(repo, "rev-parse", "HEAD", env=git_env)
    before, tree = users_state(repo, git_env), tree_hash(repo)

    refused = cli("init", str(repo), "--example", "fashion-mnist", "--commit", env=git_env)
    assert refused.returncode == 1 and "train.py already exist(s); use --force" in refused.stderr
    assert tree_hash(repo) == tree

    res = cli("init", str(repo), "--example", "fashion-mnist", "--commit", "--force", env=git_env)
    assert res.returncode == 0, res.stderr
    assert git(repo, "rev-parse", "HEAD~1", env=git_env) == head
    assert commit_files(repo, env=git_env) == own_files() - {"README.md"} | {"README.ci-gen.md"}
    assert (repo / "README.md").read_text() == "# the user's project\n"
    assert git(repo, "log", "-1", "--format=%an <%ae>", env=git_env).strip() == f"{USER[0]} <{USER[1]}>"
    assert users_state(repo, git_env) == before  # the staged change is still staged, not committed
    assert_secret_untouched(repo, git_env)
    assert git(repo, "status", "--porcelain", env=git_env) == " M app.py\nM  notes.txt\n?? .env\n"


@pytest.mark.slow
def test_example_force_leaves_readme_env_and_remotes_byte_identical(tmp_path, git_env):
    """Issue 22, acceptance 3: `init --example --force` in a repository with a README.md, a
    .env and no remote. Also: each .gitignore entry once, and the counts init prints agree."""
    repo = tmp_path / "work"
    repo.mkdir()
    git(repo, "init", "-q", env=git_env)
    (repo / "README.md").write_bytes(b"# mine\r\nkept byte for byte\n")
    git(repo, "add", "README.md", env=git_env)
    git(repo, "commit", "-q", "-m", "readme", env=git_env)
    (repo / ".env").write_bytes(f"API_TOKEN={SECRET}\n".encode())
    before = {"README.md": (repo / "README.md").read_bytes(), ".env": (repo / ".env").read_bytes(),
              "remotes": git(repo, "remote", "-v", env=git_env)}

    res = cli("init", str(repo), "--example", "fashion-mnist", "--force", env=git_env)
    assert res.returncode == 0, res.stderr
    after = {"README.md": (repo / "README.md").read_bytes(), ".env": (repo / ".env").read_bytes(),
             "remotes": git(repo, "remote", "-v", env=git_env)}
    assert after == before and before["remotes"] == ""
    shipped = scaffold.example_root("fashion-mnist") / "README.md"
    assert (repo / "README.ci-gen.md").read_bytes() == shipped.read_bytes()
    assert "README.md is yours and stays as it is: the example's README is README.ci-gen.md" in res.stdout
    assert "first: add your GitLab project as origin" in res.stdout
    assert_secret_untouched(repo, git_env)

    entries = [ln.strip().strip("/") for ln in (repo / ".gitignore").read_text().splitlines()
               if ln.strip() and not ln.startswith("#")]
    assert sorted(entries) == sorted(set(entries)), entries

    staged = set(git(repo, "diff", "--cached", "--name-only", env=git_env).split())
    wrote = int(re.search(r"^wrote (\d+) files to ", res.stdout, re.M).group(1))
    counts = re.search(r"staged the (\d+) files init wrote and (\d+) DVC wrote \(([^)]*)\)", res.stdout)
    assert counts, res.stdout
    assert int(counts.group(1)) == wrote and wrote + int(counts.group(2)) == len(staged)
    assert set(counts.group(3).split(", ")) == staged - set(scaffold.plan(
        "fashion-mnist", scaffold.DEFAULT_TEMPLATES_PROJECT, "0.1.0", "component").files) - {"README.ci-gen.md"}


@pytest.mark.slow
def test_plain_init_then_example_is_not_refused_for_inits_own_files(tmp_path, git_env):
    """A plain `init` touches no git; `init --example` after it replaces init's own uncommitted
    files (exactly what the plain init wrote) without --force, and refuses once one is edited."""
    repo = tmp_path / "work"
    users_repo(repo, git_env)
    index = (repo / ".git" / "index").read_bytes()
    plain = cli("init", str(repo), env=git_env)
    assert plain.returncode == 0, plain.stderr
    assert (repo / ".git" / "index").read_bytes() == index  # nothing staged, as --help says
    assert "touches no git" in " ".join(cli("init", "--help").stdout.split())

    res = cli("init", str(repo), "--example", "fashion-mnist", env=git_env)
    assert res.returncode == 0, res.stderr
    assert "gate-metric: accuracy" in (repo / ".gitlab-ci.yml").read_text()  # the example's pipeline
    staged = set(git(repo, "diff", "--cached", "--name-only", env=git_env).split())
    assert {".gitlab-ci.yml", ".gitignore"} <= staged

    # The same in a folder that is no repository yet: init's own files need no --force.
    folder = tmp_path / "folder"
    assert cli("init", str(folder), env=git_env).returncode == 0
    again = cli("init", str(folder), "--example", "fashion-mnist", env=git_env)
    assert again.returncode == 0, again.stderr
    assert commit_files(folder, env=git_env) == own_files()

    other = tmp_path / "other"
    users_repo(other, git_env)
    assert cli("init", str(other), env=git_env).returncode == 0
    with open(other / ".gitlab-ci.yml", "a") as f:
        f.write("# my edit\n")
    edited = cli("init", str(other), "--example", "fashion-mnist", "--force", env=git_env)
    assert edited.returncode == 1 and "uncommitted changes at paths init writes: .gitlab-ci.yml" in edited.stderr


def _repo_with(tmp_path, git_env, setup) -> object:
    repo = tmp_path / "work"
    users_repo(repo, git_env)
    setup(repo, git_env)
    return repo


@pytest.mark.parametrize("setup, args, message", [
    # an uncommitted pipeline file is the user's work: refused even with --force
    (lambda r, env: (r / ".gitlab-ci.yml").write_text("stages: [x]\n"), ["--force"],
     "uncommitted changes at paths init writes: .gitlab-ci.yml"),
    # an untracked .gitignore would be staged along with ci-gen's lines
    (lambda r, env: (r / ".gitignore").write_text("*.log\n"), [], "uncommitted changes at paths init writes: .gitignore"),
    # a DVC project of the user's, committed: its remotes would be replaced
    (lambda r, env: (r / ".dvc").mkdir() or (r / ".dvc" / "config").write_text("")
     or git(r, "add", ".dvc/config", env=env) or git(r, "commit", "-qm", "dvc", "--", ".dvc/config", env=env),
     [], ".dvc/config already exist(s); use --force"),
])
def test_conflicts_are_refused_before_anything_is_written(tmp_path, git_env, setup, args, message):
    repo = _repo_with(tmp_path, git_env, setup)
    before, index = tree_hash(repo), (repo / ".git" / "index").read_bytes()
    res = cli("init", str(repo), "--example", "fashion-mnist", *args, env=git_env)
    assert res.returncode == 1 and message in res.stderr, res.stderr
    assert "nothing was written" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert tree_hash(repo) == before and (repo / ".git" / "index").read_bytes() == index


def test_commit_without_identity_is_refused_before_writing(tmp_path, git_env):
    repo = _repo_with(tmp_path, git_env, lambda r, env: None)
    empty = tmp_path / "empty-gitconfig"
    empty.write_text("")
    before = tree_hash(repo)
    res = cli("init", str(repo), "--example", "fashion-mnist", "--commit",
              env={"GIT_CONFIG_GLOBAL": str(empty), "GIT_CONFIG_NOSYSTEM": "1"})
    assert res.returncode == 1 and "--commit commits with your git identity and none is set" in res.stderr
    assert tree_hash(repo) == before


@pytest.mark.slow
def test_failure_in_an_existing_repository_puts_everything_back(tmp_path, git_env):
    """The data push fails (a remote that cannot be created): files, index and git remotes
    are as before, and the error is DVC's own line, not its support footer."""
    repo = _repo_with(tmp_path, git_env, lambda r, env: None)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the remote's directory would go\n")
    index = (repo / ".git" / "index").read_bytes()
    before = {p.relative_to(repo).as_posix(): p.read_bytes() for p in repo.rglob("*")
              if p.is_file() and ".git" not in p.relative_to(repo).parts}
    # Without the dev machines' PYTHONDONTWRITEBYTECODE: init imports the example's data
    # module from the repository, and must leave no __pycache__ there.
    res = cli("init", str(repo), "--example", "fashion-mnist", "--remote", str(blocker / "store"),
              env={**git_env, "PYTHONDONTWRITEBYTECODE": None})
    assert res.returncode == 1
    assert "dvc push of the training data failed:" in res.stderr and "Not a directory" in res.stderr, res.stderr
    assert "Having any troubles" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    after = {p.relative_to(repo).as_posix(): p.read_bytes() for p in repo.rglob("*")
             if p.is_file() and ".git" not in p.relative_to(repo).parts}
    assert after == before
    assert (repo / ".git" / "index").read_bytes() == index
    assert git(repo, "remote", env=git_env) == ""


def test_missing_dvc_plugin_is_one_line_before_anything_is_written(tmp_path):
    """A real import failure of dvc_s3 in the ci-gen process: refused naming the pip extra."""
    target = tmp_path / "p"
    code = ("import sys; sys.modules['dvc_s3'] = None\n"
            "from ci_gen.cli import main\n"
            f"sys.exit(main(['init', {str(target)!r}, '--example', 'fashion-mnist', '--remote', 's3://bucket/x']))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "ci-gen: error: --remote s3://...: DVC's S3 plugin dvc-s3 cannot be imported (import of dvc_s3 "
        "halted; None in sys.modules); pip install 'ci-gen[dvc]' (or pip install dvc-s3)"]
    assert not target.exists()


def test_dvc_error_line_is_dvcs_error_not_its_footer(tmp_path):
    """A real DVC failure (an S3 remote without its plugin) through the shared helper."""
    from ci_gen.dvcrepo import tool as dvctool

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "remote", "add", "-d", "s", "s3://bucket/x"], cwd=tmp_path,
                   check=True, capture_output=True)
    code = "import sys; sys.modules['dvc_s3'] = None\nfrom dvc.cli import main\nsys.exit(main(['push']))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "Having any troubles?" in proc.stderr  # the footer is there
    line = dvctool.error_line(proc.stderr, proc.returncode)
    assert line.startswith("unexpected error - s3 is supported, but requires 'dvc-s3' to be installed"), line
    assert dvctool.error_line("\nHaving any troubles? Hit us up at https://dvc.org/support\n", 3) == "exit code 3"


def test_remote_urls_inside_the_project_are_relative(tmp_path):
    project = tmp_path / "p"
    assert project_setup.remote_urls(project, None) == (".dvc-storage/data", ".dvc-storage/models")
    assert project_setup.remote_urls(project, str(project / "store")) == ("store/data", "store/models")
    assert project_setup.remote_urls(project, str(tmp_path / "shared")) == (
        f"{tmp_path}/shared/data", f"{tmp_path}/shared/models")


# -- section 3: a scaffolded project is one you can clone and push ----------------------------

@pytest.mark.slow
def test_clone_with_the_same_layout_pulls_the_data(tmp_path, git_env):
    """.dvc/config holds no path of the machine it was made on: a clone elsewhere, with the
    local store copied along (same relative layout), pulls the training data."""
    import shutil

    project = tmp_path / "made-here"
    assert cli("init", str(project), "--example", "fashion-mnist", env=git_env).returncode == 0
    config = (project / ".dvc" / "config").read_text()
    assert str(tmp_path) not in config and "url = ../.dvc-storage/data" in config
    clone = tmp_path / "elsewhere" / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone), env=git_env)
    shutil.copytree(project / ".dvc-storage", clone / ".dvc-storage")
    pull = subprocess.run([sys.executable, "-m", "dvc", "pull", "train_data.dvc"], cwd=clone, capture_output=True, text=True)
    assert pull.returncode == 0, pull.stderr
    for name in project_setup.DATA_FILES:
        assert (clone / "train_data" / name).read_bytes() == (project / "train_data" / name).read_bytes()

    # A job's copy during `ci-gen run` (tracked files only, no store): `ci-gen job dvc-auth`
    # points the relative remotes at the real project when CI_GEN_DVC_ROOT names it.
    job = tmp_path / "job-copy"
    git(tmp_path, "clone", "-q", str(project), str(job), env=git_env)
    pull = [sys.executable, "-m", "dvc", "pull", "train_data.dvc"]
    alone = subprocess.run(pull, cwd=job, capture_output=True, text=True)
    assert alone.returncode != 0  # a runner's view: the local store is not there
    bad = cli("job", "dvc-auth", cwd=job, env={"CI_GEN_DVC_ROOT": "relative/dir"})
    assert bad.returncode == 1 and "CI_GEN_DVC_ROOT must be the absolute path" in bad.stderr
    auth = cli("job", "dvc-auth", cwd=job, env={"CI_GEN_DVC_ROOT": str(project)})
    assert auth.returncode == 0 and "remote 'data' (local): wrote url to .dvc/config.local" in auth.stdout
    assert f"url = {project}/.dvc-storage/data" in (job / ".dvc" / "config.local").read_text()
    assert subprocess.run(pull, cwd=job, capture_output=True, text=True).returncode == 0
    assert (job / "train_data" / project_setup.DATA_FILES[0]).is_file()


DVC_CONFIG = """\
[core]
    remote = models
['remote "data"']
    url = {data}
['remote "models"']
    url = {models}
"""


@pytest.mark.parametrize("data, models, warned", [
    ("../.dvc-storage/data", "../.dvc-storage/models", ["'data' (../.dvc-storage/data)", "'models'"]),
    ("s3://bucket/p/data", "/srv/dvc/models", ["'models' (/srv/dvc/models)"]),
    ("s3://bucket/p/data", "oss://bucket/p/models", []),
])
def test_lint_warns_once_about_local_dvc_remotes(tmp_path, data, models, warned):
    assert cli("init", str(tmp_path)).returncode == 0
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text(DVC_CONFIG.format(data=data, models=models))
    res = cli("lint", str(tmp_path / ".gitlab-ci.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    warnings = [ln for ln in res.stdout.splitlines() if ": warning: " in ln]
    if not warned:
        assert warnings == [] and res.stdout.strip().endswith(f"({len(desc.INCLUDED) + 3} jobs, 1 document)")
        return
    assert len(warnings) == 1 and warnings[0].startswith(f"{tmp_path}/.dvc/config:")
    assert all(w in warnings[0] for w in warned)
    first = "models" if data.startswith("s3://") else "data"
    assert ("'data'" in warnings[0]) == (first == "data")  # a reachable remote is not named
    assert f"`dvc remote modify {first} url s3://BUCKET/PREFIX/{first}`" in warnings[0]
    assert res.stdout.strip().endswith("1 warning(s)")
