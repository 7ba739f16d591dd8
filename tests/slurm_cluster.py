"""A real single-node SLURM cluster in a temporary folder, for tests: munged, slurmctld, slurmd.

No systemd, no cgroups, no accounting database: every file (key, sockets, state, logs, pid files)
lives under the folder, and stop() ends exactly the daemons start() began. Needs root and Debian's
`slurm-wlm` and `munge` (installed on the fly when missing and apt-get is usable).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


class ClusterUnavailable(RuntimeError):
    """Why the daemons cannot run here (the test skips with this reason)."""


def ensure_installed() -> None:
    if all(shutil.which(d) or Path(f"/usr/sbin/{d}").exists() for d in DAEMONS):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ClusterUnavailable("slurm-wlm/munge are not installed and this user cannot apt-get install them")
    r = subprocess.run(
        ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"], capture_output=True, text=True, timeout=600
    )
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=300)
        r = subprocess.run(
            ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"], capture_output=True, text=True, timeout=600
        )
    if r.returncode != 0:
        raise ClusterUnavailable(f"apt-get install slurm-wlm munge failed: {r.stderr.strip()[-200:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_mb() -> int:
    with open("/proc/meminfo") as f:
        kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return kb // 1024


class Cluster:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.started: list[Path] = []  # pid files of daemons this object started

    def _sbin(self, name: str) -> str:
        return shutil.which(name) or f"/usr/sbin/{name}"

    def start(self, timeout_s: float = 60) -> Cluster:
        if os.geteuid() != 0:
            raise ClusterUnavailable("the test cluster's daemons run as root (SlurmUser=root)")
        ensure_installed()
        r = self.root
        for d in ("munge", "state", "spool", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        (r / "munge").chmod(0o755)  # munged refuses a socket directory of mode 700
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = r / "munge" / "munge.socket"
        self._run(
            [
                self._sbin("munged"),
                "--force",
                f"--key-file={key}",
                f"--socket={sock}",
                f"--pid-file={r / 'munge' / 'munged.pid'}",
                f"--log-file={r / 'log' / 'munged.log'}",
                f"--seed-file={r / 'munge' / 'munged.seed'}",
            ],
            r / "munge" / "munged.pid",
        )
        host = socket.gethostname()
        cpus = os.cpu_count() or 1
        self.conf.write_text(f"""ClusterName=benchtest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool"}
SlurmctldPidFile={r / "slurmctld.pid"}
SlurmdPidFile={r / "slurmd.pid"}
SlurmctldLogFile={r / "log" / "slurmctld.log"}
SlurmdLogFile={r / "log" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
NodeName={host} CPUs={cpus} RealMemory={max(512, _mem_mb() - 2048)} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        self._run([self._sbin("slurmctld"), "-f", str(self.conf)], r / "slurmctld.pid")
        self._run([self._sbin("slurmd"), "-f", str(self.conf)], r / "slurmd.pid")
        deadline = time.time() + timeout_s
        state = ""
        while time.time() < deadline:
            state = self.sinfo()
            if state.startswith("idle"):
                return self
            time.sleep(1)
        self.stop()
        raise ClusterUnavailable(f"the node never became idle (sinfo said {state!r}); see {r / 'log'}")

    def _run(self, cmd: list[str], pid_file: Path) -> None:
        res = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=30)
        for _ in range(50):  # daemons fork; wait for their pid file
            if pid_file.exists() and pid_file.read_text().strip():
                self.started.append(pid_file)
                return
            time.sleep(0.1)
        self.stop()
        raise ClusterUnavailable(f"{Path(cmd[0]).name} did not start: {(res.stderr or res.stdout).strip()[-300:]}")

    def sinfo(self) -> str:
        try:
            return subprocess.run(
                ["timeout", "5", "sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=self.env, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    def squeue(self) -> str:
        return subprocess.run(
            ["squeue", "-o", "%.12i %.10j %.8T %.10M %R"], capture_output=True, text=True, env=self.env, timeout=10
        ).stdout

    def stop(self) -> None:
        for pid_file in reversed(self.started):
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        self.started = []
