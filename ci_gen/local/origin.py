"""The GitLab side a local run pushes to and diffs against, stood in for locally.

- `LocalOrigin`: a bare repository under .gitlab-ci-local/ playing the GitLab project
  (`CI_GEN_PUSH_URL`);
- `prepare_target_ref`: the `origin/<default branch>` ref gitlab-ci-local diffs against for
  `rules: changes`.
"""

from __future__ import annotations

from ci_gen.errors import CiGenError
from ci_gen.gitcmd import git
from ci_gen.local.project import ProjectContext


class LocalOrigin:
    """A bare repository under .gitlab-ci-local/ that plays the GitLab project's role.

    Before a run, HEAD is pushed to it as the branch the pipeline runs for (as a real
    `git push` would be); jobs that push back (dvc-upload's pointer commit) push there through
    CI_GEN_PUSH_URL. It never touches the project's own remotes or branches.
    """

    def __init__(self, ctx: ProjectContext) -> None:
        self.ctx = ctx
        self.path = ctx.state_dir / "origin.git"

    def ensure(self) -> None:
        if not (self.path / "HEAD").is_file():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            git(self.ctx.root, "init", "-q", "--bare", str(self.path))
            git(self.path, "symbolic-ref", "HEAD", f"refs/heads/{self.ctx.default_branch}")

    def publish(self, local_ref: str, branch: str) -> None:
        # Forced: the bare repo mirrors "what was pushed for this run"; it holds nothing else.
        git(self.ctx.root, "push", "-q", "--force", str(self.path), f"{local_ref}:refs/heads/{branch}")

    def head_of(self, branch: str) -> str:
        return git(self.path, "rev-parse", "-q", "--verify", f"refs/heads/{branch}", check=False)


def prepare_target_ref(ctx: ProjectContext, mr: bool) -> tuple[bool, str | None]:
    """Whether gitlab-ci-local should evaluate `rules: changes`, and a note for the user.

    gitlab-ci-local compares the work tree with refs/remotes/origin/<default branch>. A ref
    fetched from a real server is used as it is. Without one, a default-branch run is a first
    push (GitLab then runs every job), and a merge request targets the local default branch:
    ci-gen sets the ref to it and remembers doing so, so it may move it on later runs.
    """
    target = ctx.default_branch
    ref = f"refs/remotes/origin/{target}"
    marker = ctx.state_dir / "ci-gen-origin-ref"
    current = git(ctx.root, "rev-parse", "-q", "--verify", ref, check=False)
    owned = bool(current) and marker.is_file() and marker.read_text().strip() == current
    if current and not owned:
        return True, None
    if not mr:
        return False, (f"rules: changes not evaluated: origin/{target} was never fetched from a "
                       f"GitLab server, so this run is a first push and every job's changes match")
    local = git(ctx.root, "rev-parse", "-q", "--verify", f"refs/heads/{target}", check=False)
    if not local:
        raise CiGenError(f"--mr runs a merge request into {target}, but there is no branch {target} "
                         f"(nor origin/{target}) to diff against")
    git(ctx.root, "update-ref", ref, local)
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(local + "\n")
    return True, f"merge request target: origin/{target} set to the local {target} ({local[:8]})"
