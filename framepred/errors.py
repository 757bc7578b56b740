"""The one exception type for a user's mistake, and how entry points report it.

A `FramepredError` names the key, file or value at fault and what would be
accepted. Entry points turn it into one line on stderr and exit status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import re
import sys
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
            # Some failures carry their own status: 130/143 for a stop by Ctrl-C/SIGTERM.
            raise SystemExit(getattr(error, "exit_code", 2))
        return False


_OUTPUT_KEYS: dict[str, str] = {}  # command -> the key that sets its output folder
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


def install_cli_error_handler(output_key: str = "hydra.run.dir") -> None:
    """Hydra prints composition errors over several lines and a failure to create or
    write the output folder as a traceback; this prints `framepred: error: ...` naming
    `output_key` (the key that sets the folder: predict's is `output`) and exits 2.
    HYDRA_FULL_ERROR=1 still gives Hydra's full report."""
    import hydra._internal.utils as hydra_utils

    # The command the user ran is the script Python runs (`python -m framepred.predict`:
    # argv[0] is .../predict.py); each entry point names its own key.
    _OUTPUT_KEYS[_command(_caller_file())] = output_key

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

            if isinstance(error, (CompactHydraException, OmegaConfBaseException)):
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


def _caller_file() -> str:
    return sys._getframe(2).f_code.co_filename


def _command(path: str) -> str:
    """`.../framepred/predict.py` or `framepred.predict` -> "predict"."""
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
