"""The run folder: one definition of where a run writes what.

    <run>/config.yaml          the composed config
    <run>/overrides.txt        the command line's overrides, one a line
    <run>/train.log            the log (Hydra's job log)
    <run>/checkpoints/best.keras, last.keras, best.json (the best value and its epoch)
    <run>/tensorboard/         train/, validation/, images and hparams
    <run>/metrics.json         per-step forecast metrics, model and every baseline
    <run>/metrics.csv          the same, one row per (entry, step)
    <run>/normalization.json   data.normalize's statistics (training split)
    <run>/backup/              resumable training state (framepred.callbacks.checkpoints.Backup)
    <run>/complete.json        written last: the run finished (a second start does nothing)
    <run>/replaced/<time>/     an earlier run's files, set aside by trainer.resume=false
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framepred.errors import FramepredError

# Inside every checkpoint the run writes, so that a copy travels with what it needs:
# {file in the run folder: member of the .keras zip}.
RUN_MEMBERS = {"config.yaml": "framepred/config.yaml",
               "normalization.json": "framepred/normalization.json"}

_UMASK = os.umask(0o022)  # read once: the only way to learn the umask is to set it
os.umask(_UMASK)


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def overrides(self) -> Path:
        return self.root / "overrides.txt"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.keras"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.keras"

    @property
    def best_record(self) -> Path:
        """best.keras's monitored value and epoch, so a resume does not replace it with
        a worse epoch."""
        return self.checkpoints / "best.json"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def normalization(self) -> Path:
        return self.root / "normalization.json"

    @property
    def metrics_csv(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def backup(self) -> Path:
        return self.root / "backup"

    @property
    def complete(self) -> Path:
        return self.root / "complete.json"

    @property
    def replaced(self) -> Path:
        return self.root / "replaced"

    def artifacts(self) -> tuple[Path, ...]:
        """What a run writes at the top of its folder (best.keras and the rest below
        lie inside these), less the log and `replaced/`: what a fresh start
        (`trainer.resume=false`) sets aside. Read off the properties, so that a file
        added to the layout cannot be left behind for the next run to pick up, as
        normalization.json once was. The log stays: Hydra holds it open
        for the start that sets the rest aside."""
        paths = (getattr(self, name) for name, member in vars(RunPaths).items()
                 if isinstance(member, property))
        return tuple(path for path in paths
                     if path.parent == self.root and path not in (self.log, self.replaced))

    def create(self) -> RunPaths:
        try:
            for folder in (self.root, self.checkpoints, self.tensorboard):
                folder.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise FramepredError(
                f"output folder {self.root} cannot be written ({error.strerror}); "
                "set hydra.run.dir to a writable folder"
            ) from None
        return self

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> RunPaths:
        """The run a checkpoint belongs to: <run>/checkpoints/<name>.keras."""
        return cls(Path(checkpoint).resolve().parent.parent)


def scratch_write(path: Path, write) -> None:
    """Calls `write(tmp_path)` into a private temporary folder and throws the file away.

    The processes of a multi-process JAX job other than 0 save this way: reading a
    model's sharded variables out is a collective step that every process must join,
    but only process 0 keeps what it wrote."""
    with tempfile.TemporaryDirectory(prefix="framepred-scratch-") as folder:
        write(str(Path(folder) / Path(path).name))


def atomic_write(path: Path, write) -> None:
    """Calls `write(tmp_path)`, then renames over `path`, so a kill mid-write never
    leaves a truncated file. The temporary keeps `path`'s suffix (Keras checks it)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix,
                                       dir=path.parent)
        os.close(handle)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from others
        write(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError):
            # Disk full, permissions: the user's to fix; the previous file is whole.
            kept = "; the previous version is kept" if path.exists() else ""
            raise FramepredError(
                f"could not write {path} ({error.strerror or error}){kept}"
            ) from None
        raise


def strict_json(payload: Any, indent: int | None = 2) -> str:
    """`payload` as strict JSON (RFC 8259): a NaN or infinite number is written `null`.

    Python's `json` writes `NaN` and `Infinity` by default, which JavaScript's
    `JSON.parse`, Go's `encoding/json` and `json.loads(..., parse_constant=...)` reject.
    A score that has no value (a skill score of a baseline with no events) is `null`.
    """
    return json.dumps(_finite_or_none(payload), indent=indent, allow_nan=False)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):  # numpy's float64 too
        return None
    return value


def write_json(path: Path, payload: Any) -> None:
    """`payload` to `path` as strict JSON (`strict_json`), atomically."""
    text = strict_json(payload) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_json(path: Path) -> dict | None:
    """The JSON object at `path`, or None where it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def saved_states(backup: Path) -> list[Path]:
    """The backup's saved training states, newest first; names sort by (epoch, step)."""
    if not backup.is_dir():
        return []
    return sorted((p for p in backup.iterdir() if p.name.startswith("state-")), reverse=True)
