"""`ci-gen job commit-pointers` with real git: a bare repository as the remote, real races.

The token path pushes through real `git http-backend` (smart HTTP) on 127.0.0.1, which only
accepts GitLab's `oauth2:<token>` basic credentials.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ci_gen.errors import CiGenError
from ci_gen.gitlab.pointers import check_push, commit_pointers, is_pointer
from gitlab_fake import API, DEVELOPER, MAINTAINER, FakeGitLab, clean_env  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "glpat-push-Token-abcdef123456"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repos(tmp_path, clean_env):
    """remote.git (bare) with one commit; `ci`: a clone on a detached HEAD, as in a CI job."""
    clean_env.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    clean_env.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for k, v in {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
                 "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}.items():
        clean_env.setenv(k, v)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(remote), str(seed))
    files = {"README.md": "demo\n", "data.dvc": "outs:\n- md5: aaa\n  path: data\n",
             "dvc.lock": "schema: '2.0'\nstages: {}\n", "params.yaml": "epochs: 1\n",
             ".dvc/config": "[core]\n    remote = storage\n", "old.dvc": "outs: []\n"}
    for name, text in files.items():
        (seed / name).parent.mkdir(parents=True, exist_ok=True)
        (seed / name).write_text(text)
    git(seed, "add", ".")
    git(seed, "commit", "-qm", "initial")
    (seed / "README.md").write_text("demo project\n")
    git(seed, "commit", "-qam", "second")  # so that the shallow clone below cuts history
    git(seed, "push", "-q", "origin", "HEAD:main")
    ci = tmp_path / "ci"  # shallow, as GitLab's runners clone (GIT_DEPTH)
    git(tmp_path, "clone", "-q", "--depth", "1", remote.as_uri(), str(ci))
    assert git(ci, "rev-parse", "--is-shallow-repository") == "true"
    git(ci, "checkout", "-q", "--detach", "HEAD")
    for k, v in {"CI_COMMIT_BRANCH": "main", "CI_GEN_PUSH_URL": str(remote),
                 "CI_GEN_PUSH_BACKOFF": "0", "GITLAB_USER_NAME": "Pat Pipeline",
                 "GITLAB_USER_EMAIL": "pat@example.com",
                 "CI_COMMIT_SHORT_SHA": git(ci, "rev-parse", "--short", "HEAD")}.items():
        clean_env.setenv(k, v)
    return {"remote": remote, "seed": seed, "ci": ci, "base": git(ci, "rev-parse", "HEAD")}


def change_pointers(ci: Path) -> None:
    (ci / "data.dvc").write_text("outs:\n- md5: bbb\n  path: data\n")
    (ci / "dvc.lock").write_text("schema: '2.0'\nstages: {train: {}}\n")
    (ci / "models").mkdir()
    (ci / "models" / "model.dvc").write_text("outs:\n- md5: ccc\n  path: model\n")
    (ci / "params.yaml").write_text("epochs: 2\n")           # not a pointer
    (ci / ".dvc" / "config").write_text("[core]\n    remote = other\n")  # not a pointer
    (ci / "junk.txt").write_text("x\n")


def other_pushes(seed: Path, name: str, text: str = "x\n") -> str:
    git(seed, "pull", "-q", "--rebase", "origin", "main")
    (seed / name).write_text(text)
    git(seed, "add", name)
    git(seed, "commit", "-qm", f"other: {name}")
    git(seed, "push", "-q", "origin", "HEAD:main")
    return git(seed, "rev-parse", "HEAD")


def run(ci: Path, **kwargs) -> str:
    out = io.StringIO()
    commit_pointers(ci, out=out, **kwargs)
    return out.getvalue()


def remote_log(remote: Path) -> list[str]:
    return git(remote, "log", "--format=%H %s", "main").splitlines()


def test_commits_only_pointer_files_on_the_branch_and_pushes(repos):
    ci, remote = repos["ci"], repos["remote"]
    change_pointers(ci)
    out = run(ci)
    assert "committed 3 pointer files on main: data.dvc, dvc.lock, models/model.dvc" in out
    head = git(remote, "rev-parse", "main")
    assert git(ci, "rev-parse", "HEAD") == head
    assert git(ci, "symbolic-ref", "--short", "HEAD") == "main"  # no longer detached
    assert git(remote, "log", "-1", "--format=%s", "main") == \
        f"ci-gen: update DVC pointers for {os.environ['CI_COMMIT_SHORT_SHA']} [skip ci]"
    assert git(remote, "log", "-1", "--format=%an <%ae>|%cn", "main") == \
        "Pat Pipeline <pat@example.com>|Pat Pipeline"
    changed = git(remote, "diff", "--name-only", "main~1", "main").splitlines()
    assert changed == ["data.dvc", "dvc.lock", "models/model.dvc"]
    assert git(remote, "rev-parse", "main~1") == repos["base"]
    # everything else is left as it was: modified, untracked, nothing staged
    assert git(ci, "diff", "--name-only").splitlines() == [".dvc/config", "params.yaml"]
    assert git(ci, "ls-files", "--others", "--exclude-standard") == "junk.txt"
    assert git(ci, "diff", "--cached", "--name-only") == ""


def test_nothing_changed_says_so_through_the_cli(repos):
    ci, remote = repos["ci"], repos["remote"]
    (ci / "params.yaml").write_text("epochs: 3\n")
    proc = subprocess.run([sys.executable, "-m", "ci_gen", "job", "commit-pointers"], cwd=ci,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "no DVC pointer changes (*.dvc, dvc.lock) to commit" in proc.stdout
    assert git(remote, "rev-parse", "main") == repos["base"]
    assert git(ci, "rev-parse", "HEAD") == repos["base"]


def test_custom_message_gets_skip_ci_and_deletions_count(repos):
    ci, remote = repos["ci"], repos["remote"]
    (ci / "old.dvc").unlink()
    out = run(ci, message="Update model pointers")
    assert "committed 1 pointer file on main: old.dvc" in out
    assert git(remote, "log", "-1", "--format=%s", "main") == "Update model pointers [skip ci]"
    assert git(remote, "ls-tree", "--name-only", "main", "old.dvc") == ""


def test_concurrent_push_is_rebased_and_retried_without_force(repos):
    ci, remote = repos["ci"], repos["remote"]
    change_pointers(ci)
    theirs = other_pushes(repos["seed"], "README.md", "someone else was faster\n")
    out = run(ci)
    assert "push rejected, main moved on: fetching and rebasing (attempt 2 of 5)" in out
    assert "(attempt 2)" in out
    log = remote_log(remote)
    assert len(log) == 4
    assert log[0].endswith("[skip ci]") and log[1] == f"{theirs} other: README.md"
    assert log[2].startswith(repos["base"])
    assert git(remote, "rev-list", "--merges", "main") == ""   # linear history
    assert git(remote, "merge-base", "--is-ancestor", theirs, "main") == ""  # not overwritten
    assert (ci / "README.md").read_text() == "someone else was faster\n"


def _race_hook(ci: Path, seed: Path, times: int, tmp: Path) -> None:
    """A pre-push hook in the CI clone: another clone pushes while our push is in flight."""
    hook = ci / ".git" / "hooks" / "pre-push"
    hook.write_text(f"""#!/bin/sh
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
n=$(cat {tmp}/race-count 2>/dev/null || echo 0)
if [ "$n" -lt {times} ]; then
  echo $((n + 1)) > {tmp}/race-count
  git -C {seed} pull -q --rebase origin main
  echo "race $n" >> {seed}/README.md
  git -C {seed} commit -qam "other: race $n"
  git -C {seed} push -q origin HEAD:main
