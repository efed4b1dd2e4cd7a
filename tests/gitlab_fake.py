"""A loopback stand-in for the GitLab REST API v4, for driving python-gitlab for real.

It answers exactly the endpoints ci-gen uses (notes, uploads, commit comments, CI lint,
variables, issues, pipeline creation, commits with actions on a new branch, merge requests
created and listed), with GitLab's documented paths, field names,
headers and status codes (docs.gitlab.com/api/): `PRIVATE-TOKEN` auth (401
{"message": "401 Unauthorized"}), project ids numeric or URL-encoded paths, 201 on create,
offset pagination headers (X-Page, X-Next-Page, X-Total, ..., Link), multipart uploads,
masked-variable validation (Ci::Maskable), and the model registry's MLflow-compatible API
(`/projects/:id/ml/mlflow/api/2.0/mlflow/...`, lib/api/ml/mlflow/ in GitLab's source) with its
model files (`/projects/:id/packages/ml_models/:model_version_id/files/:file_name`). Faults (429 with Retry-After, 5xx, slow answers)
can be injected to test retries. Everything binds to 127.0.0.1 on a free port.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

API = "/api/v4"
DEVELOPER, MAINTAINER, OWNER = 30, 40, 50   # lib/gitlab/access.rb
ROLE_NAMES = {10: "Guest", 15: "Planner", 20: "Reporter", 30: "Developer", 40: "Maintainer", 50: "Owner"}
# ci_pipeline_variables_minimum_override_role -> the lowest access level that may set pipeline
# variables (ProjectCiCdSetting's enum; `no_one_allowed`: nobody, not even an Owner).
PIPELINE_VARIABLES_ROLES = {"developer": DEVELOPER, "maintainer": MAINTAINER, "owner": OWNER,
                            "no_one_allowed": None}
NOTE_LIMIT = 1_000_000
MASK_REGEX = re.compile(r"\A[a-zA-Z0-9_+=/@:.~-]{8,}\Z")        # masked and expanded
MASK_AND_RAW_REGEX = re.compile(r"\A[^ \t\r\n\f\v]{8,}\Z")      # masked and raw
KEY_REGEX = re.compile(r"\A[a-zA-Z0-9_]{1,255}\Z")
JOB_KEYWORDS = {"after_script", "allow_failure", "artifacts", "before_script", "cache",
                "coverage", "dast_configuration", "dependencies", "environment", "except",
                "extends", "hooks", "id_tokens", "identity", "image", "inherit", "interruptible",
                "manual_confirmation", "needs", "only", "pages", "parallel", "release",
                "resource_group", "retry", "rules", "run", "script", "secrets", "services",
                "stage", "tags", "timeout", "trigger", "variables", "when"}
GLOBAL_KEYWORDS = {"default", "include", "stages", "variables", "workflow", "image",
                   "services", "cache", "before_script", "after_script", "spec"}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Fault:
    times: int
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    method: str | None = None
    path_re: str | None = None
    delay: float = 0.0  # sleep before answering (then answer normally if status is 0)

    def matches(self, method: str, path: str) -> bool:
        return (self.times > 0 and (self.method is None or self.method == method)
                and (self.path_re is None or re.search(self.path_re, path) is not None))


@dataclass
class Seen:
    method: str
    path: str          # raw path, as sent (still URL-encoded), without the query
    query: dict[str, list[str]]
    status: int
    authorized: bool


class HttpError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class FakeGitLab:
    """State + server. Tests add projects/MRs, inject faults, and inspect what was sent."""

    def __init__(self, token: str = "glpat-fake-Secret-T0ken-1234") -> None:
        self.token = token
        self.user = {"id": 41, "username": "project_5_bot_1", "name": "ci-gen report bot",
                     "state": "active", "locked": False, "bot": True}
        self.other_user = {"id": 7, "username": "alice", "name": "Alice", "state": "active"}
        self.version = {"version": "17.6.0", "revision": "f1a2b3c4d5e"}
        self.projects: dict[int, dict[str, Any]] = {}
        self.merge_requests: dict[tuple[int, int], dict[str, Any]] = {}
        self.notes: dict[tuple[int, int], list[dict[str, Any]]] = {}
        self.commit_comments: dict[tuple[int, str], list[dict[str, Any]]] = {}
        self.uploads: list[dict[str, Any]] = []
        self.issues: dict[int, list[dict[str, Any]]] = {}
        self.pipelines: dict[int, list[dict[str, Any]]] = {}
        self.branches: dict[int, set[str]] = {}  # refs a pipeline can be created on
        # The repository, as far as the Commits API needs it: commit sha -> {"files": {path:
        # content}, "parent_ids", ...}, and each branch's head sha.
        self.commits: dict[int, dict[str, dict[str, Any]]] = {}
        self.heads: dict[int, dict[str, str]] = {}
        self.variables: dict[int, list[dict[str, Any]]] = {}
        self.can_admin_variables = True
        # The token user's role in each project (Gitlab::Access: 30 Developer, 40 Maintainer,
        # 50 Owner); a project access token gets the role it was created with.
        self.members: dict[int, dict[int, int]] = {}
        # Protected branches: name -> the lowest role allowed to push (0: no one), as
        # ProtectedBranch::PushAccessLevel holds it.
        self.protected: dict[int, dict[str, int]] = {}
        self.repository_files: set[str] = set()  # what `include: local:` can find (ci/lint)
        self.components: set[str] = set()        # "host/group/project/name@version"
        self.max_per_page = 100          # GitLab's cap; lower it to force pagination
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.ml = MlRegistry()
        self._ids = itertools.count(1001)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._url = ""
        self._thread: threading.Thread | None = None

    # --- setup -------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._url, "start() the server first"
        return self._url

    def start(self) -> FakeGitLab:
        fake = self

        class Handler(_Handler):
            gitlab = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self._url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.ml.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def add_project(self, pid: int, path: str) -> dict[str, Any]:
        namespace, _, name = path.rpartition("/")
        proj = {"id": pid, "name": name, "path": name, "path_with_namespace": path,
                "name_with_namespace": path.replace("/", " / "),
                "namespace": {"full_path": namespace}, "default_branch": "main",
                "web_url": f"{self._url or 'http://gitlab.example.com'}/{path}",
                # Who may set pipeline variables (Settings > CI/CD > Variables, "Minimum role to
                # use pipeline variables"): `maintainer` is self-managed's default; GitLab.com
                # gives new projects in new namespaces `no_one_allowed` (17.7). Exposed in the
                # project entity (lib/api/entities/project.rb).
                "ci_pipeline_variables_minimum_override_role": "maintainer"}
        self.projects[pid] = proj
        self.members.setdefault(pid, {})[self.user["id"]] = MAINTAINER
        # A new project's default branch is protected, Maintainers may push (the instance's
        # default_branch_protection, app/models/protected_branch.rb).
        self.protected.setdefault(pid, {})["main"] = MAINTAINER
        self.variables.setdefault(pid, [])
        self.issues.setdefault(pid, [])
        self.pipelines.setdefault(pid, [])
        self.branches.setdefault(pid, {"main"})
        return proj

    def add_mr(self, pid: int, iid: int, *, sha: str, source_branch: str = "feature",
               target_branch: str = "main", state: str = "opened") -> dict[str, Any]:
        mr = {"id": next(self._ids), "iid": iid, "project_id": pid, "title": f"MR {iid}",
              "state": state, "source_branch": source_branch, "target_branch": target_branch,
              "sha": sha, "web_url": f"{self.projects[pid]['web_url']}/-/merge_requests/{iid}"}
        self.merge_requests[(pid, iid)] = mr
        self.notes.setdefault((pid, iid), [])
        return mr

    def add_commit(self, pid: int, sha: str, files: dict[str, str], *, branch: str | None = None) -> None:
        """A commit of the repository with these files (and, with `branch`, that branch's head)."""
        self.commits.setdefault(pid, {})[sha] = {"id": sha, "files": dict(files), "parent_ids": [],
                                                 "message": "seed", "branch": branch}
        if branch:
            self.heads.setdefault(pid, {})[branch] = sha
            self.branches.setdefault(pid, set()).add(branch)

    def new_commit(self, pid: int, form: dict[str, Any]) -> dict[str, Any]:
        """POST /projects/:id/repository/commits (docs.gitlab.com/api/commits/, "Create a commit
        with multiple files and actions"): `branch`, `commit_message`, `actions` required; a new
        branch starts from `start_branch` or `start_sha` (mutually exclusive); an existing
        branch cannot be started again."""
        missing = [k for k in ("branch", "commit_message", "actions") if not form.get(k)]
        if missing:
            raise HttpError(400, {"error": ", ".join(f"{k} is missing" for k in missing)})
        if form.get("start_branch") and form.get("start_sha"):
            raise HttpError(400, {"error": "start_branch, start_sha are mutually exclusive"})
        heads, commits = self.heads.setdefault(pid, {}), self.commits.setdefault(pid, {})
        branch, start = form["branch"], form.get("start_sha") or heads.get(form.get("start_branch") or "")
        if not self.can_push(pid, branch):
            # app/services/commits/create_service.rb validate_permissions! (UserAccess
            # can_push_to_branch?), answered as 403 by lib/api/commits.rb
            raise HttpError(403, {"message": "403 Forbidden - You are not allowed to push into this branch"})
        # app/services/commits/create_service.rb validate_new_branch_name!: starting a branch
        # (start_branch/start_sha) that already exists is refused.
        if (form.get("start_branch") or form.get("start_sha")) and branch in heads and not _bool(form.get("force")):
            raise HttpError(400, {"message": f"A branch called '{branch}' already exists. Switch to that "
                                             "branch in order to make changes"})
        base = start if (form.get("start_branch") or form.get("start_sha")) else heads.get(branch)
        if base not in commits:
            raise HttpError(400, {"message": "You can only create or edit files when you are on a branch"
                                  if not form.get("start_sha") else "Invalid start_sha"})
        files = dict(commits[base]["files"])
        actions = form["actions"]
        if not isinstance(actions, list):
            raise HttpError(400, {"error": "actions is invalid"})
        for action in actions:
            kind, path = action.get("action"), action.get("file_path")
            if kind not in ("create", "delete", "move", "update", "chmod") or not path:
                raise HttpError(400, {"error": "actions[action] does not have a valid value"})
            if kind == "update" and path not in files:
                raise HttpError(400, {"message": "A file with this name doesn't exist"})
            if kind == "create" and path in files:
                raise HttpError(400, {"message": "A file with this name already exists"})
            if kind in ("create", "update"):
                if action.get("encoding", "text") not in ("text", "base64") or "content" not in action:
                    raise HttpError(400, {"error": "actions[content] is missing"})
                files[path] = action["content"]
            elif kind == "delete":
                files.pop(path, None)
        sha = secrets.token_hex(20)
        now = _now()
        title = form["commit_message"].splitlines()[0]
        commit = {"id": sha, "short_id": sha[:8], "created_at": now, "parent_ids": [base], "title": title,
                  "message": form["commit_message"], "author_name": self.user["name"],
                  "author_email": f"{self.user['username']}@noreply.example.com", "authored_date": now,
                  "committer_name": self.user["name"],
                  "committer_email": f"{self.user['username']}@noreply.example.com", "committed_date": now,
                  "trailers": {}, "extended_trailers": {},
                  "web_url": f"{self.projects[pid]['web_url']}/-/commit/{sha}",
                  "stats": {"additions": 1, "deletions": 1, "total": 2}, "status": None,
                  "project_id": pid, "last_pipeline": None}
        commits[sha] = {**commit, "files": files, "branch": branch, "actions": actions}
        heads[branch] = sha
        self.branches.setdefault(pid, set()).add(branch)
        return commit

    def new_mr(self, pid: int, form: dict[str, Any]) -> dict[str, Any]:
        """POST /projects/:id/merge_requests: `source_branch`, `target_branch`, `title` required;
        one open MR per source and target branch (409, as GitLab's validate_branches)."""
        missing = [k for k in ("source_branch", "target_branch", "title") if not form.get(k)]
        if missing:
            raise HttpError(400, {"error": ", ".join(f"{k} is missing" for k in missing)})
        heads = self.heads.setdefault(pid, {})
        source, target = form["source_branch"], form["target_branch"]
        for which, name in (("Source", source), ("Target", target)):
            if name not in heads:
                raise HttpError(409, {"message": [f'{which} branch "{name}" does not exist']})
        if source == target:
            raise HttpError(409, {"message": ["You can't use same project/branch for source and target"]})
        for (p, iid), mr in self.merge_requests.items():
            if p == pid and mr["state"] == "opened" and mr["source_branch"] == source \
                    and mr["target_branch"] == target:
                raise HttpError(409, {"message": ["Another open merge request already exists for this "
                                                  f"source branch: !{iid}"]})
        iid = max([i for (p, i) in self.merge_requests if p == pid] + [0]) + 1
        mr = self.add_mr(pid, iid, sha=heads[source], source_branch=source, target_branch=target)
        now = _now()
        mr.update(title=form["title"], description=form.get("description") or "", created_at=now,
                  updated_at=now, author=dict(self.user), draft=False, merge_status="checking",
                  force_remove_source_branch=_bool(form.get("remove_source_branch")),
                  source_project_id=pid, target_project_id=pid, labels=[])
        return mr

    def add_note(self, pid: int, iid: int, body: str, author: dict[str, Any] | None = None,
                 system: bool = False) -> dict[str, Any]:
        note = self._new_note(pid, iid, body, author or self.other_user, system)
        self.notes[(pid, iid)].append(note)
        return note

    def fail(self, times: int = 1, status: int = 500, *, headers: dict[str, str] | None = None,
             body: Any = None, method: str | None = None, path_re: str | None = None,
             delay: float = 0.0) -> Fault:
        fault = Fault(times, status, dict(headers or {}), body, method, path_re, delay)
        self.faults.append(fault)
        return fault

    def requests_to(self, method: str, path_re: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and re.search(path_re, s.path)]

    # --- endpoint logic ----------------------------------------------------------
    def _new_note(self, pid: int, iid: int, body: str, author: dict[str, Any],
                  system: bool = False) -> dict[str, Any]:
        now = _now()
        return {"id": next(self._ids), "type": None, "body": body, "attachment": None,
                "author": dict(author), "created_at": now, "updated_at": now, "system": system,
                "noteable_id": self.merge_requests[(pid, iid)]["id"],
                "noteable_type": "MergeRequest", "project_id": pid, "noteable_iid": iid,
                "resolvable": False, "confidential": False, "internal": False}

    def new_issue(self, pid: int, form: dict[str, Any]) -> dict[str, Any]:
        if not form.get("title"):
            raise HttpError(400, {"error": "title is missing"})
        now = _now()
        iid = len(self.issues[pid]) + 1
        issue = {"id": next(self._ids), "iid": iid, "project_id": pid, "title": form["title"],
                 "description": form.get("description") or "", "state": "opened",
                 "labels": _labels(form.get("labels")), "author": dict(self.user),
                 "assignees": [], "created_at": now, "updated_at": now, "closed_at": None,
                 "user_notes_count": 0, "confidential": _bool(form.get("confidential")),
                 "issue_type": "issue",
                 "web_url": f"{self.projects[pid]['web_url']}/-/issues/{iid}"}
        self.issues[pid].append(issue)
        return issue

    def new_pipeline(self, pid: int, form: dict[str, Any]) -> dict[str, Any]:
        ref = form.get("ref")
        if not ref:
            raise HttpError(400, {"error": "ref is missing"})
        if ref not in self.branches[pid]:
            raise HttpError(400, {"message": {"base": ["Reference not found"]}})
        variables = form.get("variables") or []
        if not isinstance(variables, list) or not all(
                isinstance(v, dict) and v.get("key") and "value" in v for v in variables):
            raise HttpError(400, {"error": "variables is invalid"})
        if variables and not self.can_set_pipeline_variables(pid):
            # lib/gitlab/ci/pipeline/chain/build/associations.rb adds this to the pipeline's
            # errors; lib/api/ci/pipelines.rb answers render_validation_error! (400,
            # {"message": {"base": [...]}}) and creates no pipeline.
            raise HttpError(400, {"message": {"base": ["Insufficient permissions to set pipeline variables"]}})
        now = _now()
        pipeline = {"id": next(self._ids), "iid": len(self.pipelines[pid]) + 1, "project_id": pid,
                    "sha": SHA, "ref": ref, "status": "created", "source": "api",
                    "created_at": now, "updated_at": now, "web_url": "",
                    "before_sha": "0" * 40, "tag": False, "yaml_errors": None,
                    "user": dict(self.user), "started_at": None, "finished_at": None,
                    "committed_at": None, "duration": None, "queued_duration": None,
                    "coverage": None, "detailed_status": {"text": "created", "group": "created"},
                    "variables": [{"variable_type": v.get("variable_type", "env_var"),
                                   "key": v["key"], "value": str(v["value"])} for v in variables]}
        pipeline["web_url"] = f"{self.projects[pid]['web_url']}/-/pipelines/{pipeline['id']}"
        self.pipelines[pid].append(pipeline)
        return pipeline

    def role(self, pid: int) -> int:
        """The token user's access level in the project (0: not a member)."""
        return self.members.get(pid, {}).get(self.user["id"], 0)

    def can_set_pipeline_variables(self, pid: int) -> bool:
        """ProjectPolicy's :set_pipeline_variables: the user's role reaches the project's
        ci_pipeline_variables_minimum_override_role (app/policies/project_policy.rb)."""
        least = PIPELINE_VARIABLES_ROLES[self.projects[pid]["ci_pipeline_variables_minimum_override_role"]]
        return least is not None and self.role(pid) >= least

    def can_push(self, pid: int, branch: str) -> bool:
        """Gitlab::UserAccess#can_push_to_branch? (lib/gitlab/user_access.rb), which
        lib/gitlab/git_access.rb applies to a real push: an unprotected branch takes a push
        from a Developer up; a protected one only from the roles its push access levels allow."""
        role = self.role(pid)
        allowed = self.protected.get(pid, {}).get(branch)
        if allowed is None:
            return role >= DEVELOPER
        return allowed > 0 and role >= allowed

    def project(self, raw_id: str) -> dict[str, Any]:
        ident = urllib.parse.unquote(raw_id)  # GitLab decodes once: %252F stays %2F
        if ident.isdigit() and int(ident) in self.projects:
            return self.projects[int(ident)]
        for proj in self.projects.values():
            if proj["path_with_namespace"] == ident:
                return proj
        raise HttpError(404, {"message": "404 Project Not Found"})

    def mr(self, pid: int, iid: str) -> dict[str, Any]:
        if not iid.isdigit() or (pid, int(iid)) not in self.merge_requests:
            raise HttpError(404, {"message": "404 Not found"})
        return self.merge_requests[(pid, int(iid))]

    def lint(self, content: str) -> dict[str, Any]:
        errors: list[str] = []
        warnings: list[str] = []
        try:
            config = yaml.safe_load(content)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            return {"valid": False, "errors": [f"(<unknown>): {problem}{where}"],
                    "warnings": [], "merged_yaml": None, "includes": []}
        if not isinstance(config, dict):
            return {"valid": False, "errors": ["Invalid configuration format"], "warnings": [],
                    "merged_yaml": None, "includes": []}
        includes = config.get("include") or []
        for inc in includes if isinstance(includes, list) else [includes]:
            local = inc.get("local") if isinstance(inc, dict) else (
                inc if isinstance(inc, str) and "://" not in inc else None)
            if local and local.lstrip("/") not in self.repository_files:
                errors.append(f"Local file `{local}` does not exist!")
            component = inc.get("component") if isinstance(inc, dict) else None
            if component and component not in self.components:
                # Ci::Components::FetchService's message
                errors.append(f"Component '{component}' - content not found")
        stages = [".pre", *(config.get("stages") or ["build", "test", "deploy"]), ".post"]
        jobs = {k: v for k, v in config.items()
                if k not in GLOBAL_KEYWORDS and not str(k).startswith(".")}
        if not jobs:
            errors.append("jobs config should contain at least one visible job")
        for name, job in jobs.items():
            if not isinstance(job, dict):
                errors.append(f"jobs:{name} config should be a hash")
                continue
            unknown = sorted(set(job) - JOB_KEYWORDS)
            if unknown:
                errors.append(f"jobs:{name} config contains unknown keys: {', '.join(unknown)}")
            if not {"script", "trigger", "run"} & set(job) and "extends" not in job:
                errors.append(f"jobs:{name} config should implement the script:, run:, or "
                              "trigger: keyword")
            stage = job.get("stage", "test")
            if stage not in stages:
                errors.append(f"{name} job: chosen stage {stage} does not exist; available "
                              f"stages are {', '.join(stages)}")
            rules = job.get("rules") or []
            if (isinstance(rules, list) and "workflow" not in config
                    and any(isinstance(r, dict) and "when" in r and "if" not in r
                            and r["when"] != "never" for r in rules)):
                warnings.append(f"jobs:{name} may allow multiple pipelines to run for a single "
                                "action due to `rules:when` clause with no `workflow:rules` - "
                                "read more: https://docs.gitlab.com/ee/ci/troubleshooting.html"
                                "#pipeline-warnings")
        return {"valid": not errors, "errors": errors, "warnings": warnings,
                "merged_yaml": None if errors else yaml.safe_dump(config), "includes": []}

    def find_variable(self, pid: int, key: str, query: dict[str, list[str]]) -> dict[str, Any]:
        scope = (query.get("filter[environment_scope]") or [None])[0]
        found = [v for v in self.variables[pid]
                 if v["key"] == key and (scope is None or v["environment_scope"] == scope)]
        if not found:
            raise HttpError(404, {"message": "404 Variable Not Found"})
        if len(found) > 1:
            raise HttpError(409, {"message": "There are multiple variables with provided "
                                  "parameters. Please use 'filter[environment_scope]'"})
        return found[0]

    @staticmethod
    def check_variable(var: dict[str, Any]) -> None:
        if var["masked"]:
            regex = MASK_AND_RAW_REGEX if var["raw"] else MASK_REGEX
            if not regex.match(var["value"] or ""):
                raise HttpError(400, {"message": {"value": ["is invalid"]}})


# --- the model registry (lib/api/ml/mlflow/, lib/api/ml_model_packages.rb) ----------------

MLFLOW = "/ml/mlflow/api/2.0/mlflow/"
PARAM_LIMIT = 250  # app/models/ml/candidate_param.rb: name and value, at most 250 characters
# ModelVersion's SemVer validation, as the registry's UI and API require it.
SEMVER_RE = re.compile(r"\A(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?\Z")
FLAT_FILE_RE = re.compile(r"\A[^/]+\Z")


def _not_exist() -> HttpError:
    return HttpError(404, {"error_code": "RESOURCE_DOES_NOT_EXIST"})


def _invalid(message: str | None = None) -> HttpError:
    return HttpError(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": message})


class MlRegistry:
    """Models, versions (each with its candidate, i.e. run) and their package files.

    What GitLab answers, and only that: registered-models get/create/search, model-versions
    create/get (by SemVer), runs get/create/update/log-batch/set-tag, experiments
    get-by-name; any other MLflow endpoint is Grape's plain 404. A version's `version` field
    is its numeric id, its SemVer is in `aliases`; the version is taken from the
    `gitlab.version` tag or auto-incremented; `run_id` and `source` are ignored. Files are
    flat (no directories) under `packages/ml_models/<version id>/files/`; a download is a
    redirect to a second loopback server standing for object storage (`ObjectStorage`).
    Answers can be throttled (429 + Retry-After) or lost after the work was done (`lost`).
    """

    def __init__(self) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.versions: list[dict[str, Any]] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.files: dict[tuple[int, str], bytes] = {}
        self.builds: set[str] = set()   # CI job ids that exist (gitlab.CI_JOB_ID must name one)
        self.web = ""                   # the project's web URL, for version pages
        self._ids = itertools.count(1)
        # Package files live in object storage with direct download, as on GitLab.com: a
        # download is a redirect to another host (`direct_download = False`: GitLab serves
        # them itself, `file_storage?`). `storage` may be set to a server a test inspects.
        self.direct_download = True
        self.storage: ObjectStorage | None = None
        # Answers lost after the work was done: endpoint ("model-versions/create", or
        # "PUT files") -> how many times a 502 replaces the real answer.
        self.lost: dict[str, int] = {}
        self._throttled: list[Any] = [0, "1"]  # [times, Retry-After]

    def close(self) -> None:
        if self.storage is not None:
            self.storage.stop()

    def throttle(self, times: int, retry_after: str = "1") -> None:
        """The next `times` registry calls answer 429 with `Retry-After` before doing anything:
        lib/gitlab/rack_attack.rb (`throttled_response`: 429, text/plain, Retry-After, the
        RateLimit-* headers), a middleware in front of the API."""
        self._throttled = [times, retry_after]

    # -- entities -----------------------------------------------------------------------
    @staticmethod
    def _kv(items: dict[str, str]) -> list[dict[str, str]]:
        return [{"key": k, "value": v} for k, v in items.items()]

    def version_entity(self, v: dict[str, Any], base: str) -> dict[str, Any]:
        return {"name": v["model"], "version": str(v["id"]),
                "creation_timestamp": v["created"], "last_updated_timestamp": v["created"],
                "user_id": None, "current_stage": "development", "description": v["description"],
                # lib/api/entities/ml/mlflow/model_version.rb: project_ml_model_version_path,
                # the version's page under the project's web URL
                "source": f"{self.web or base}/-/ml/models/{self.models[v['model']]['id']}/versions/{v['id']}",
                "run_id": v["run_id"], "status": "READY", "status_message": "",
                "tags": self._kv(v["tags"]), "run_link": "", "aliases": [v["semver"]]}

    def model_entity(self, m: dict[str, Any], base: str) -> dict[str, Any]:
        return {"name": m["name"], "creation_timestamp": m["created"],
                "last_updated_timestamp": m["created"], "description": m["description"],
                "user_id": "41", "tags": [],
                "latest_versions": [self.version_entity(v, base) for v in self.versions
                                    if v["model"] == m["name"]]}

    def run_entity(self, r: dict[str, Any], base: str) -> dict[str, Any]:
        artifact_uri = (f"{base}/packages/ml_models/{r['version_id']}/files/"
                        if r["version_id"] else f"{base}/packages/ml_models/candidate:{r['iid']}/files/")
        info = {"run_id": r["eid"], "run_uuid": r["eid"], "experiment_id": r["experiment"],
                "start_time": r["start_time"], "run_name": r["name"], "status": r["status"],
                "artifact_uri": artifact_uri, "lifecycle_stage": "active", "user_id": "41"}
        if r["end_time"]:
            info["end_time"] = r["end_time"]
        data = {"metrics": list(r["metrics"].values()), "params": self._kv(r["params"]),
                "tags": self._kv(r["tags"])}
        return {"run": {"info": info, "data": data}}

    # -- state changes ------------------------------------------------------------------
    def _experiment(self, name: str) -> dict[str, Any]:
        if name not in self.experiments:
            self.experiments[name] = {"experiment_id": str(next(self._ids)), "name": name,
                                      "artifact_location": "not_implemented",
                                      "lifecycle_stage": "active", "tags": []}
        return self.experiments[name]

    def _new_run(self, experiment_id: str, name: str, version_id: int | None) -> dict[str, Any]:
        run = {"eid": secrets.token_hex(16), "iid": next(self._ids), "experiment": experiment_id,
               "name": name, "status": "RUNNING", "start_time": int(time.time() * 1000),
               "end_time": None, "version_id": version_id, "metrics": {}, "params": {},
               "tags": {}}
        self.runs[run["eid"]] = run
        return run

    def _model(self, name: Any) -> dict[str, Any]:
        if not name or name not in self.models:
            raise _not_exist()
        return self.models[name]

    def _run(self, run_id: Any) -> dict[str, Any]:
        if run_id not in self.runs:
            raise _not_exist()
        return self.runs[run_id]

    def _create_version(self, form: dict[str, Any]) -> dict[str, Any]:
        model = self._model(form.get("name"))
        tags = {t["key"]: t["value"] for t in form.get("tags") or []}
        mine = [v for v in self.versions if v["model"] == model["name"]]
        semver = tags.get("gitlab.version")
        if semver is None:  # auto-increment from the latest version
            if mine:
                major, minor, patch = mine[-1]["semver"].split("-")[0].split(".")
                semver = f"{major}.{minor}.{int(patch) + 1}"
            else:
                semver = "1.0.0"
        if not SEMVER_RE.match(semver):
            raise _invalid("Version must be semantic version")
        if any(v["semver"] == semver for v in mine):
            raise _invalid("Version has already been taken")
        vid = next(self._ids)
        exp = self._experiment(f"[model]{model['name']}")
        run = self._new_run(exp["experiment_id"], f"{model['name']}-{semver}", vid)
        version = {"id": vid, "model": model["name"], "semver": semver, "run_id": run["eid"],
                   "tags": tags, "description": form.get("description") or "",
                   "created": int(time.time())}
        self.versions.append(version)
        return version

    def _log(self, run: dict[str, Any], form: dict[str, Any]) -> None:
        for m in form.get("metrics") or []:
            if "timestamp" not in m or "value" not in m:
                raise HttpError(400, {"error": "metrics[0][timestamp] is missing"})
            run["metrics"][m["key"]] = {"key": m["key"], "value": float(m["value"]),
                                        "timestamp": m["timestamp"], "step": m.get("step", 0)}
        # app/services/ml/experiment_tracking/candidate_repository.rb: metrics, then params, then
        # tags, each with insert_all (no model validation); a param name or value over 250
        # characters (app/models/ml/candidate_param.rb, the column's limit) fails in the database:
        # a 500, with the metrics already stored.
        params = form.get("params") or []
        if any(len(str(p.get("key", ""))) > PARAM_LIMIT or len(str(p.get("value", ""))) > PARAM_LIMIT
               for p in params):
            raise HttpError(500, {"message": "500 Internal Server Error"})
        for p in params:
            run["params"].setdefault(p["key"], str(p["value"]))  # duplicates are ignored
        for t in form.get("tags") or []:
            if t.get("key") == "gitlab.CI_JOB_ID" and str(t.get("value")) not in self.builds:
                # app/services/ml/experiment_tracking/handle_candidate_gitlab_metadata_service.rb
                # looks the build up; one that does not exist (a local run's id) is a 500.
                raise HttpError(500, {"message": "500 Internal Server Error"})
            run["tags"][t["key"]] = str(t["value"])

    # -- routes -------------------------------------------------------------------------
    def route(self, method: str, pid: int, rest: str, query: dict[str, list[str]], raw: bytes,
              base: str) -> tuple[int, Any, dict[str, str]]:
        if self._throttled[0] > 0:
            self._throttled[0] -= 1
            raise HttpError(429, "Retry later\n", {"Retry-After": self._throttled[1],
                                                   "RateLimit-Remaining": "0"})
        answer = self._answer(method, pid, rest, query, raw, base)
        key = "PUT files" if method == "PUT" else rest[len(MLFLOW):]
        if self.lost.get(key, 0) > 0:
            # Done, but the answer never reaches the client (a proxy timed out): what makes a
            # blind retry of a create fail with "Version has already been taken".
            self.lost[key] -= 1
            raise HttpError(502, "<html><body><h1>502 Bad Gateway</h1></body></html>\n")
        return answer

    def _answer(self, method: str, pid: int, rest: str, query: dict[str, list[str]], raw: bytes,
                base: str) -> tuple[int, Any, dict[str, str]]:
        if rest.startswith("/packages/ml_models/"):
            return self._files(method, rest[len("/packages/ml_models/"):], raw)
        if not rest.startswith(MLFLOW):
            raise HttpError(404, {"error": "404 Not Found"})
        endpoint = rest[len(MLFLOW):]
        q = {k: v[-1] for k, v in query.items()}
        form = json.loads(raw or b"{}") if method in ("POST", "PATCH") else {}
        # MLflow clients expect 200 for everything, even a create (entrypoint.rb).
        if (method, endpoint) == ("GET", "registered-models/get"):
            return 200, {"registered_model": self.model_entity(self._model(q.get("name")), base)}, {}
        if (method, endpoint) == ("POST", "registered-models/create"):
            name = form.get("name")
            if not name:
                raise HttpError(400, {"error": "name is missing"})
            if name in self.models or name in self.experiments:
                raise HttpError(400, {"error_code": "RESOURCE_ALREADY_EXISTS"})
            self.models[name] = {"id": next(self._ids), "name": name, "created": int(time.time()),
                                 "description": form.get("description") or ""}
            self._experiment(f"[model]{name}")
            return 200, {"registered_model": self.model_entity(self.models[name], base)}, {}
        if (method, endpoint) == ("GET", "registered-models/search"):
            found = [self.model_entity(m, base) for _, m in sorted(self.models.items())]
            return 200, {"registered_models": found, "next_page_token": None}, {}
        if (method, endpoint) == ("POST", "model-versions/create"):
            version = self._create_version(form)
            return 200, {"model_version": self.version_entity(version, base)}, {}
        if (method, endpoint) == ("GET", "model-versions/get"):
            found = [v for v in self.versions
                     if v["model"] == q.get("name") and v["semver"] == q.get("version")]
            if not found:
                raise _not_exist()
            return 200, {"model_version": self.version_entity(found[0], base)}, {}
        if (method, endpoint) == ("GET", "experiments/get-by-name"):
            exp = self.experiments.get(q.get("experiment_name", ""))
            if exp is None:
                raise _not_exist()
            return 200, {"experiment": exp}, {}
        if (method, endpoint) == ("GET", "runs/get"):
            return 200, self.run_entity(self._run(q.get("run_id")), base), {}
        if (method, endpoint) == ("POST", "runs/create"):
            exp = next((e for e in self.experiments.values()
                        if e["experiment_id"] == str(form.get("experiment_id"))), None)
            if exp is None:
                raise _not_exist()
            return 200, self.run_entity(self._new_run(exp["experiment_id"],
                                                      form.get("run_name", ""), None), base), {}
        if (method, endpoint) == ("POST", "runs/log-batch"):
            self._log(self._run(form.get("run_id")), form)
            return 200, {}, {}
        if (method, endpoint) == ("POST", "runs/set-tag"):
            self._log(self._run(form.get("run_id")), {"tags": [form]})
            return 200, {}, {}
        if (method, endpoint) == ("POST", "runs/update"):
            run = self._run(form.get("run_id"))
            run["status"] = form.get("status") or run["status"]
            run["end_time"] = form.get("end_time") or run["end_time"]
            return 200, {"run_info": self.run_entity(run, base)["run"]["info"]}, {}
        raise HttpError(404, {"error": "404 Not Found"})

    def _files(self, method: str, rest: str, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        vid, sep, name = rest.partition("/files/")
        version = next((v for v in self.versions if str(v["id"]) == vid), None)
        if not sep or version is None:
            raise HttpError(404, {"message": "404 Not Found"})
        name = urllib.parse.unquote(name)
        if not FLAT_FILE_RE.match(name):
            # The MLflow client compatibility: `artifact_path` must be empty, no directories.
            raise HttpError(400, {"error": "file_name is invalid"})
        if method == "PUT":
            self.files[(version["id"], name)] = raw
            return 201, {"message": "201 Created"}, {}
        if method == "GET":
            if (version["id"], name) not in self.files:
                raise HttpError(404, {"message": "404 Not Found"})
            if self.direct_download:
                # lib/api/ml_model_packages.rb `present_package_file!` ->
                # lib/api/helpers.rb `present_carrierwave_file!`: a file in object storage
                # with direct download is a redirect to its signed URL on another host.
                if self.storage is None:
                    self.storage = ObjectStorage().start()
                return 302, b"", {"Location": self.storage.signed_url(
                    self.files[(version["id"], name)])}
            return 200, self.files[(version["id"], name)], {}
        raise HttpError(405, {"message": "405 Method Not Allowed"})


class ObjectStorage:
    """A second loopback server standing for the S3 bucket GitLab keeps package files in.

    It answers signed URLs (`X-Amz-Signature` in the query) and, as S3 does, refuses a request
    that also carries an Authorization header (400 InvalidArgument, "Only one auth mechanism
    allowed"): a client that forwards the registry token across the redirect fails here.
    """

    def __init__(self) -> None:
        self.objects: dict[str, tuple[str, bytes]] = {}
        self.seen: list[dict[str, str]] = []   # the headers of every request
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def signed_url(self, data: bytes) -> str:
        key, signature = secrets.token_hex(8), secrets.token_hex(16)
        self.objects[key] = (signature, data)
        return (f"{self.url}/gitlab-packages/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                f"&X-Amz-Expires=600&X-Amz-Signature={signature}")

    def start(self) -> ObjectStorage:
        storage = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                storage.seen.append(dict(self.headers))
                path, _, qs = self.path.partition("?")
                query = urllib.parse.parse_qs(qs)
                key = path.rsplit("/", 1)[-1]
                if self.headers.get("Authorization"):
                    status, body = 400, (b"<Error><Code>InvalidArgument</Code><Message>Only one "
                                         b"auth mechanism allowed</Message></Error>")
                elif key not in storage.objects or \
                        query.get("X-Amz-Signature") != [storage.objects[key][0]]:
                    status, body = 403, b"<Error><Code>AccessDenied</Code></Error>"
                else:
                    status, body = 200, storage.objects[key][1]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _labels(value: Any) -> list[str]:
    """GitLab takes labels as a comma-separated string (or an array)."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [str(x).strip() for x in items if str(x).strip()]


def _bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "yes")


class _Handler(BaseHTTPRequestHandler):
    gitlab: FakeGitLab
    protocol_version = "HTTP/1.1"
    server_version = "nginx"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # --- plumbing ----------------------------------------------------------------
    def _handle(self, method: str) -> None:
        fake = self.gitlab
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, qs = self.path.partition("?")
        query = urllib.parse.parse_qs(qs, keep_blank_values=True)
        bearer = self.headers.get("Authorization", "")
        authorized = fake.token in (self.headers.get("PRIVATE-TOKEN"),
                                    bearer[7:] if bearer.startswith("Bearer ") else None)
        status, body, headers = 500, {"message": "500 Internal Server Error"}, {}
        with fake._lock:
            fault = next((f for f in fake.faults if f.matches(method, path)), None)
            if fault:
                fault.times -= 1
        try:
            if fault and fault.delay:
                time.sleep(fault.delay)
            if fault and fault.status:
                status, headers = fault.status, dict(fault.headers)
                reason = self.responses.get(fault.status, ("",))[0]
                body = fault.body if fault.body is not None else (
                    "Retry later\n" if fault.status == 429
                    else {"message": f"{fault.status} {reason}"})
            elif not path.startswith(API + "/"):
                status, body = 404, {"error": "404 Not Found"}
            elif not authorized:
                status, body = 401, {"message": "401 Unauthorized"}
            else:
                with fake._lock:
                    status, body, headers = self._route(method, path[len(API):], query, raw)
        except HttpError as exc:
            status, body, headers = exc.status, exc.body, exc.headers
        with fake._lock:
            fake.seen.append(Seen(method, path, query, status, authorized))
        self._send(status, body, headers)

    def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
        if isinstance(body, bytes):
            data, ctype = body, "application/octet-stream"
        elif isinstance(body, str):
            data, ctype = body.encode(), "text/plain"
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def _form(self, raw: bytes) -> dict[str, Any]:
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            return json.loads(raw or b"{}")
        if ctype.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
            form: dict[str, Any] = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                filename = part.get_filename()
                payload = part.get_payload(decode=True)
                form[name] = (filename, payload) if filename is not None else payload.decode()
            return form
        return {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()}

    def _paginate(self, items: list[dict[str, Any]], path: str,
                  query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        fake = self.gitlab
        page = max(1, int((query.get("page") or ["1"])[0]))
        per_page = min(fake.max_per_page, max(1, int((query.get("per_page") or ["20"])[0])))
        total_pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        base = f"http://{self.headers['Host']}{API}{path}"

        def link(p: int) -> str:
            q = {k: v[-1] for k, v in query.items()}
            q.update(page=str(p), per_page=str(per_page))
            return f"{base}?{urllib.parse.urlencode(q)}"

        links = []
        if page < total_pages:
            links.append(f'<{link(page + 1)}>; rel="next"')
        if page > 1:
            links.append(f'<{link(page - 1)}>; rel="prev"')
        links += [f'<{link(1)}>; rel="first"', f'<{link(total_pages)}>; rel="last"']
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
                   "X-Total-Pages": str(total_pages),
                   "X-Next-Page": str(page + 1) if page < total_pages else "",
                   "X-Prev-Page": str(page - 1) if page > 1 else "", "Link": ", ".join(links)}
        return 200, chunk, headers

    # --- routes ------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, list[str]],
               raw: bytes) -> tuple[int, Any, dict[str, str]]:
        fake = self.gitlab
        if method == "GET" and path == "/version":
            return 200, fake.version, {}
        if method == "GET" and path == "/user":
            return 200, {**fake.user, "web_url": f"{fake.url}/{fake.user['username']}"}, {}
        m = re.fullmatch(r"/projects/([^/]+)(/.*)?", path)
        if not m:
            raise HttpError(404, {"error": "404 Not Found"})
        proj = fake.project(m.group(1))
        pid, rest = proj["id"], m.group(2) or ""

        if method == "GET" and rest == "":
            return 200, proj, {}
        m = re.fullmatch(r"/members/all/([0-9]+)", rest)
        if m and method == "GET":
            # lib/api/members.rb: a member with its access_level (inherited ones too)
            level = fake.members.get(pid, {}).get(int(m.group(1)), 0)
            if not level or int(m.group(1)) != fake.user["id"]:
                raise HttpError(404, {"message": "404 Not found"})
            return 200, {**fake.user, "access_level": level}, {}
        m = re.fullmatch(r"/repository/files/([^/]+)/raw", rest)
        if m and method == "GET":
            # lib/api/files.rb: the file at `ref` (required), URL-encoded path; 404 "File Not Found"
            ref = (query.get("ref") or [""])[0]
            if not ref:
                raise HttpError(400, {"error": "ref is missing"})
            sha = fake.heads.get(pid, {}).get(ref, ref)
            files = fake.commits.get(pid, {}).get(sha, {}).get("files")
            name = urllib.parse.unquote(m.group(1))
            if files is None or name not in files:
                raise HttpError(404, {"message": "404 File Not Found"})
            content = files[name]
            return 200, content.encode() if isinstance(content, str) else content, {}
        m = re.fullmatch(r"/repository/branches/([^/]+)", rest)
        if m and method == "GET":
            # lib/api/branches.rb + lib/api/entities/branch.rb: `protected`, `developers_can_push`
            # and `can_push` (for the token's user, Gitlab::UserAccess#can_push_to_branch?)
            name = urllib.parse.unquote(m.group(1))
            if name not in fake.heads.get(pid, {}) and name not in fake.branches.get(pid, set()):
                raise HttpError(404, {"message": "404 Branch Not Found"})
            level = fake.protected.get(pid, {}).get(name)
            return 200, {"name": name, "merged": False, "protected": level is not None,
                         "developers_can_push": level is None or 0 < level <= DEVELOPER,
                         "developers_can_merge": level is None or 0 < level <= DEVELOPER,
                         "can_push": fake.can_push(pid, name),
                         "default": name == proj["default_branch"],
                         "web_url": f"{proj['web_url']}/-/tree/{name}",
                         "commit": {"id": fake.heads.get(pid, {}).get(name, SHA)}}, {}
        if rest.startswith(("/ml/mlflow/", "/packages/ml_models/")):
            fake.ml.web = proj["web_url"]
            return fake.ml.route(method, pid, rest, query, raw,
                                 f"http://{self.headers['Host']}{API}/projects/{pid}")
        if method == "POST" and rest == "/uploads":
            form = self._form(raw)
            if not isinstance(form.get("file"), tuple):
                raise HttpError(400, {"error": "file is missing"})
            filename, content = form["file"]
            secret = secrets.token_hex(16)
            alt = filename.rsplit(".", 1)[0]
            url = f"/uploads/{secret}/{filename}"
            is_image = filename.lower().endswith((".png", ".jpg", ".jpeg", ".gif", ".svg"))
            info = {"id": next(fake._ids), "alt": alt, "url": url,
                    "full_path": f"/-/project/{pid}/uploads/{secret}/{filename}",
                    "markdown": f"{'!' if is_image else ''}[{alt}]({url})"}
            fake.uploads.append({**info, "project_id": pid, "filename": filename,
                                 "content": content})
            return 201, info, {}

        if rest == "/merge_requests":
            if method == "POST":
                return 201, fake.new_mr(pid, self._form(raw)), {}
            if method == "GET":
                want = {k: (query.get(k) or [None])[0] for k in ("source_branch", "target_branch", "state")}
                found = [mr for (p, _), mr in sorted(fake.merge_requests.items(), reverse=True)
                         if p == pid and all(v in (None, "all") or mr[k] == v for k, v in want.items())]
                return self._paginate(found, path, query)
            raise HttpError(405, {"message": "405 Method Not Allowed"})
        if rest == "/repository/commits" and method == "POST":
            return 201, fake.new_commit(pid, self._form(raw)), {}

        m = re.fullmatch(r"/merge_requests/([^/]+)(/notes(?:/([^/]+))?)?", rest)
        if m:
            mr = fake.mr(pid, m.group(1))
            notes = fake.notes[(pid, mr["iid"])]
            if m.group(2) is None:
                if method == "GET":
                    return 200, mr, {}
            elif m.group(3) is None:
                if method == "GET":
                    order = sorted(notes, key=lambda n: (n[(query.get("order_by") or
                                                            ["created_at"])[0]], n["id"]),
                                   reverse=(query.get("sort") or ["desc"])[0] == "desc")
                    return self._paginate(order, path, query)
                if method == "POST":
                    body = self._form(raw).get("body")
                    self._check_note(body)
                    note = fake._new_note(pid, mr["iid"], body, fake.user)
                    notes.append(note)
                    return 201, note, {}
            else:
                note = next((n for n in notes if str(n["id"]) == m.group(3)), None)
                if note is None:
                    raise HttpError(404, {"message": "404 Note Not Found"})
                if method == "PUT":
                    if note["author"]["id"] != fake.user["id"]:
                        raise HttpError(403, {"message": "403 Forbidden"})
                    body = self._form(raw).get("body")
                    self._check_note(body)
                    note["body"], note["updated_at"] = body, _now()
                    return 200, note, {}
            raise HttpError(405, {"message": "405 Method Not Allowed"})

        m = re.fullmatch(r"/repository/commits/([^/]+)/(merge_requests|comments)", rest)
        if m:
            sha, what = m.groups()
            if what == "merge_requests" and method == "GET":
                found = [mr for (p, _), mr in sorted(fake.merge_requests.items())
                         if p == pid and mr["sha"] == sha]
                return self._paginate(found, path, query)
            if what == "comments" and method == "POST":
                note = self._form(raw).get("note")
                if not note:
                    raise HttpError(400, {"error": "note is missing"})
                if len(note) > NOTE_LIMIT:
                    raise HttpError(400, {"message": {"note": [
                        f"is too long (maximum is {NOTE_LIMIT} characters)"]}})
                comment = {"note": note, "path": None, "line": None, "line_type": None,
                           "author": dict(fake.user), "created_at": _now()}
                fake.commit_comments.setdefault((pid, sha), []).append(comment)
                return 201, comment, {}
            if what == "comments" and method == "GET":
                return self._paginate(fake.commit_comments.get((pid, sha), []), path, query)
            raise HttpError(405, {"message": "405 Method Not Allowed"})

        if rest == "/ci/lint" and method == "POST":
            content = self._form(raw).get("content")
            if not content:
                raise HttpError(400, {"error": "content is missing"})
            return 200, fake.lint(content), {}

        m = re.fullmatch(r"/issues(?:/([^/]+))?", rest)
        if m:
            return self._issues(pid, m.group(1), method, path, query, raw)
        if rest == "/pipeline" and method == "POST":
            # The pipeline's own fields; `variables` only in the create answer's request.
            pipeline = fake.new_pipeline(pid, self._form(raw))
            return 201, {k: v for k, v in pipeline.items() if k != "variables"}, {}
        m = re.fullmatch(r"/pipelines/([^/]+)(/variables)?", rest)
        if m and method == "GET":
            pipeline = next((p for p in fake.pipelines[pid] if str(p["id"]) == m.group(1)), None)
            if pipeline is None:
                raise HttpError(404, {"message": "404 Not found"})
            if m.group(2):
                return 200, pipeline["variables"], {}
            return 200, {k: v for k, v in pipeline.items() if k != "variables"}, {}

        m = re.fullmatch(r"/variables(?:/([^/]+))?", rest)
        if m:
            if not fake.can_admin_variables:
                raise HttpError(403, {"message": "403 Forbidden"})
            key = urllib.parse.unquote(m.group(1)) if m.group(1) else None
            variables = fake.variables[pid]
            if key is None and method == "GET":
                return self._paginate(variables, path, query)
            if key is None and method == "POST":
                form = self._form(raw)
                if not form.get("key") or form.get("value") is None:
                    raise HttpError(400, {"error": "key is missing, value is missing"})
                if not KEY_REGEX.match(form["key"]):
                    raise HttpError(400, {"message": {"key": [
                        "can contain only letters, digits and '_'."]}})
                var = {"variable_type": form.get("variable_type", "env_var"),
                       "key": form["key"], "value": str(form["value"]),
                       "protected": _bool(form.get("protected")),
                       "masked": _bool(form.get("masked")), "hidden": False,
                       "raw": _bool(form.get("raw")),
                       "environment_scope": form.get("environment_scope", "*"),
                       "description": form.get("description")}
                if any(v["key"] == var["key"] and
                       v["environment_scope"] == var["environment_scope"] for v in variables):
                    raise HttpError(400, {"message": {"key": [
                        f"({var['key']}) has already been taken"]}})
                fake.check_variable(var)
                variables.append(var)
                return 201, var, {}
            if key is not None and method == "GET":
                return 200, fake.find_variable(pid, key, query), {}
            if key is not None and method == "PUT":
                var = fake.find_variable(pid, key, query)
                form = self._form(raw)
                new = dict(var)
                for k in ("value", "variable_type", "environment_scope", "description"):
                    if k in form:
                        new[k] = form[k]
                for k in ("protected", "masked", "raw"):
                    if k in form:
                        new[k] = _bool(form[k])
                fake.check_variable(new)
                var.update(new)
                return 200, var, {}
            raise HttpError(405, {"message": "405 Method Not Allowed"})
        raise HttpError(404, {"error": "404 Not Found"})

    def _issues(self, pid: int, iid: str | None, method: str, path: str,
                query: dict[str, list[str]], raw: bytes) -> tuple[int, Any, dict[str, str]]:
        """GET/POST /projects/:id/issues, GET/PUT /projects/:id/issues/:issue_iid."""
        fake = self.gitlab
        issues = fake.issues[pid]
        if iid is None and method == "GET":
            state = (query.get("state") or ["all"])[0]
            wanted = set(_labels((query.get("labels") or [""])[0]))
            found = [i for i in issues if (state == "all" or i["state"] == state)
                     and wanted <= set(i["labels"])]
            key = (query.get("order_by") or ["created_at"])[0]
            found.sort(key=lambda i: (i.get(key) or "", i["id"]),
                       reverse=(query.get("sort") or ["desc"])[0] == "desc")
            return self._paginate(found, path, query)
        if iid is None and method == "POST":
            return 201, fake.new_issue(pid, self._form(raw)), {}
        issue = next((i for i in issues if str(i["iid"]) == iid), None)
        if issue is None:
            raise HttpError(404, {"message": "404 Not found"})
        if method == "GET":
            return 200, issue, {}
        if method == "PUT":
            form = self._form(raw)
            for k in ("title", "description"):
                if k in form:
                    issue[k] = form[k]
            if "labels" in form:
                issue["labels"] = _labels(form["labels"])
            event = form.get("state_event")
            if event in ("close", "reopen"):
                issue["state"] = "closed" if event == "close" else "opened"
                issue["closed_at"] = _now() if event == "close" else None
            issue["updated_at"] = _now()
            return 200, issue, {}
        raise HttpError(405, {"message": "405 Method Not Allowed"})

    @staticmethod
    def _check_note(body: Any) -> None:
        if not body:
            raise HttpError(400, {"message":
                                  "400 Bad request - Note {:note=>[\"can't be blank\"]}"})
        if len(body) > NOTE_LIMIT:
            raise HttpError(400, {"message": "Note {:note=>[\"is too long (maximum is "
                                             f"{NOTE_LIMIT} characters)\"]}}"})


# --- fixtures ----------------------------------------------------------------------

PROJECT_ID = 5
PROJECT_PATH = "mlops/demo"
SHA = "3f2a9c1b7d8e4f60a1b2c3d4e5f60718293a4b5c"

_GITLAB_ENV = ("GITLAB_API_TOKEN", "REPO_TOKEN", "CI_JOB_TOKEN", "CI_SERVER_URL",
               "CI_API_V4_URL", "CI_PROJECT_ID", "CI_PROJECT_PATH", "CI_MERGE_REQUEST_IID",
               "CI_COMMIT_SHA", "CI_COMMIT_SHORT_SHA", "CI_COMMIT_BRANCH", "CI_JOB_URL",
               "CI_JOB_NAME", "CI_SERVER_HOST", "CI_GEN_PUSH_URL", "GITLAB_USER_NAME",
               "GITLAB_USER_EMAIL", "CI_COMMIT_REF_NAME")


@pytest.fixture
def gitlab_fake():
    fake = FakeGitLab().start()
    fake.add_project(PROJECT_ID, PROJECT_PATH)
    yield fake
    fake.stop()


@pytest.fixture
def clean_env(monkeypatch):
    """No GitLab variables from the caller's environment; fast, bounded retries."""
    for name in _GITLAB_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("CI_GEN_GITLAB_RETRIES", "3")
    monkeypatch.setenv("CI_GEN_GITLAB_MAX_WAIT", "0")
    monkeypatch.setenv("CI_GEN_GITLAB_TIMEOUT", "10")
    return monkeypatch


@pytest.fixture
def job_env(clean_env, gitlab_fake):
    """The predefined variables of a GitLab job in project 5, plus an API token."""
    env = {"CI_SERVER_URL": gitlab_fake.url, "CI_API_V4_URL": gitlab_fake.url + API,
           "CI_PROJECT_ID": str(PROJECT_ID), "CI_PROJECT_PATH": PROJECT_PATH,
           "CI_COMMIT_SHA": SHA, "CI_COMMIT_SHORT_SHA": SHA[:8],
           "CI_JOB_URL": f"{gitlab_fake.url}/{PROJECT_PATH}/-/jobs/991",
           "CI_JOB_NAME": "mlops-eval-report", "CI_JOB_TOKEN": "job-token-not-for-api",
           "GITLAB_API_TOKEN": gitlab_fake.token}
    for k, v in env.items():
        clean_env.setenv(k, v)
    return env
