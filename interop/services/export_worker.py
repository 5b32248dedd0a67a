"""The worker that runs Bulk Data export jobs, in the API process.

`interop serve` starts one per process (a daemon thread, from the app's lifespan); kick-offs
wake it at once, and otherwise it looks for due jobs every few seconds. Jobs live in the
database, so a job queued or half-run when a process stopped is taken up again by the next
worker to look, in this process after a restart or in any other process sharing the database:
a running job's lease lapses when its worker dies, and the job resumes from its last stored
page. Several processes may run workers side by side; each job is claimed by one.
"""

import logging
import threading

from interop.services.bulk_export import BulkExports

log = logging.getLogger("interop.export")


class ExportWorker:
    """Claims due export jobs one at a time and runs them until told to stop."""

    def __init__(self, exports: BulkExports, idle_seconds: float) -> None:
        self._exports = exports
        self._idle_seconds = idle_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._exports.on_queued = self._wake.set
        self._thread = threading.Thread(target=self._loop, name="export-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the page in hand; an unfinished job resumes later from its last page."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> bool:
        """Run the next due job to its end; False when none was due."""
        job = self._exports.claim()
        if job is None:
            self._exports.purge_expired()
            return False
        self._exports.run(job, stop=self._stop)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception as error:  # the database may be away for a moment: look again
                log.warning("export worker could not look for jobs: %s", type(error).__name__)
                worked = False
            if not worked:
                self._wake.wait(self._idle_seconds)
                self._wake.clear()
