"""The model registry: GitLab's MLflow-compatible registry or an MLflow tracking server.

client (plain REST, only what GitLab supports), semver (version numbers), bundle (model files
as an archive + a manifest of hashes), lineage (what a version records), register (the
idempotent `register` job), catalog (what `ci-gen models` prints). No mlflow import here.
"""
