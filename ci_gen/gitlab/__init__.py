"""Everything that talks to a GitLab server: the API client (`api`), server-side CI lint
(`ci_lint`), report notes (`notes`), CI/CD variables (`variables`) and the git push of DVC
pointers back to the project (`pointers`).

Named like python-gitlab's package on purpose (it is the GitLab concern); every module here
uses absolute imports, so `import gitlab` inside them is always python-gitlab. Nothing is
imported at package level: `ci-gen --help` must not load python-gitlab or requests.
"""
