"""The logic of the components' jobs, as `ci-gen job NAME` subcommands.

Components cannot ship files (GitLab issue 439478), so instead of long shell in YAML each
job calls one of these tested modules, installed at the component's own version.
"""
