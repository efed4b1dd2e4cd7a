"""One module per `ci-gen` command; see `ci_gen.cli`."""
