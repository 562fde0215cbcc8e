"""The sandbox the grader (common/grading/grade.py) runs student code in: who a child runs as, what it can see,
and how every process it started is found and killed. Linux; see grade.py's docstring for what it promises.

As root: each child runs as a fresh uid (FRESH_UID_RANGE, no passwd entry, no process) or `--user`, with no
supplementary groups, PR_SET_NO_NEW_PRIVS, RLIMIT_NPROC and no core dumps, in a private mount namespace where
- folders others cannot enter on the way to the interpreter (e.g. /root, mode 0700, under a pyenv install) become an
  empty tmpfs holding only bind mounts of what is needed (so the rest of them stays out of sight),
- the instructor's folders (`hide`) are covered by empty read-only tmpfs mounts of mode 000,
- /proc is remounted with hidepid=2 (other users' processes, the grader's command line included, are invisible).
Where the kernel refuses a mount namespace, the `hide` folders are chmod go-rwx for the run instead and restored.
Without root: the grader's own uid, and only the killing below.

Killing: the grader is a child subreaper while it grades (orphans re-parent to it); `kill_all` sends SIGKILL to
every process of the child's uid (kill(-1) sent as that uid: atomic, and exact because the uid is fresh) and reaps
them, until none is left. Without root (no uid of its own for the submission) it kills every descendant of the
grader that was not there when the sandbox was made instead: so a program that grades in-process must not start
processes of its own in other threads meanwhile.
"""
from __future__ import annotations

import ctypes
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

try:  # POSIX only
    import pwd
    import resource
except ImportError:
    pwd = resource = None

FRESH_UID_RANGE = (1_700_000_000, 1_800_000_000)
CHILD_NPROC = 1024  # processes + threads of the child's uid
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")  # world-writable: cleaned of the fresh uid's files after a run


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


_libc = ctypes.CDLL(None, use_errno=True) if os.name == "posix" else None
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 1, 38, 36, 37
CLONE_NEWNS, MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = \
    0x20000, 1, 2, 4, 8, 4096, 16384, 1 << 18
_probe_cache: dict[tuple, bool] = {}


_uids_taken: set[int] = set()  # by the runs of this process (several may grade at once, in threads)
_lock = threading.Lock()


def _fresh_uid() -> int:
    rng = random.SystemRandom()
    in_use = {p["uid"] for p in _processes().values()}
    while True:
        uid = rng.randrange(*FRESH_UID_RANGE)
        try:
            pwd.getpwuid(uid)
        except KeyError:
            with _lock:
                if uid not in in_use and uid not in _uids_taken:
                    _uids_taken.add(uid)  # never handed out twice by this process
                    return uid


def _processes() -> dict[int, dict]:
    """pid -> {ppid, uid, zombie} for every process this one can see."""
    found = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", encoding="utf-8") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            found[int(name)] = {"ppid": int(fields["PPid"]), "uid": int(fields["Uid"].split()[0]),
                                "zombie": fields["State"].strip().startswith(("Z", "X"))}
        except (OSError, KeyError, ValueError):
            pass
    return found


