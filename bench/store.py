"""Run records on disk: one JSON file per run key, written atomically; read back for resume/report."""

from __future__ import annotations

import errno
import json
import math
import os
import socket
import tempfile
from pathlib import Path

DEFAULT_OUT = Path("results/runs")


def record_path(out: Path, key: str) -> Path:
    return Path(out) / f"{key}.json"


def _clean(o):
    """JSON has no NaN: store it as null so every reader can parse the record."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    return o


class RecordWriteError(OSError):
    """A record (or other output) could not be written; the message is one line naming what to do."""


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_failure(path: Path, e: OSError) -> RecordWriteError:
    """One line for an OSError met while writing `path`: what happened and what to do."""
    if e.errno == errno.ENOSPC:
        return RecordWriteError(
            f"no space left on the device writing {path}; free some space and run the same command again: "
            "finished records are kept and the grid resumes"
        )
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return RecordWriteError(f"cannot write {path}: {e.strerror}; pass a writable --out folder")
    if e.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        return RecordWriteError(f"cannot write {path}: {e.strerror} (a file or folder is in the way); remove it")
    return RecordWriteError(f"cannot write {path}: {e.strerror or type(e).__name__}")


def prepare_out(out: Path) -> Path:
    """Create the records folder, or fail with one line (a file in the way, read-only, /proc, ...)."""
    out = Path(out)
    if str(out) in ("", "."):
        raise RecordWriteError("--out must name a folder for the records, e.g. --out results/runs")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".probe.", delete=True)
        probe.close()
    except OSError as e:
        raise write_failure(out, e) from None
    return out


def write_record(out: Path, record: dict) -> Path:
    """Write to a temporary file in the same folder, then rename: a reader never sees half a record
    and a failed write (a full disk) leaves no partial file. Records get the permissions of the
    user's umask (shared folders: colleagues can read them), as every other file does."""
    out = Path(out)
    path = record_path(out, record["key"])
    try:
        out.mkdir(parents=True, exist_ok=True)
        if path.exists() and not path.is_file():
            raise IsADirectoryError(errno.EISDIR, "a folder has the record's name", str(path))
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{record['key']}.", suffix=".tmp")
    except OSError as e:
        raise write_failure(path, e) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_clean(record), f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise write_failure(path, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ---- claims: one process per run key at a time ---------------------------------------------------


def claims_dir(out: Path) -> Path:
    return Path(out) / ".claims"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(out: Path, key: str) -> Path | None:
    """Take the run `key` for this process: an exclusive lock file OUT/.claims/<key> (pid and host).
    None when another live process holds it, so concurrent launches of one grid, local or on SLURM,
    never train a run twice. A claim left by a dead process on this host is taken over."""
    d = claims_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    path = d / key
    me = f"{os.getpid()} {socket.gethostname()}\n"
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~umask())
        except FileExistsError:
            try:
                pid, host = path.read_text().split()[:2]
            except (OSError, ValueError):
                pid, host = "0", socket.gethostname()  # half written or vanished: look again
            if host != socket.gethostname() or _alive(int(pid)):
                return None
            stale = path.with_name(f"{key}.stale.{os.getpid()}")
            try:
                os.rename(path, stale)  # only one taker wins the rename; the others see no file, then retry
                stale.unlink()
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        return path
    return None


def release(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def load_record(path: Path) -> tuple[dict | None, str | None]:
    """(record, None) or (None, why it cannot be used): missing, a directory, not UTF-8, not JSON,
    or JSON that is not a record. Never raises for a bad file."""
    try:
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
    except IsADirectoryError:
        return None, "a directory, not a record file"
    except OSError as e:
        return None, f"cannot be read ({e.strerror or type(e).__name__})"
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except ValueError as e:  # json.JSONDecodeError
        return None, f"not valid JSON ({str(e).splitlines()[0][:80]})"
    if not isinstance(rec, dict) or not isinstance(rec.get("spec"), dict) or not isinstance(rec.get("key"), str):
        return None, "JSON without a run key and spec"
    return rec, None


def read_record(path: Path) -> dict | None:
    """The record at `path`, or None when it is missing or unreadable (the caller decides what that means)."""
    return load_record(path)[0]


def is_done(out: Path, key: str) -> bool:
    rec = read_record(record_path(out, key))
    return rec is not None and rec.get("status") == "ok"


def record_files(out: Path):
    """Every *.json under `out`, recursively, sorted by path; folders whose name starts with '.' (grid
    manifests, SLURM bookkeeping) hold no records and are skipped."""
    out = Path(out)
    for path in sorted(out.rglob("*.json")):
        if not any(part.startswith(".") for part in path.relative_to(out).parts):
            yield path


def iter_records(out: Path):
    """(path, record or None) for every record file under `out` (see `record_files`)."""
    for path in record_files(out):
        yield path, read_record(path)
