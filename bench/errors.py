"""The errors the CLI turns into one line and exit code 2."""

from datasets import DataError
from methods import MethodError


class BenchError(ValueError):
    """A bad harness option; its message names the fix."""


from .store import RecordWriteError  # noqa: E402

USER_ERRORS = (BenchError, DataError, MethodError, RecordWriteError)
