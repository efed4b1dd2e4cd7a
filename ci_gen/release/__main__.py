"""`python -m ci_gen.release`: the tag pipeline's steps (see `.gitlab-ci.yml`); parse and call.

  check TAG --notes FILE   refuse TAG unless version, CHANGELOG and templates match; write notes
  image-tags TAG           print the runtime image's tags (X.Y.Z X.Y X)
  pypi-token [--index URL] print the upload token minted for $PYPI_ID_TOKEN (trusted publishing)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ci_gen.errors import CiGenError
from ci_gen.files import atomic_write
from ci_gen.release import tag

# pypi (requests, pydantic) is imported by the step that uses it: `check` and `image-tags`
# run on a bare python image with the standard library only.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ci_gen.release")
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("check")
    p.add_argument("tag")
    p.add_argument("--root", type=Path, default=Path("."))
    p.add_argument("--notes", type=Path, required=True, metavar="FILE")
    p = sub.add_parser("image-tags")
    p.add_argument("tag")
    p = sub.add_parser("pypi-token")
    p.add_argument("--index", help="the index to mint for (default: pypi.org)")
    args = parser.parse_args(argv)
    try:
        if args.step == "check":
            atomic_write(args.notes, tag.check(args.root, args.tag))
            print(f"release {args.tag}: version, CHANGELOG and templates match; notes in {args.notes}")
        elif args.step == "image-tags":
            print(" ".join(tag.image_tags(args.tag)))
        else:
            from ci_gen.release import pypi
            print(pypi.mint_token(os.environ.get("PYPI_ID_TOKEN", ""), args.index or pypi.PYPI))
    except CiGenError as exc:
        print(f"ci-gen: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
