"""The one exception type for a user's mistake.

A `FramepredError` names the key, file or value at fault and what would be
accepted. Entry points turn it into one line on stderr and exit status 2;
anything else is a bug and keeps its traceback.
"""


class FramepredError(Exception):
    """A user's mistake: a bad config value, a missing file, unusable data."""


class exit_on_user_error:  # noqa: N801  (used as a context manager, reads like a statement)
    """In entry points: a FramepredError becomes one line on stderr and exit status 2.

    Hydra's own composition errors (unknown key, wrong type, unknown group option)
    never reach here; Hydra prints them itself and exits 1, unless the entry point
    called `framepred.resilience.install_cli_error_handler()` (train does), which
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
