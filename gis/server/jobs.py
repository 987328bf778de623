"""Process jobs that belong to the client that started them.

Stock pygeoapi shows every job to everyone (``/jobs`` lists them all, ``/jobs/{id}`` and its
results answer anyone who has the id). :class:`ClientJobManager` is a pygeoapi process manager
that records, with each job, the client that created it, and answers every job request only with
that client's jobs: another client's job is "not found", with the same body as a job that never
existed. It also runs jobs asynchronously (``Prefer: respond-async``) in a background thread of
the worker, with the job table in SQLite (WAL) shared by all worker processes, so any worker can
answer ``/jobs/{id}`` and its results.

Who the client is: the access layer (:mod:`gis.server.app`) puts the client's id (the key's name,
``jwt:<sub>``, or :data:`ANONYMOUS`) in the request header ``X-Ngis-Client`` after removing
any such header the client sent; :func:`owned` wraps pygeoapi's job endpoints to read it into
:data:`CURRENT_OWNER` for the duration of the call (pygeoapi runs API calls in a thread pool,
which does not carry context variables from the request, so the header is the carrier). With
the access layer off, every job belongs to one owner (everything is visible to everyone anyway).

Clients without a key own nothing: many people share an address (and the anonymous id), so
their runs are synchronous only, are recorded under a one-off owner, and never appear in any
listing; asynchronous jobs need a key or a token.

A processor may define ``prefers_async(inputs) -> bool``: a request that states no preference
then runs as a job when the processor says the run is long (the flood model on a large area).

Other differences from pygeoapi's managers: the processor is a local of each execution (the stock
``execute_process`` keeps it on the shared manager, a race between concurrent requests), and
subscriber callbacks are refused (they would make the server call URLs chosen by clients).
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pygeoapi.process.base import JobNotFoundError, JobResultNotFoundError
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.util import (JobStatus, ProcessExecutionMode, RequestedProcessExecutionMode,
                           RequestedResponse, get_current_datetime)

from gis.server.access.db import AccessDb

#: Header the access layer sets to the client's id (never taken from the client).
OWNER_HEADER = "x-ngis-client"
#: The owner of the current job request (set by :func:`owned`).
CURRENT_OWNER: ContextVar[str | None] = ContextVar("ngis_job_owner", default=None)
#: Owner of jobs when the access layer is off.
NOBODY = "-"
#: What the access layer sends for a client without a key (no key name can contain ``*``).
ANONYMOUS = "*anonymous*"

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    identifier TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    process_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created)
"""


def owned(handler):
    """Wrap a pygeoapi job endpoint (``execute_process``, ``get_jobs``, ``get_job_result``,
    ``delete_job``) so the manager knows whose request it serves."""

    @functools.wraps(handler)
    def wrapper(api, request, *args, **kwargs):
        owner = request.headers.get(OWNER_HEADER) if request.headers is not None else None
        token = CURRENT_OWNER.set(owner or NOBODY)
        try:
            return handler(api, request, *args, **kwargs)
        finally:
            CURRENT_OWNER.reset(token)

    return wrapper


