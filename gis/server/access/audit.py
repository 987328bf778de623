"""The audit log: one hash-chained JSON line per request, append-only, rotated by size.

Layout (one folder per server, shared by all its worker processes)::

    audit/
      audit.000001.jsonl   rotated files, oldest first, never written again
      audit.000002.jsonl
      audit.jsonl          the file being appended to
      audit.head           the chain head: seq and hash of the last line, current file, size
      audit.lock           flock'ed around every append (never holds data)

Line format: the caller's record (time, key_id, grade, method, path, status, bytes,
duration_ms, ...) plus ``seq`` (1, 2, 3... over the whole chain, across files), ``prev`` (the
previous line's hash; 64 zeros for the first line ever) and ``hash`` = sha256 of the canonical
JSON of the line without ``hash`` (keys sorted, no spaces, UTF-8: ``orjson`` with
``OPT_SORT_KEYS``). The line itself is the canonical JSON of the record with its hash. The first
line of a new file carries the last hash of the previous file, so the chain runs through the
rotation.

Several processes: every append takes an exclusive ``flock`` on ``audit.lock``, reads the head
(a fixed 256-byte record, one ``pread``), rotates if the current file would pass ``max_bytes``,
writes its line with one ``write`` on an ``O_APPEND`` descriptor, rewrites the head with one
``pwrite`` and unlocks; one chain for the whole server, lines in the order they were written.
There is no fsync per line (a crash of the machine may lose the last lines the OS had not yet
written; ``fsync=True`` trades ~1 ms per request for that). The head lets ``verify`` notice
lines removed from the end of the chain, which a hash chain alone cannot.

Redaction (defensive; the caller should already pass clean records): ``key``, ``api_key``,
``apikey``, ``access_token`` and ``token`` query parameters are dropped from ``path``,
``url`` and ``query``; ``Authorization``, ``X-API-Key``, ``Cookie`` and ``key`` fields are
dropped (at the top level and inside ``headers``).

Tamper-evidence, not tamper-proofing: whoever can rewrite the folder can rebuild a valid
chain. Ship the head hash elsewhere (e.g. print it daily into another system) to anchor it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import orjson

__all__ = ["AuditLog", "verify", "check", "VerifyResult", "redact", "GENESIS", "ACTIVE",
           "HEAD", "LOCK", "DEFAULT_MAX_BYTES"]

GENESIS = "0" * 64
ACTIVE = "audit.jsonl"
HEAD = "audit.head"
LOCK = "audit.lock"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
_HEAD_SIZE = 256
_ROTATED = re.compile(r"^audit\.(\d{6,})\.jsonl$")
_SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "access_token", "token"})
_SECRET_FIELDS = frozenset({"authorization", "x-api-key", "cookie", "key", "api_key"})
_URL_FIELDS = ("path", "url", "query")
_DUMPS_OPT = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _canonical(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj, option=_DUMPS_OPT, default=str)


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(body)).hexdigest()


def rotated_name(n: int) -> str:
    """File name of the ``n``-th rotated file (1-based)."""
    return f"audit.{n:06d}.jsonl"


def _strip_query(value: str, *, bare: bool = False) -> str:
    """``value`` without secret query parameters, the rest byte for byte as it was."""
    if bare:
        base, sep, query = "", "", value
        if query.startswith("?"):
            sep, query = "?", query[1:]
    else:
        base, sep, query = value.partition("?")
        if not sep:
            return value
    kept = [p for p in query.split("&")
            if unquote_plus(p.partition("=")[0]).strip().lower() not in _SECRET_PARAMS]
    if len(kept) == query.count("&") + 1:
        return value
    return base + (sep + "&".join(kept) if kept else "")


def redact(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` without secrets (see the module docstring)."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        lk = str(k).lower()
        if lk in _SECRET_FIELDS:
            continue
        if lk in _URL_FIELDS and isinstance(v, str):
            v = _strip_query(v, bare=lk == "query")
        elif lk == "headers" and isinstance(v, dict):
            v = {hk: hv for hk, hv in v.items() if str(hk).lower() not in _SECRET_FIELDS}
        out[k] = v
    return out


@dataclass
class _Head:
    seq: int = 0
    hash: str = GENESIS
    files: int = 0          # rotated files so far; the next is rotated_name(files + 1)
    size: int = 0           # bytes in the active file

    def dump(self) -> bytes:
        data = orjson.dumps({"seq": self.seq, "hash": self.hash, "files": self.files,
                             "size": self.size})
        return data.ljust(_HEAD_SIZE - 1) + b"\n"

    @classmethod
    def parse(cls, data: bytes) -> _Head:
        obj = orjson.loads(data.strip())
        return cls(seq=int(obj["seq"]), hash=str(obj["hash"]), files=int(obj["files"]),
                   size=int(obj["size"]))


class AuditLog:
    """Append-only, hash-chained, size-rotated audit log in one folder.

    Args:
        path: The folder (created if missing). A path ending in ``.jsonl`` means its folder.
        max_bytes: Rotate before a line would make the active file larger than this.
        fsync: fsync each line and the head (durable against power loss; ~1 ms per append).

    Safe with several processes and threads; may be created before a fork (descriptors are
    reopened in the child).
    """

    def __init__(self, path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 fsync: bool = False):
        path = Path(path)
        self.dir = path.parent if path.suffix == ".jsonl" else path
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._tlock = threading.Lock()
        self._pid = -1
        self._open()

    def _open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._head_fd = os.open(self.dir / HEAD, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._fd = -1
        self._fd_files = -1     # head.files when self._fd was opened
        self._pid = os.getpid()

    def _open_active(self, head: _Head) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.dir / ACTIVE,
                           os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._fd_files = head.files

    def _read_head(self) -> _Head:
        data = os.pread(self._head_fd, _HEAD_SIZE, 0)
        if data.strip():
            try:
                return _Head.parse(data)
            except (ValueError, KeyError, TypeError):   # damaged: rebuilt from the files
                pass
        return self._recover_head()

    def _recover_head(self) -> _Head:
        """Head of a folder without one (first use, or the head file was lost)."""
        rotated = _rotated_files(self.dir)
        head = _Head(files=max((n for n, _ in rotated), default=0))
        active = self.dir / ACTIVE
        for p in [active] + [p for _, p in reversed(rotated)]:
            if p.is_file() and p.stat().st_size:
                last = _last_line(p)
                obj = orjson.loads(last)
                head.seq, head.hash = int(obj["seq"]), str(obj["hash"])
                break
        head.size = active.stat().st_size if active.is_file() else 0
        return head

    def append(self, record: dict[str, Any]) -> str:
        """Append one request's record; returns its hash.

        ``time`` (UTC, ISO 8601) is added when the record has none. ``seq``, ``prev`` and
        ``hash`` are set here (a record's own values for them are replaced).
        """
        body = redact(record)
        for k in ("seq", "prev", "hash"):
            body.pop(k, None)
        if "time" not in body:
            body["time"] = datetime.now(UTC).isoformat(timespec="microseconds")
        with self._tlock:
            if self._pid != os.getpid():
                self._open()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                head = self._read_head()
                body["seq"] = head.seq + 1
                body["prev"] = head.hash
                h = _digest(body)
                body["hash"] = h
                line = _canonical(body) + b"\n"
                if head.size and head.size + len(line) > self.max_bytes:
                    self._rotate(head)
                if self._fd < 0 or self._fd_files != head.files:
                    self._open_active(head)
                os.write(self._fd, line)
                head.seq, head.hash, head.size = head.seq + 1, h, head.size + len(line)
                os.pwrite(self._head_fd, head.dump(), 0)
                if self.fsync:
                    os.fsync(self._fd)
                    os.fsync(self._head_fd)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        return h

    def _rotate(self, head: _Head) -> None:
        head.files += 1
        os.rename(self.dir / ACTIVE, self.dir / rotated_name(head.files))
        head.size = 0
        # Record the rotation at once: a crash before the next line must not reuse the name.
        os.pwrite(self._head_fd, head.dump(), 0)

    def close(self) -> None:
        """Close the descriptors."""
        with self._tlock:
            if self._pid == os.getpid():
                for fd in (self._fd, self._head_fd, self._lock_fd):
                    if fd >= 0:
                        os.close(fd)
            self._fd = self._head_fd = self._lock_fd = -1
            self._pid = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _rotated_files(folder: Path) -> list[tuple[int, Path]]:
    out = []
    for p in folder.iterdir():
        m = _ROTATED.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def _last_line(path: Path) -> bytes:
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        block = 4096
        while True:
            start = max(0, size - block)
            fh.seek(start)
            data = fh.read(size - start)
            lines = data.rstrip(b"\n").rsplit(b"\n", 1)
            if len(lines) == 2 or start == 0:
                return lines[-1]
            block *= 4


@dataclass
class VerifyResult:
    """What ``check`` found: problems (empty = intact), lines and files read."""

    problems: list[str] = field(default_factory=list)
    lines: int = 0
    files: int = 0

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


def verify(path_or_dir: str | os.PathLike) -> list[str]:
    """Problems of an audit folder (or of the folder of an ``audit*.jsonl`` file).

    Detects edited lines (hash mismatch, non-canonical JSON), removed, inserted and reordered
    lines (``prev``/``seq`` mismatch), a missing or truncated file, lines removed from the end
    (against the head) and a missing head. Each problem names the file and line number
    (``audit.000002.jsonl:17: ...``). An empty list means the chain is intact.
    """
    return check(path_or_dir).problems


def check(path_or_dir: str | os.PathLike) -> VerifyResult:
    """``verify`` with the number of lines and files read."""
    path = Path(path_or_dir)
    folder = path.parent if path.suffix == ".jsonl" else path
    res = VerifyResult()
    if not folder.is_dir():
        res.problems.append(f"{folder}: no such audit folder")
        return res
    # A consistent snapshot: under a shared lock, read the head and open every file; then read
    # them without the lock (appends only extend a file past the snapshot size; a rotation only
    # renames it, and the open descriptor keeps reading the same file).
    snapshot: list[tuple[str, Any, int]] = []
    head: _Head | None = None
    lock_path = folder / LOCK
    lock_fd = os.open(lock_path, os.O_RDONLY) if lock_path.exists() else -1
    try:
        if lock_fd >= 0:
            fcntl.flock(lock_fd, fcntl.LOCK_SH)
        head_path = folder / HEAD
        if head_path.is_file():
            data = head_path.read_bytes()[:_HEAD_SIZE]
            try:
                head = _Head.parse(data) if data.strip() else None
            except (ValueError, KeyError, TypeError):
                res.problems.append(f"{HEAD}: unreadable chain head")
        rotated = _rotated_files(folder)
        names: list[tuple[int | None, Path]] = list(rotated)
        if (folder / ACTIVE).is_file():
            names.append((None, folder / ACTIVE))
        for _, p in names:
            fh = open(p, "rb")
            snapshot.append((p.name, fh, os.fstat(fh.fileno()).st_size))
    finally:
        if lock_fd >= 0:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)
    try:
        _check_files(folder, rotated, snapshot, head, res)
    finally:
        for _, fh, _ in snapshot:
            fh.close()
    return res


def _check_files(folder: Path, rotated, snapshot, head: _Head | None, res: VerifyResult) -> None:
    problems = res.problems
    if not snapshot:
        if head is not None and head.seq:
            problems.append(f"{HEAD}: records {head.seq} lines but no audit file is left")
        return
    # Missing rotated files: numbers must run 1..N without gaps (and N = head.files).
    numbers = [n for n, _ in rotated]
    expected_last = head.files if head is not None else (numbers[-1] if numbers else 0)
    missing = sorted(set(range(1, max([expected_last, *numbers], default=0) + 1)) - set(numbers))
    for n in missing:
        problems.append(f"{rotated_name(n)}: rotated file missing")
    if head is not None and head.seq and not (folder / ACTIVE).is_file() and head.size:
        problems.append(f"{ACTIVE}: file missing (the head records {head.size} bytes in it)")
    if head is None:
        problems.append(f"{HEAD}: chain head missing (lines removed from the end of the chain "
                        "cannot be detected)")

    prev_hash, prev_seq, prev_where = GENESIS, 0, "start of the chain"
    for name, fh, size in snapshot:
        res.files += 1
        data = fh.read(size)
        if not data:
            if name != ACTIVE:
                problems.append(f"{name}: empty rotated file (truncated)")
            continue
        if not data.endswith(b"\n"):
            n_lines = data.count(b"\n") + 1
            problems.append(f"{name}:{n_lines}: incomplete last line (file truncated)")
        first = True
        for lineno, raw in enumerate(data.split(b"\n"), 1):
            if not raw and lineno == data.count(b"\n") + 1:
                break   # after the final newline
            res.lines += 1
            where = f"{name}:{lineno}"
            try:
                obj = orjson.loads(raw)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
                h = obj.pop("hash")
                seq = obj["seq"]
                prev = obj["prev"]
            except (ValueError, KeyError, TypeError):
                problems.append(f"{where}: not an audit line (unparsable or missing "
                                "seq/prev/hash)")
                first = False
                continue
            if _digest(obj) != h:
                problems.append(f"{where}: hash mismatch (line edited)")
            elif _canonical({**obj, "hash": h}) != raw:
                problems.append(f"{where}: not canonical JSON (line edited)")
            seq_note = (f"; seq {seq} follows seq {prev_seq}" if seq != prev_seq + 1 else "")
            if prev != prev_hash:
                if first and name != snapshot[0][0]:
                    problems.append(f"{where}: first line does not continue the chain from "
                                    f"{prev_where}{seq_note} (file missing, replaced or "
                                    "truncated)")
                elif lineno == 1 and name == snapshot[0][0] and prev_seq == 0:
                    problems.append(f"{where}: chain does not start at the genesis hash"
                                    f"{seq_note} (earlier lines or files removed)")
                else:
                    problems.append(f"{where}: prev does not match the hash of {prev_where}"
                                    f"{seq_note} (line removed, inserted or reordered)")
            elif seq_note:
                problems.append(f"{where}: seq {seq} follows seq {prev_seq} (line removed, "
                                "inserted or reordered)")
            prev_hash, prev_seq, prev_where = h, seq if isinstance(seq, int) else prev_seq, where
            first = False
    if head is not None and (head.seq != prev_seq or head.hash != prev_hash):
        problems.append(f"{prev_where}: the chain ends at seq {prev_seq} but the head records "
                        f"seq {head.seq} (lines removed from the end, or the head was edited)")
