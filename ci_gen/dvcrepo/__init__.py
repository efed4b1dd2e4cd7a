"""Working with a project's DVC repository: the `dvc` tool's errors and remotes (`tool`),
remote credentials from CI/CD variables (`credentials`), and bringing a pipeline's outputs
back by restoring, reusing or reproducing them (`reproduce`).

Named `dvcrepo`, not `dvc`, so it never shadows the `dvc` package.
"""