def _descendants(pid: int, procs: dict[int, dict]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p, info in procs.items():
        children.setdefault(info["ppid"], []).append(p)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _running_as_root() -> bool:
    return os.name == "posix" and os.geteuid() == 0


class Sandbox:
    """How children are started and ended: as root, a fresh uid in a mount namespace; else the grader's own uid."""

    def __init__(self, run_dir: Path, hide: list[Path], user: str | None = None):
        self.root = _running_as_root()
        self.hide = [p for p in dict.fromkeys(p.resolve() for p in hide) if p.is_dir() and not _inside(run_dir, p)]
        self.uid = self.gid = None
        self.fresh = not user  # a uid made up for this run (not an existing user's)
        self.namespace = False
        self.locked: list[tuple[Path, int]] = []
        self.before = _descendants(os.getpid(), _processes())  # not ours to kill
        self.notes: list[str] = []
        self.expose = _blocked_ancestors(_needed_paths(run_dir)) if self.root else []
        self.stash = run_dir / "private" / "mounts"
        if self.root:
            self._choose_user(user)

    def _choose_user(self, user: str | None) -> None:
        if user:
            entry = pwd.getpwnam(user)
            candidates = [(entry.pw_uid, entry.pw_gid)]
        else:
            uid = _fresh_uid()
            nobody = pwd.getpwnam("nobody")
            candidates = [(uid, uid), (nobody.pw_uid, nobody.pw_gid)]
        for uid, gid in candidates:
            for namespace in (True, False):
                if (namespace or not self.expose) and _probe(uid, gid, namespace, self.expose):
                    self.uid, self.gid, self.namespace = uid, gid, namespace
                    break
            if self.uid is not None:
                break
        if self.uid is None:
            raise RuntimeError("running as root, but cannot start a process as another user; refusing to run "
                               "student code as root")
        if not self.namespace:  # the fallback: folders others cannot enter, for the run
            for path in self.hide:
                mode = path.stat().st_mode & 0o7777
                os.chmod(path, mode & 0o7700)
                self.locked.append((path, mode))
        self.notes.append(f"student code ran as uid {self.uid}, " + (
            "with the instructor's folders hidden in a mount namespace" if self.namespace else
            "with the instructor's folders made inaccessible to others (no mount namespace: "
            "the kernel refused one)"))

    def restore(self) -> None:
        """Undo the run's changes: folder modes back, and what the fresh uid left in the shared temporary folders
        removed (a later submission on this machine must not find it)."""
        for path, mode in self.locked:
            os.chmod(path, mode)
        self.locked = []
        if self.root and self.fresh:
            for shared in SHARED_TMP:
                try:
                    entries = list(os.scandir(shared))
                except OSError:
                    continue
                for entry in entries:
                    try:
                        if entry.stat(follow_symlinks=False).st_uid != self.uid:
                            continue
                        if entry.is_dir(follow_symlinks=False):
                            shutil.rmtree(entry.path, ignore_errors=True)
                        else:
                            os.unlink(entry.path)
                    except OSError:
                        pass

    def preexec(self):
        """The function run in the forked child before exec (as root), or None without root."""
        if not self.root:
            return None
        self.stash.mkdir(parents=True, exist_ok=True)
        stash = Path(tempfile.mkdtemp(dir=self.stash))
        return _make_preexec(self.uid, self.gid, self.hide if self.namespace else None, self.expose, stash)

    def own(self, path: Path) -> None:
        if self.root:
            os.chown(path, self.uid, self.gid)

    def kill_all(self) -> bool:
        """Kill every process of the submission, reap them; True when none is left."""
        me = os.getpid()
        for attempt in range(200):
            if self.root:
                subprocess.run(["/bin/true"] if os.path.exists("/bin/true") else [sys.executable, "-c", ""],
                               preexec_fn=_make_killer(self.uid, self.gid), check=False)
            procs = _processes()
            if self.root:
                # Everything the submission starts runs as its uid and cannot leave it (no privileges, no new ones),
                # so the uid names its processes exactly; other descendants of this process (its caller's own, such
                # as a test run's notebook kernels) are not the submission's and are left alone.
                ours = {p for p, info in procs.items() if info["uid"] == self.uid}
            else:
                ours = _descendants(me, procs) - self.before
            alive = {p for p in ours if not procs[p]["zombie"]}
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            for pid in ours:  # zombies re-parented to us (we are their subreaper)
                if procs.get(pid, {}).get("ppid") == me:
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
            if not alive and not any(procs[p]["ppid"] == me for p in ours if p in procs and procs[p]["zombie"]):
                return True
            time.sleep(0.01 if attempt < 50 else 0.05)
        return False


def _make_killer(uid: int, gid: int):
    def kill_everything_of_the_uid():
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        try:
            os.kill(-1, signal.SIGKILL)  # every process of this uid but this one, atomically
        except ProcessLookupError:
            pass
    return kill_everything_of_the_uid


def _needed_paths(run_dir: Path) -> list[Path]:
    """What a child must reach: the interpreter, its libraries and import path, and the run folder."""
    paths = [Path(sys.executable), Path(os.path.realpath(sys.executable)), Path(sys.prefix), Path(sys.base_prefix),
             Path(sys.exec_prefix), run_dir] + [Path(p) for p in sys.path if p]
    return [p.resolve() for p in paths if p.exists()]


def _blocked_ancestors(paths: list[Path]) -> list[tuple[Path, list[str]]]:
    """Folders others cannot enter (e.g. /root, mode 0700) on the way to a needed path, top-down, each with the
    names below it that must be reachable."""
    blocked: dict[Path, set[str]] = {}
    for path in paths:
        for ancestor in reversed(path.parents):
            if ancestor == path or ancestor.parent == ancestor:
                continue
            parent = ancestor.parent
            if parent.parent != parent and not parent.stat().st_mode & 0o001:
                blocked.setdefault(parent, set()).add(ancestor.name)
        if path.is_dir() and not path.stat().st_mode & 0o001 and path.parent != path:
            pass  # the path itself: its contents are what is needed; leave its mode as it is
    return [(folder, sorted(names)) for folder, names in sorted(blocked.items(), key=lambda kv: len(kv[0].parts))]


def _make_preexec(uid: int, gid: int, hide: list[Path] | None, expose=(), stash: Path | None = None):
    """hide=None: no mount namespace. Else, in a private mount namespace: each blocked folder of `expose` becomes an
    empty tmpfs holding only the needed entries (bind mounts of the originals), and each folder of `hide` an empty
    read-only tmpfs nobody may enter; then the uid is dropped."""
    libc = _libc
    hide_bytes = [str(p).encode() for p in hide or []]
    plan = [(str(folder).encode(), [n.encode() for n in names], str(stash / f"x{i}").encode() if stash else b"")
            for i, (folder, names) in enumerate(expose)]

    def check(result: int, what: str) -> None:
        if result != 0:
            raise OSError(ctypes.get_errno(), what)

    def enter_sandbox():
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if hide is not None:
            check(libc.unshare(CLONE_NEWNS), "unshare")
            check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
            for folder, names, place in plan:
                os.mkdir(place, 0o700)
                check(libc.mount(folder, place, None, MS_BIND | MS_REC, None), "stash")
                check(libc.mount(b"tmpfs", folder, b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64k,mode=755"), "cover")
                for name in names:
                    target = folder + b"/" + name
                    source = place + b"/" + name
                    if os.path.isdir(source):
                        os.mkdir(target, 0o755)
                    else:
                        open(target, "wb").close()
                    check(libc.mount(source, target, None, MS_BIND | MS_REC, None), "expose")
            for path in hide_bytes:
                check(libc.mount(b"tmpfs", path, b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                 b"size=4k,mode=000"), "hide " + path.decode())
            libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, b"hidepid=2")  # best effort
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        resource.setrlimit(resource.RLIMIT_NPROC, (CHILD_NPROC, CHILD_NPROC))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return enter_sandbox


def _probe(uid: int, gid: int, namespace: bool, expose) -> bool:
    """Can a child run Python as uid (in a mount namespace)? Checked once per process and set-up."""
    key = (uid, gid, namespace, tuple((str(f), tuple(n)) for f, n in expose))
    if key not in _probe_cache:
        work = Path(tempfile.mkdtemp(prefix="course-grade-probe-"))
        (work / "hidden").mkdir()
        try:
            result = subprocess.run([sys.executable, "-S", "-c", ""], cwd="/", check=False,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    preexec_fn=_make_preexec(uid, gid, [work / "hidden"] if namespace else None,
                                                             expose if namespace else (), work))
            _probe_cache[key] = result.returncode == 0
        except (OSError, subprocess.SubprocessError):
            _probe_cache[key] = False
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return _probe_cache[key]


class Subreaper:
    """While grading, orphans of the submission are re-parented to this process, so they can be found and reaped.

    The setting belongs to the whole process: with runs in several threads, the first to start sets it and the
    last to end restores what it was."""

    active = 0
    previous = None

    def __enter__(self):
        with _lock:
            Subreaper.active += 1
            if Subreaper.active == 1 and _libc is not None and sys.platform.startswith("linux"):
                value = ctypes.c_int(0)
                if _libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) == 0:
                    Subreaper.previous = value.value
                    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        return self

    def __exit__(self, *exc):
        with _lock:
            Subreaper.active -= 1
            if Subreaper.active == 0 and Subreaper.previous is not None:
                _libc.prctl(PR_SET_CHILD_SUBREAPER, Subreaper.previous, 0, 0, 0)
                Subreaper.previous = None
