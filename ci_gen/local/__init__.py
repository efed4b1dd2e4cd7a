"""`ci-gen run`: a project's pipeline run locally and offline with gitlab-ci-local.

- `tool`: finding gitlab-ci-local and the host tools it calls;
- `project`: the git work tree it runs from (preconditions, origin remote, `ProjectContext`);
- `includes`: the project's includes resolved offline, ci-gen components written where
  gitlab-ci-local looks before it fetches;
- `origin`: the bare repository standing in for the GitLab project, and the MR target ref;
- `environment`: the jobs' environment and the CI/CD variables of a local run;
- `jobenv`: runner-like jobs (the default): a stand-in for each job's image, set up by a
  BASH_ENV script, and the caller's CI/CD variables and tokens withheld;
- `runtime`: ci-gen's own wheel, the PEP 503 index holding it, the runtime venv;
- `gitlab_ci_local`: driving the tool (plan, execute, progress, summary lines);
- `pipeline`: the run itself, `run_local`.
"""
