"""Give finished records made before `method_code` existed the code digest of the method files that made
them (issue 25): for each part of a record's `method_source` (a digest of the whole file), find the
version of that file in git history with that digest and record the digest of its code without
docstrings and comments (`methods.base.code_digest_of_text`). A record whose file versions cannot all be
found is left as it is (it then compares file digests, as before).

    python scripts/add_method_code.py [results/runs]
"""

from __future__ import annotations

import hashlib
import inspect
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import methods as M  # noqa: E402
from bench import store  # noqa: E402
from methods.base import code_digest_of_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def versions(path: str) -> dict[str, str]:
    """{file digest: code digest} of every committed version of `path`, and of the working copy."""
    out = {}
    texts = [(REPO / path).read_text(encoding="utf-8")]
    commits = subprocess.run(["git", "-C", str(REPO), "log", "--format=%H", "--", path], capture_output=True, text=True)
    for commit in commits.stdout.split():
        shown = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:{path}"], capture_output=True)
        if shown.returncode == 0:
            texts.append(shown.stdout.decode("utf-8"))
    for text in texts:
        out[hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]] = code_digest_of_text(text)
    return out


def main(runs: Path) -> None:
    known: dict[str, dict[str, str]] = {}
    done = skipped = 0
    for path, rec in store.iter_records(runs):
        if rec is None or rec.get("method_code") or not rec.get("method_source"):
            continue
        code = {}
        for part, digest in rec["method_source"].items():
            if part not in M.REGISTRY:
                break
            file = str(Path(inspect.getfile(M.REGISTRY[part])).resolve().relative_to(REPO))
            if file not in known:
                known[file] = versions(file)
            if digest not in known[file]:
                break
            code[part] = known[file][digest]
        if len(code) == len(rec["method_source"]):
            store.write_record(path.parent, rec | {"method_code": code})
            done += 1
        else:
            skipped += 1
    print(f"method_code added to {done} records; {skipped} left without (their file versions are not in git)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/runs"))