class ClientJobManager(BaseManager):
    """pygeoapi process manager: per-client jobs in SQLite, asynchronous execution.

    Config (``server.manager`` of the pygeoapi config)::

        name: gis.server.jobs.ClientJobManager
        connection: build/server-cache/jobs.db   # SQLite file
        output_dir: build/server-cache/job-results
    """

    def __init__(self, manager_def: dict):
        super().__init__(manager_def)
        self.is_async = True
        self.supports_subscribing = False
        if not self.connection:
            raise ValueError("ClientJobManager needs 'connection' (an SQLite path)")
        if self.output_dir is None:
            raise ValueError("ClientJobManager needs 'output_dir'")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.db = AccessDb(self.connection, SCHEMA)

    @staticmethod
    def _owner() -> str:
        return CURRENT_OWNER.get() or NOBODY

    @staticmethod
    def _anonymous() -> bool:
        return CURRENT_OWNER.get() == ANONYMOUS

    # --- the job table ---------------------------------------------------------------------

    def get_jobs(self, status: JobStatus | None = None, limit: int | None = None,
                 offset: int | None = None) -> dict:
        if self._anonymous():
            return {"jobs": [], "numberMatched": 0}
        where, params = "owner = ?", [self._owner()]
        if status is not None:
            where += " AND status = ?"
            params.append(status.value if isinstance(status, JobStatus) else str(status))
        total = self.db.execute(f"SELECT count(*) FROM jobs WHERE {where}", params).fetchone()[0]
        sql = f"SELECT doc FROM jobs WHERE {where} ORDER BY created DESC, identifier"
        if limit:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset or 0)}"
        elif offset:
            sql += f" LIMIT -1 OFFSET {int(offset)}"
        rows = self.db.execute(sql, params).fetchall()
        return {"jobs": [json.loads(r[0]) for r in rows], "numberMatched": total}

    def add_job(self, job_metadata: dict) -> str:
        owner = self._owner()
        if owner == ANONYMOUS:   # a one-off owner: nobody can list or fetch it
            owner = f"{ANONYMOUS}:{uuid.uuid4()}"
        self.db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
                        (job_metadata["identifier"], owner, job_metadata["process_id"],
                         job_metadata["status"], job_metadata["created"],
                         json.dumps(job_metadata)))
        return job_metadata["identifier"]

    def update_job(self, job_id: str, update_dict: dict) -> bool:
        # Called by the job's own thread (no request, no owner): by id only.
        with self.db.transaction():
            row = self.db.execute("SELECT doc FROM jobs WHERE identifier = ?",
                                  (job_id,)).fetchone()
            if row is None:
                return False
            doc = {**json.loads(row[0]), **update_dict}
            self.db.execute("UPDATE jobs SET status = ?, doc = ? WHERE identifier = ?",
                            (doc["status"], json.dumps(doc), job_id))
        return True

    def get_job(self, job_id: str) -> dict:
        row = self.db.execute("SELECT doc FROM jobs WHERE identifier = ? AND owner = ?",
                              (str(job_id), self._owner())).fetchone()
        if row is None:
            raise JobNotFoundError()
        return json.loads(row[0])

    def get_job_result(self, job_id: str) -> tuple[str | None, Any]:
        job = self.get_job(job_id)
        if JobStatus[job["status"]] != JobStatus.successful:
            return (None,)  # as pygeoapi's managers: the API answers "not ready"
        location = job.get("location")
        if not location:
            raise JobResultNotFoundError()
        path = Path(location)
        try:
            if job.get("mimetype") in (None, "application/json", "application/ld+json"):
                return job.get("mimetype"), json.loads(path.read_text(encoding="utf-8"))
            return job["mimetype"], path.read_bytes()
        except (FileNotFoundError, ValueError):
            raise JobResultNotFoundError() from None

    def delete_job(self, job_id: str) -> bool:
        job = self.get_job(job_id)   # another client's job: not found
        location = job.get("location")
        if location:
            try:
                os.unlink(location)
            except FileNotFoundError:
                pass
        cur = self.db.execute("DELETE FROM jobs WHERE identifier = ? AND owner = ?",
                              (job_id, self._owner()))
        return cur.rowcount > 0

    # --- execution -------------------------------------------------------------------------

    def execute_process(self, process_id: str, data_dict: dict, execution_mode=None,
                        requested_outputs: dict | None = None, subscriber=None,
                        requested_response=RequestedResponse.raw.value):
        """pygeoapi's ``execute_process`` with the processor kept local to this call and no
        subscriber callbacks."""
        job_id = str(uuid.uuid4())
        processor = self.get_processor(process_id)
        processor.set_job_id(job_id)
        options = processor.metadata.get("jobControlOptions", [])
        can_async = ProcessExecutionMode.async_execute.value in options
        can_sync = ProcessExecutionMode.sync_execute.value in options
        wants_async = execution_mode == RequestedProcessExecutionMode.respond_async
        if execution_mode is None and can_async:   # no preference: the process may know best
            prefers = getattr(processor, "prefers_async", None)
            wants_async = bool(prefers and prefers(data_dict))
        # An anonymous client could never fetch an asynchronous result: it waits instead.
        if not self._anonymous() and ((wants_async and can_async) or not can_sync):
            handler = self._execute_handler_async
            headers = {"Preference-Applied": RequestedProcessExecutionMode.respond_async.value}
        else:
            handler = self._execute_handler_sync
            headers = None if execution_mode == RequestedProcessExecutionMode.wait else \
                {"Preference-Applied": RequestedProcessExecutionMode.wait.value}
        now = get_current_datetime()
        self.add_job({
            "type": "process", "identifier": job_id, "process_id": process_id,
            "created": now, "started": now, "updated": now, "finished": None,
            "status": JobStatus.accepted.value, "location": None,
            "mimetype": "application/octet-stream",
            "message": "Job accepted and ready for execution", "progress": 5})
        mime_type, outputs, status = handler(processor, job_id, data_dict, requested_outputs,
                                             requested_response=requested_response)
        return job_id, mime_type, outputs, status, headers

    def __repr__(self) -> str:
        return f"<ClientJobManager> {self.connection}"
