"""A component header against the CI/CD Catalog's own schema, vendored from GitLab.

GitLab validates each component's `spec` with
`app/validators/json_schemas/catalog_resource_component_spec.json`
(`app/models/ci/catalog/resources/component.rb`) only when a release is published to the
Catalog: an ordinary pipeline takes a header the Catalog refuses (a decimal `default`, a key
beside `inputs`), so nothing before the release would notice. `ci-gen build --check` and
`ci-gen lint` check every component header against the same file, kept in `vendor/` unchanged.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

# Where the vendored file comes from (vendor/README.md says the same; a test checks the hash).
GITLAB_PATH = "app/validators/json_schemas/catalog_resource_component_spec.json"
GITLAB_COMMIT = "1c950e0a199b3d7d28f0fb1705801ce06a9878c8"
SHA256 = "38c5f1b61bf5e77fae0ab568edfd34f7feebba97cf9370438a470102763b4e13"
_FILE = "catalog_resource_component_spec.json"


def schema_text() -> bytes:
    return resources.files("ci_gen.lint").joinpath("vendor", _FILE).read_bytes()


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft7Validator

    return Draft7Validator(json.loads(schema_text()))


def problems(spec: Any) -> list[tuple[tuple, str]]:
    """(key path under `spec`, message) for each thing the Catalog refuses in a `spec:`.
    A decimal default names the input and says what to do instead."""
    out = []
    for err in sorted(_validator().iter_errors(spec), key=lambda e: [str(p) for p in e.absolute_path]):
        path = tuple(err.absolute_path)
        if len(path) == 3 and path[0] == "inputs" and path[2] == "default" and isinstance(err.instance, float):
            out.append((path, f"input {path[1]!r}: default {err.instance!r} is a decimal, which the CI/CD "
                              "Catalog refuses (a default is an array, boolean, integer or string); make the "
                              "input a string with a decimal `regex`, or count in whole units"))
            continue
        where = ".".join(str(p) for p in path) or "spec"
        out.append((path, f"{where}: {err.message} (refused by the CI/CD Catalog)"))
    return [(p, f"{m}; GitLab's {GITLAB_PATH}") for p, m in out]
