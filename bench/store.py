"""Run records on disk: one JSON file per run key, written atomically; read back for resume/report."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import socket
import stat
import tempfile
import time
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


def with_failed_attempts(out: Path, record: dict) -> dict:
    """`record` with the failed attempts of its run that the record it replaces holds or is (date, error,
    command of each), so a failure that a later attempt replaced still leaves a trace."""
    previous = read_record(record_path(out, record["key"]))
    if previous is None:
        return record
    attempts = list(previous.get("failed_attempts", []))
    if previous.get("status") != "ok":
        attempts.append({k: previous.get(k) for k in ("date", "error", "command")})
    return record | {"failed_attempts": attempts} if attempts else record


def write_record(out: Path, record: dict) -> Path:
    """Write to a temporary file in the same folder, then rename: a reader never sees half a record
    and a failed write (a full disk) leaves no partial file. Records get the permissions of the
    user's umask (shared folders: colleagues can read them), as every other file does. Failed attempts
    of the run that the file held are carried into the new record (`failed_attempts`)."""
    out = Path(out)
    path = record_path(out, record["key"])
    record = with_failed_attempts(out, record)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if path.is_dir():  # a pipe or socket in the record's place is replaced by the rename below
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


# A claim is held while its process lives: on this host that is checked (the pid is alive and started
# before the claim was written, so a pid reused by an unrelated process does not hold it); from another
# host it cannot be, so such a claim is a lease that its holder renews while it trains (`renew`, at
# most every RENEW_S) and that lapses LEASE_S after the last renewal. A claim file that cannot be parsed
# (a launch killed or a disk filled between creating and writing it) is stale after WRITE_GRACE_S.
LEASE_S = 3600.0
RENEW_S = 60.0
WRITE_GRACE_S = 10.0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> float | None:
    """When process `pid` started (Unix time), from /proc; None where /proc does not say (not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of stat: start time in clock ticks after boot
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def read_claim(path: Path) -> dict | None:
    """The claim's holder {pid, host} (JSON, or the 'pid host' lines of older claims), or None."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe would block the reader for good; a folder is no claim
            return None
        text = path.read_text()
        holder = json.loads(text) if text.lstrip().startswith("{") else dict(zip(("pid", "host"), text.split()[:2]))
        return {"pid": int(holder["pid"]), "host": str(holder["host"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def claim_state(path: Path, now: float | None = None) -> tuple[dict | None, str | None]:
    """(holder or None, why the claim is stale, or None while it is held)."""
    now = time.time() if now is None else now
    try:
        written = path.stat().st_mtime
    except OSError:
        return None, "gone"
    holder = read_claim(path)
    if holder is None:
        return None, "empty or unreadable" if now - written > WRITE_GRACE_S else None
    if holder["host"] != socket.gethostname():
        return holder, f"its lease lapsed (not renewed for {LEASE_S:.0f} s)" if now - written > LEASE_S else None
    if not _alive(holder["pid"]):
        return holder, f"process {holder['pid']} is gone"
    started = process_start(holder["pid"])
    if started is not None and started > written + 1:  # the pid was reused after the claim was written
        return holder, f"pid {holder['pid']} now belongs to a process started after the claim"
    return holder, None


def claim(out: Path, key: str) -> Path | None:
    """Take the run `key` for this process: an exclusive lock file OUT/.claims/<key> naming the pid and
    host. None when another process holds it (see above), so concurrent launches of one grid, local or on
    SLURM, never train a run twice; a stale claim is taken over. A claim that cannot be written (a full
    disk) is removed and raises RecordWriteError."""
    d = claims_dir(out)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_failure(d, e) from None
    path = d / key
    me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}) + "\n"
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~umask())
        except FileExistsError:
            if claim_state(path)[1] is None:
                return None
            stale = path.with_name(f"{key}.stale.{os.getpid()}")
            try:
                os.rename(path, stale)  # only one taker wins the rename; the others see no file, then retry
                if stale.is_dir() and not stale.is_symlink():  # a folder in the claim's place (not ours to keep)
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                raise write_failure(path, e) from None
            continue
        except OSError as e:
            raise write_failure(path, e) from None
        try:
            with os.fdopen(fd, "w") as f:
                f.write(me)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            path.unlink(missing_ok=True)
            raise write_failure(path, e) from None
        return path
    return None


def renew(path: Path | None) -> None:
    """Renew the lease of a claim this process holds (its mtime); a failure to do so is not fatal."""
    if path is not None:
        try:
            os.utime(path)
        except OSError:
            pass


def held_claims(out: Path) -> list[tuple[str, dict | None, str | None]]:
    """(key, holder, why stale or None) of every claim file under OUT/.claims."""
    d = claims_dir(out)
    if not d.is_dir():
        return []
    # every entry, not only regular files: a pipe or a folder in a claim's place is named too (and is stale
    # after WRITE_GRACE_S, like any claim that cannot be read)
    names = [p for p in sorted(d.iterdir()) if ".stale." not in p.name and not p.name.startswith(".")]
    return [(p.name, *claim_state(p)) for p in names]


def release(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


# What a finished record must hold to be read as one (run, report and status read records alike).
REQUIRED = (
    ("spec.dataset", str),
    ("spec.task", str),
    ("spec.method", str),
    ("spec.ratio", (int, float)),
    ("spec.seed", int),
    ("spec.hparams", dict),
    ("counts.classes", list),
    ("metrics.per_class_acc", list),
    ("metrics.balanced_acc", (int, float)),
    ("metrics.macro_f1", (int, float)),
)


def _get(rec: dict, dotted: str):
    for part in dotted.split("."):
        rec = rec[part]
    return rec


def record_problem(rec: dict) -> str | None:
    """Why a finished record cannot go on a board, or None."""
    for dotted, tp in REQUIRED:
        try:
            value = _get(rec, dotted)
        except (KeyError, TypeError):
            return f"finished record without {dotted}"
        if not isinstance(value, tp) or isinstance(value, bool):
            return f"finished record whose {dotted} is not a {getattr(tp, '__name__', 'number')}"
    if not 0 < rec["spec"]["ratio"] <= 1:  # an edited record (issue 37: a board row '1:-1')
        return "finished record whose spec.ratio is outside (0, 1]"
    if len(rec["metrics"]["per_class_acc"]) != len(rec["counts"]["classes"]):
        return "finished record whose per-class accuracies do not match its classes"
    values = [*rec["metrics"]["per_class_acc"], rec["metrics"].get("balanced_acc", 0.0)]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return (
            "finished record with a non-finite accuracy (NaN is stored as null): the same `bench run` trains it again"
        )
    return None


def load_record(path: Path) -> tuple[dict | None, str | None]:
    """(record, None) or (None, why it cannot be used): missing, a directory, not UTF-8, not JSON,
    JSON that is not a record, or a finished record without the numbers a board needs. Never raises
    for a bad file."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe would block the reader for good
            return (
                None,
                "a directory, not a record file" if path.is_dir() else "not a regular file (a pipe, socket or device)",
            )
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
    if rec.get("status") == "ok":
        problem = record_problem(rec)
        if problem:
            return None, problem
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
