"""The one exception type for a user's mistake, and how entry points report it.

A `FramepredError` names the key, file or value at fault and what would be
accepted. Entry points turn it into one line on stderr and exit status 2;
anything else is a bug and keeps its traceback.

A command that stops on a user's mistake leaves nothing behind that it made before
its checks passed: Hydra creates the output folder, `.hydra/` and the log before the
command's own code runs, and those go again (`OutputFolders` notes what the folder
held before). A folder that holds more (a run that stopped after it began writing)
stays, and its log gets the same `framepred: error:` line.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path


class FramepredError(Exception):
    """A user's mistake: a bad config value, a missing file, unusable data."""


class exit_on_user_error:  # noqa: N801  (used as a context manager, reads like a statement)
    """In entry points: a FramepredError becomes one line on stderr and exit status 2.

    Hydra's own composition errors (unknown key, wrong type, unknown group option)
    never reach here; Hydra prints them itself and exits 1, unless the entry point
    called `install_cli_error_handler()` (every entry point does), which
    folds them onto one `framepred: error:` line and exits 2.
    """

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is not None and issubclass(kind, FramepredError):
            import logging
            import sys

            logging.getLogger("framepred").debug("user error", exc_info=error)
            print(f"framepred: error: {error}", file=sys.stderr, flush=True)
            after_failure(f"framepred: error: {error}")
            # Some failures carry their own status: 130/143 for a stop by Ctrl-C/SIGTERM.
            raise SystemExit(getattr(error, "exit_code", 2))
        return False


_OUTPUT_KEYS: dict[str, str] = {}  # command -> the key that sets its output folder
# command -> its hint for a key the schema lacks: `trainer.epoch` -> a message naming
# the closest key (framepred.config.unknown_key), or None where every part is a key.
_UNKNOWN_KEY_HINTS: dict[str, Callable[[str], str | None]] = {}
_NOT_A_KEY = re.compile(r"^Could not override '([^']+)'")
_NOISE = re.compile(r"^\s*(reference_type|object_type)=|^Config search path:|^\s*provider=")


def one_line(text: str) -> str:
    """Hydra's own error text, folded onto one line without the search-path dump:
    a list under a `...:` heading (the options of a group) becomes `heading: a, b`."""
    parts: list[str] = []
    listing = False  # inside the indented list under a heading that ends with ':'
    for line in text.splitlines():
        if not line.strip() or _NOISE.match(line):
            continue
        indented = line[:1].isspace()
        if indented and parts and (listing or parts[-1].endswith(":")):
            parts[-1] += (", " if listing else " ") + line.strip()
            listing = True
        else:
            parts.append(line.strip())
            listing = False
    return "; ".join(part.rstrip(".") for part in parts)


def install_cli_error_handler(output_key: str = "hydra.run.dir",
                              unknown_key: Callable[[str], str | None] | None = None) -> None:
    """Hydra prints composition errors over several lines and a failure to create or
    write the output folder as a traceback; this prints `framepred: error: ...` naming
    `output_key` (the key that sets the folder: predict's is `output`) and exits 2.
    `unknown_key(key)`: the message for an override of a key the command's schema
    lacks, which replaces Hydra's hint to add it with `+` (that only moves the error
    to our own check). HYDRA_FULL_ERROR=1 still gives Hydra's full report."""
    import hydra._internal.utils as hydra_utils

    # The command the user ran is the script Python runs (`python -m framepred.predict`:
    # argv[0] is .../predict.py); each entry point names its own key.
    command = _command(_caller_file())
    _OUTPUT_KEYS[command] = output_key
    if unknown_key is not None:
        _UNKNOWN_KEY_HINTS[command] = unknown_key

    original = hydra_utils.run_and_report
    if getattr(original, "framepred", False):
        return

    def run_and_report(func):
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            return original(func)
        try:
            return func()
        except Exception as error:  # noqa: BLE001  (sorted below; the rest go to Hydra)
            from hydra.errors import CompactHydraException
            from omegaconf.errors import OmegaConfBaseException

            hint = _unknown_key_hint(error)
            if hint is not None:
                message = hint
            elif isinstance(error, (CompactHydraException, OmegaConfBaseException)):
                text = str(error)
                if isinstance(error.__cause__, OmegaConfBaseException):
                    text += "\n" + str(error.__cause__)
                message = one_line(text)
                if "LexerNoViableAltException" in text and "=~" in text:
                    # `key=~/x` is no value in Hydra's grammar (`~key` deletes a key).
                    message += ("; a value cannot start with ~ on Hydra's command line: write "
                                "$HOME/... (the shell expands it) or quote it, "
                                "'data.path=\"~/...\"'")
            elif isinstance(error, OSError) and not _raised_in_framepred(error):
                message = (f"output folder {error.filename or ''} cannot be created "
                           f"({error.strerror}); set {_output_key()}= to a writable folder")
            elif _log_file_refused(error):
                # Hydra's logging config opens <output>/<job>.log before our code runs;
                # an existing folder without write permission fails there.
                cause = error.__cause__
                folder = Path(cause.filename).parent if cause.filename else ""
                message = (f"output folder {folder} cannot be written ({cause.strerror}); "
                           f"set {_output_key()}= to a writable folder")
            else:
                return original(lambda caught=error: _reraise(caught))
            print(f"framepred: error: {message}", file=sys.stderr, flush=True)
            sys.exit(2)

    run_and_report.framepred = True
    hydra_utils.run_and_report = run_and_report