fi
exit 0
""")
    hook.chmod(0o755)


def test_push_racing_another_push_mid_flight_retries(repos, tmp_path):
    ci, remote = repos["ci"], repos["remote"]
    change_pointers(ci)
    _race_hook(ci, repos["seed"], 1, tmp_path)
    out = run(ci)
    assert "(attempt 2)" in out
    log = remote_log(remote)
    assert log[0].endswith("[skip ci]") and log[1].endswith("other: race 0")
    assert git(remote, "rev-list", "--merges", "main") == ""


def test_a_branch_that_keeps_moving_fails_after_bounded_attempts(repos, tmp_path):
    ci, remote = repos["ci"], repos["remote"]
    change_pointers(ci)
    _race_hook(ci, repos["seed"], 100, tmp_path)
    with pytest.raises(CiGenError, match="push to main still rejected after 3 attempts"):
        run(ci, max_attempts=3)
    log = remote_log(remote)
    assert [line.split(" ", 1)[1] for line in log[:3]] == \
        ["other: race 2", "other: race 1", "other: race 0"]
    assert not any("[skip ci]" in line for line in log)
    assert (tmp_path / "race-count").read_text().strip() == "3"


def test_conflicting_pointer_change_stops_cleanly(repos):
    ci, remote = repos["ci"], repos["remote"]
    change_pointers(ci)
    theirs = other_pushes(repos["seed"], "data.dvc", "outs:\n- md5: zzz\n  path: data\n")
    with pytest.raises(CiGenError, match=r"cannot rebase onto the new main: data\.dvc changed "
                                         r"there too"):
        run(ci)
    assert git(remote, "rev-parse", "main") == theirs
    assert not (ci / ".git" / "rebase-merge").exists()
    assert not (ci / ".git" / "rebase-apply").exists()


def test_detached_head_without_branch_is_an_error(repos, clean_env):
    clean_env.delenv("CI_COMMIT_BRANCH")
    change_pointers(repos["ci"])
    with pytest.raises(CiGenError, match="HEAD is detached and CI_COMMIT_BRANCH is unset"):
        run(repos["ci"])


def test_without_a_token_nothing_is_committed(repos, clean_env):
    ci = repos["ci"]
    clean_env.delenv("CI_GEN_PUSH_URL")
    clean_env.setenv("CI_JOB_TOKEN", "job-token-0000")
    change_pointers(ci)
    with pytest.raises(CiGenError, match="only CI_JOB_TOKEN is set, and it cannot push"):
        run(ci)
    assert git(ci, "rev-parse", "HEAD") == repos["base"]


def test_is_pointer():
    assert is_pointer("data.dvc") and is_pointer("a/b/model.dvc") and is_pointer("dvc.lock")
    assert not is_pointer(".dvc/config") and not is_pointer(".dvc") and not is_pointer("x.dvc.bak")


# --- over HTTP, with the token ---------------------------------------------------------

class _GitHttp(BaseHTTPRequestHandler):
    """Real `git http-backend` behind GitLab-style basic auth (user oauth2, password token)."""

    root: Path
    seen_auth: list[str]

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def _serve(self):
        auth = self.headers.get("Authorization", "")
        self.seen_auth.append(auth)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if auth != "Basic " + base64.b64encode(f"oauth2:{TOKEN}".encode()).decode():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="GitLab"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root),
               "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path, "QUERY_STRING": query,
               "REQUEST_METHOD": self.command, "REMOTE_USER": "oauth2",
               "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
               "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def git_http(repos, tmp_path):
    root = tmp_path / "srv"
    (root / "mlops").mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(repos["remote"]),
                    str(root / "mlops" / "demo.git")], check=True)
    handler = type("H", (_GitHttp,), {"root": root, "seen_auth": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "handler": handler,
           "bare": root / "mlops" / "demo.git"}
    server.shutdown()
    server.server_close()


def test_pushes_over_http_with_the_token_never_stored_or_shown(repos, git_http, clean_env):
    ci = repos["ci"]
    clean_env.delenv("CI_GEN_PUSH_URL")
    clean_env.setenv("CI_SERVER_URL", git_http["url"])
    clean_env.setenv("CI_PROJECT_PATH", "mlops/demo")
    clean_env.setenv("GITLAB_API_TOKEN", TOKEN)
    change_pointers(ci)
    out = run(ci)
    assert f"pushed {git(ci, 'rev-parse', '--short', 'HEAD')} to main at " \
           f"{git_http['url']}/mlops/demo.git" in out
    assert git(git_http["bare"], "log", "-1", "--format=%s", "main").endswith("[skip ci]")
    assert TOKEN not in out
    assert TOKEN not in (ci / ".git" / "config").read_text()
    basic = base64.b64encode(f"oauth2:{TOKEN}".encode()).decode()
    assert basic not in (ci / ".git" / "config").read_text()
    assert set(git_http["handler"].seen_auth) == {f"Basic {basic}"}


def test_wrong_token_over_http_is_one_line_without_it(repos, git_http, clean_env):
    ci = repos["ci"]
    wrong = "glpat-wrong-push-token-0000"
    clean_env.delenv("CI_GEN_PUSH_URL")
    clean_env.setenv("CI_SERVER_URL", git_http["url"])
    clean_env.setenv("CI_PROJECT_PATH", "mlops/demo")
    clean_env.setenv("REPO_TOKEN", wrong)
    change_pointers(ci)
    with pytest.raises(CiGenError) as info:
        run(ci)
    msg = str(info.value)
    assert msg.startswith("push to main failed: the token cannot push here") and "\n" not in msg
    assert wrong not in msg
    assert git(git_http["bare"], "rev-parse", "main") == repos["base"]


# --- `--check`: before `dvc push`, with nothing pushed --------------------------------------

def _check_cli(ci: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ci_gen", "job", "commit-pointers", "--check"],
                          cwd=ci, env=env, capture_output=True, text=True, timeout=60)


def _http_env(git_http, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI_GEN_PUSH_URL"}
    env.update(CI_SERVER_URL=git_http["url"], CI_PROJECT_PATH="mlops/demo", **extra)
    return env


def test_check_passes_with_a_token_that_can_push_and_pushes_nothing(repos, git_http):
    ci = repos["ci"]
    change_pointers(ci)
    proc = _check_cli(ci, _http_env(git_http, GITLAB_API_TOKEN=TOKEN))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (f"ci-gen: commit-back check passed: the token can push to main at "
                           f"{git_http['url']}/mlops/demo.git\n")
    assert TOKEN not in proc.stdout + proc.stderr
    assert git(git_http["bare"], "rev-parse", "main") == repos["base"]  # nothing pushed
    assert git(ci, "rev-parse", "HEAD") == repos["base"]  # nothing committed
    assert git_http["handler"].seen_auth  # the server was asked, with the token


@pytest.mark.parametrize("token_env, reason", [
    ({"GITLAB_API_TOKEN": "glpat-wrong-push-token-0000"}, "the token cannot push here"),
    ({"CI_JOB_TOKEN": "job-token-0000"}, "only CI_JOB_TOKEN is set, and it cannot push"),
    ({}, "no GitLab token (GITLAB_API_TOKEN or REPO_TOKEN) to push to the repository"),
])
def test_check_without_a_usable_token_fails_in_one_line(repos, git_http, token_env, reason):
    ci = repos["ci"]
    change_pointers(ci)
    env = _http_env(git_http, **token_env)
    for k in ("GITLAB_API_TOKEN", "REPO_TOKEN", "CI_JOB_TOKEN"):
        if k not in token_env:
            env.pop(k, None)
    proc = _check_cli(ci, env)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and reason in lines[0], proc.stderr
    assert "glpat-wrong" not in proc.stderr
    assert git(git_http["bare"], "rev-parse", "main") == repos["base"]
    assert git(ci, "rev-parse", "HEAD") == repos["base"]


def test_check_passes_when_the_branch_moved_on(repos):
    """The real push rebases onto a moved branch; the check must not stop the job for that."""
    other_pushes(repos["seed"], "other.txt")
    out = io.StringIO()
    check_push(repos["ci"], out=out)
    assert "commit-back check passed" in out.getvalue()


def test_check_without_git_says_so(repos, tmp_path):
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    env = {**os.environ, "PATH": str(bare_path)}
    with pytest.raises(CiGenError, match="git is not installed in this job's image"):
        check_push(repos["ci"], env=env)


@pytest.mark.parametrize("role, protected_for, passes", [
    (DEVELOPER, MAINTAINER, False),   # GitLab's default: the default branch, Maintainers push
    (MAINTAINER, MAINTAINER, True),
    (DEVELOPER, DEVELOPER, True),     # "Allowed to push: Developers + Maintainers"
    (MAINTAINER, 0, False),           # "No one"
])
def test_check_sees_a_protected_branch_the_token_cannot_push_to(repos, git_http, role, protected_for, passes):
    """`git push --dry-run` never meets branch protection (GitLab checks it at the real push,
    lib/gitlab/git_access.rb): the check asks the branches API for `can_push` first."""
    fake = FakeGitLab(token=TOKEN).start()
    try:
        fake.add_project(5, "mlops/demo")
        fake.members[5][fake.user["id"]] = role
        fake.protected[5]["main"] = protected_for
        env = _http_env(git_http, GITLAB_API_TOKEN=TOKEN, CI_API_V4_URL=fake.url + API,
                        CI_PROJECT_ID="5", NO_PROXY="127.0.0.1")
        out = io.StringIO()
        if passes:
            check_push(repos["ci"], env=env, out=out)
            assert "commit-back check passed" in out.getvalue()
        else:
            with pytest.raises(CiGenError) as info:
                check_push(repos["ci"], env=env, out=out)
            msg = str(info.value)
            who = "Developer" if role == DEVELOPER else "Maintainer"
            assert msg == (f"commit-back cannot push to main at {git_http['url']}/mlops/demo.git: main is a "
                           f"protected branch and the token's role ({who}) may not push to it; allow that role "
                           "under Settings > Repository > Protected branches, or give the project access token "
                           "a role that may push (Maintainer)")
            assert TOKEN not in msg
        assert fake.requests_to("GET", r"/repository/branches/main$")
    finally:
        fake.stop()
    assert git(git_http["bare"], "rev-parse", "main") == repos["base"]  # nothing pushed
