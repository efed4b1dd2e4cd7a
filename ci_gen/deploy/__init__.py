"""Model releases on the runner host, for `ci-gen job deploy` and `ci-gen job stop`.

spec (the flags, validated) → release (deploy → health gate → rollback; stop), which uses
engines (process, docker, podman), health (probing) and state (release records, lock).
"""