def _unknown_key_hint(error: BaseException) -> str | None:
    """Our message for Hydra's "Could not override 'trainer.epoch'", or None."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    found = _NOT_A_KEY.match(str(error))
    hint = _UNKNOWN_KEY_HINTS.get(_command(sys.argv[0] if sys.argv else ""))
    if found is None or hint is None or not isinstance(
            error.__cause__, (ConfigKeyError, ConfigAttributeError)):
        return None
    return hint(found.group(1).lstrip("+~"))


# --- what a failed command leaves ---------------------------------------------------

# Output folder (absolute) -> the names it held before Hydra's job started, or None
# where it did not exist; and the first folder of its path that did not exist.
_FOLDERS_BEFORE: dict[str, tuple[frozenset[str] | None, Path | None]] = {}


class OutputFolders:
    """A Hydra callback (`hydra.callbacks` in each command's config): notes what the
    output folder holds before Hydra creates it and writes `.hydra/` and the log into
    it, so that `after_failure` removes only what this start added."""

    def on_run_start(self, config, **kwargs) -> None:
        _note_before(config.hydra.run.dir)

    def on_multirun_start(self, config, **kwargs) -> None:
        _note_before(config.hydra.sweep.dir)

    def __getattr__(self, name: str):
        if name.startswith("on_"):  # Hydra's other moments: nothing to do
            return lambda **kwargs: None
        raise AttributeError(name)


def _note_before(folder) -> None:
    path = Path(os.path.abspath(str(folder)))
    missing = None
    for parent in (path, *path.parents):
        if parent.exists():
            break
        missing = parent
    names = frozenset(p.name for p in path.iterdir()) if path.is_dir() else None
    _FOLDERS_BEFORE[str(path)] = (names, missing)


def after_failure(line: str) -> None:
    """After a user's mistake in a Hydra job: removes what Hydra made in the output
    folder when the command wrote nothing of its own there (its `.hydra/`, its log,
    empty folders; the folder itself, and the parents Hydra made, where they are new);
    else writes `line` at the end of the folder's log."""
    try:
        from hydra.core.hydra_config import HydraConfig

        output_dir = HydraConfig.get().runtime.output_dir
    except (ImportError, ValueError):
        return  # not inside a Hydra job
    if output_dir is None:
        return
    try:
        _tidy(Path(output_dir), line)
    except OSError:  # a folder we cannot tidy keeps what it has; the line is printed
        pass


def _tidy(folder: Path, line: str) -> None:
    import logging

    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    logs = {Path(h.baseFilename) for h in files}
    before, missing = _before(folder)
    if folder.is_dir():
        added = [p for p in folder.iterdir() if before is None or p.name not in before]
        if all(p in logs or p.name == ".hydra" or _empty_folder(p) for p in added):
            for handler in files:
                if Path(handler.baseFilename) in added:
                    logging.getLogger().removeHandler(handler)
                    handler.close()
            for path in added:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            if before is None:
                _remove_empty(folder, missing or folder)
    from framepred.console import to_log_file

    to_log_file(line)  # a log that was there before, or one this start wrote in


def _before(folder: Path) -> tuple[frozenset[str] | None, Path | None]:
    """What `OutputFolders` noted for `folder`. A sweep's job folder is new where its
    sweep folder was; without a note, all that is there counts as there before."""
    if str(folder) in _FOLDERS_BEFORE:
        return _FOLDERS_BEFORE[str(folder)]
    sweep = _FOLDERS_BEFORE.get(str(folder.parent))
    if sweep is not None and sweep[0] is None:
        return None, folder
    return frozenset(p.name for p in folder.iterdir()) if folder.is_dir() else None, None


def _empty_folder(path: Path) -> bool:
    return path.is_dir() and all(_empty_folder(p) for p in path.iterdir())


def _remove_empty(folder: Path, top: Path) -> None:
    """Removes `folder` and its parents up to `top`, each only while empty."""
    for path in (folder, *folder.parents):
        try:
            path.rmdir()
        except OSError:
            return
        if path == top:
            return


def _caller_file() -> str:
    return sys._getframe(2).f_code.co_filename


def _command(path: str) -> str:
    """`.../framepred/predict.py`, `framepred.predict` or the installed console script
    `.../bin/framepred-predict` (what sys.argv[0] is under `framepred-predict`) ->
    "predict"."""
    name = Path(path).name
    if name.startswith("framepred-"):
        return name[len("framepred-"):]
    return Path(path).stem if path.endswith(".py") else path.rpartition(".")[2]


def _output_key() -> str:
    """The key that sets the running command's output folder."""
    return _OUTPUT_KEYS.get(_command(sys.argv[0] if sys.argv else ""), "hydra.run.dir")


def _log_file_refused(error: BaseException) -> bool:
    """logging.config's "Unable to configure handler 'file'", caused by an OSError."""
    return (isinstance(error, ValueError) and "Unable to configure handler" in str(error)
            and isinstance(error.__cause__, OSError))


def _reraise(error):
    raise error


def _raised_in_framepred(error: BaseException) -> bool:
    """An OSError from our own code is a bug (ours report theirs as FramepredError);
    one from Hydra alone is Hydra creating the output folder."""
    package, here = str(Path(__file__).resolve().parent), str(Path(__file__).resolve())
    frame = error.__traceback__
    while frame is not None:
        name = frame.tb_frame.f_code.co_filename
        if name.startswith(package) and name != here:
            return True
        frame = frame.tb_next
    return False
