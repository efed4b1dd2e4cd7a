"""Download the real Fashion-MNIST files into train_data/, check them, and say how to version them.

    python get_data.py                      # the published mirrors, MD5-checked
    python get_data.py --base-url URL/      # your own mirror (same file names)

Then track the data with DVC (never with git):

    dvc add train_data && git add train_data.dvc .gitignore && dvc push train_data.dvc
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import fmnist_data

# Zalando's own bucket (see github.com/zalandoresearch/fashion-mnist), then the copy Keras uses.
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)
# MD5 of the published files, as listed by Zalando's README (and torchvision).
MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
EXPECTED_COUNTS = {"train": 60000, "t10k": 10000}


class DownloadError(RuntimeError):
    """A file could not be fetched or is not the published one (one-line message)."""


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: Path, timeout: float) -> None:
    """Download url to dest through a .part file, so an interrupted run leaves no half file."""
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            while block := response.read(1 << 16):
                out.write(block)
    except urllib.error.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: {reason}") from None
    part.replace(dest)


def download(out_dir: Path, mirrors: tuple[str, ...], check_md5: bool = True, timeout: float = 30.0) -> list[Path]:
    """Fetch the four files (skipping ones already present and correct); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in fmnist_data.ALL_FILES:
        dest = out_dir / name
        if dest.exists() and (not check_md5 or md5sum(dest) == MD5[name]):
            print(f"{dest}: already present")
            paths.append(dest)
            continue
        errors = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + name
            try:
                fetch(url, dest, timeout)
            except DownloadError as exc:
                errors.append(str(exc))
                continue
            if check_md5 and md5sum(dest) != MD5[name]:
                dest.unlink()
                errors.append(f"{url}: MD5 mismatch, not the published file")
                continue
            print(f"{dest}: downloaded from {url}")
            break
        else:
            raise DownloadError(f"could not download {name} ({'; '.join(errors)}); offline? copy the four files into {out_dir}/ by hand")
        paths.append(dest)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="train_data", help="target directory (default: train_data)")
    parser.add_argument("--base-url", help="download from this mirror only (URL of the directory holding the files)")
    parser.add_argument("--no-md5", action="store_true", help="skip the MD5 check (for a mirror of other IDX files)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per connection attempt (default: 30)")
    args = parser.parse_args(argv)
    mirrors = (args.base_url,) if args.base_url else MIRRORS
    out = Path(args.out)
    try:
        download(out, mirrors, check_md5=not args.no_md5, timeout=args.timeout)
        for split in fmnist_data.FILES:
            images, labels = fmnist_data.load_split(out, split)
            note = "" if len(images) == EXPECTED_COUNTS[split] else f" (the published set has {EXPECTED_COUNTS[split]})"
            print(f"{split}: {len(images)} images, labels 0-9 present: {sorted(set(labels.tolist())) == list(range(10))}{note}")
    except (DownloadError, fmnist_data.DataError) as exc:
        print(f"get_data.py: error: {exc}", file=sys.stderr)
        return 1
    print(
        "\nNext, version the data with DVC (it must never be committed to git):\n"
        f"  dvc add {out}\n"
        f"  git add {out}.dvc .gitignore && git commit -m 'Add Fashion-MNIST data'\n"
        f"  dvc push {out}.dvc        # to the data remote (dvc remote list)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
