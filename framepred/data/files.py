"""What every disk source shares: finding the path, and the bad-file policy."""

from __future__ import annotations

import logging
from pathlib import Path

from framepred.errors import FramepredError

log = logging.getLogger("framepred.data")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def existing_path(path: str | None, key: str, source: str, what: str) -> Path:
    """`path` as a Path, or a FramepredError naming the key when it is unset or missing."""
    if path is None or str(path) == "":
        raise FramepredError(f"{key} is not set; data={source} reads {what}: give {key}=PATH")
    resolved = Path(str(path)).expanduser()
    if not resolved.exists():
        raise FramepredError(f"{key}={path} does not exist; data={source} reads {what}")
    return resolved


class BadFiles:
    """`data.on_bad_file`: `error` stops at the first unreadable file, naming it;
    `skip` leaves it out with one warning line."""

    def __init__(self, policy: str):
        self.policy = policy
        self.skipped: list[Path] = []

    def __call__(self, path: Path, error: BaseException | str) -> None:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if self.policy != "skip":
            raise FramepredError(
                f"cannot read {path}: {reason}; fix or remove it, or set "
                "data.on_bad_file=skip to leave it out"
            )
        self.skipped.append(path)
        log.warning("skipping unreadable file %s: %s (data.on_bad_file=skip)", path, reason)
