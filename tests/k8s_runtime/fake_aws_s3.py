"""A stand-in `aws` command for the sync scripts: `aws s3 sync` and `aws s3 rm` over a
local directory ($FAKE_S3_ROOT/<bucket>/<key>), with aws-cli's filter rules.

aws-cli semantics kept here: filters (`--exclude`/`--include`) apply in order, the last
match wins, everything is included by default; patterns match the path relative to the
source (and, for `--delete`, to the destination) with `*` crossing `/`; excluded files on
the destination are never deleted; `sync` copies files that are missing or differ in size
or modification time. Run as a script (tests write a shim named `aws` that execs it).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
from pathlib import Path


def _split(args: list[str]) -> tuple[list[str], list[tuple[str, str]], set[str]]:
    positional: list[str] = []
    filters: list[tuple[str, str]] = []
    flags: set[str] = set()
    it = iter(args)
    for arg in it:
        if arg in ("--exclude", "--include"):
            filters.append((arg, next(it)))
        elif arg.startswith("--"):
            flags.add(arg)
        else:
            positional.append(arg)
    return positional, filters, flags


def _included(relative: str, filters: list[tuple[str, str]]) -> bool:
    keep = True
    for kind, pattern in filters:
        if fnmatch.fnmatchcase(relative, pattern):
            keep = kind == "--include"
    return keep


def _local(location: str) -> Path:
    if location.startswith("s3://"):
        return Path(os.environ["FAKE_S3_ROOT"]) / location.removeprefix("s3://")
    return Path(location)


def _files(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}


def sync(src: Path, dst: Path, filters: list[tuple[str, str]], delete: bool) -> None:
    source = {k: p for k, p in _files(src).items() if _included(k, filters)}
    for key, path in source.items():
        target = dst / key
        stat = path.stat()
        if target.is_file() and (target.stat().st_size, target.stat().st_mtime) == (
            stat.st_size,
            stat.st_mtime,
        ):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    if delete:
        for key, path in _files(dst).items():
            if key not in source and _included(key, filters):
                path.unlink()


def rm(target: Path, filters: list[tuple[str, str]]) -> None:
    for key, path in _files(target).items():
        if _included(key, filters):
            path.unlink()


def main(argv: list[str]) -> int:
    if os.environ.get("AWS_FAIL"):
        return 1
    if argv[:1] != ["s3"]:
        return 2
    positional, filters, flags = _split(argv[1:])
    command = positional[0]
    if command == "sync":
        sync(_local(positional[1]), _local(positional[2]), filters, "--delete" in flags)
    elif command == "rm" and "--recursive" in flags:
        rm(_local(positional[1]), filters)
    else:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
