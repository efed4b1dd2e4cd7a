"""What the tag pipeline of ci-gen's own repository runs: the check that refuses a tag whose
version, CHANGELOG section or templates do not match (`tag`), and the exchange of GitLab's
OIDC token for a short-lived PyPI upload token (`pypi`). `python -m ci_gen.release` calls
them from `.gitlab-ci.yml`; nothing of a user's pipeline does."""
