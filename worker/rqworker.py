"""The RQ worker class every imgpress pool runs: RQ's SimpleWorker, sending RQ's per-job
bookkeeping in fewer round trips (docs/design.md, "The worker class")."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from rq.executions import Execution
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers
from rq.queue import Queue
from rq.rate_limit import release_slot
from rq.registry import StartedJobRegistry
from rq.suspension import WORKERS_SUSPENDED
from rq.utils import now
from rq.worker import SimpleWorker, WorkerStatus

from shared import logs, names
from worker import handoff, rqprivate, stopping
from worker import tasks as _tasks  # noqa: F401 - imported before the pool forks (see above)

if TYPE_CHECKING:
    from redis.client import Pipeline

#: A skipped heartbeat may leave the worker's key this many seconds shorter-lived than asked.
HEARTBEAT_SLACK_SECONDS = 10
#: How often the command-channel listener checks whether it should stop.
LISTENER_WAKE_SECONDS = 1.0


class ImgpressWorker(SimpleWorker):
    """A SimpleWorker that batches and skips RQ's redundant per-job writes."""

    #: Until when (time.monotonic()) the heartbeats known to be sent keep the worker's key alive.
    _alive_until = 0.0
    #: The job whose preparation went with its execution's (see `prepare_execution`).
    _prepared: str | None = None
    #: Whether the end of the last job found workers not suspended (see `check_for_suspension`).
    _running_checked = False
    #: Whether the last job's end has already marked the worker idle (see `handle_job_success`).
    _back_to_idle = False
    #: Whether the stop signals held while a pool worker started are let through (see
    #: `check_for_suspension`).
    _signals_released = False
    #: Whether a job is in hand, from its preparation to its end (see `_shutdown`).
    _in_job = False
    #: Whether a cold stop (a second Ctrl-C) is ending the worker (see `handle_exception`).
    _stopping_at_once = False
    #: What the job in hand shares with this worker (`worker.handoff`); a new one per job.
    _handoff = handoff.Handoff(carried=False)

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's heartbeat in one round trip, or none while a recent one still covers `timeout`."""
        timeout = timeout or self.worker_ttl + 60
        moment = time.monotonic()
        if self._alive_until - moment >= timeout - HEARTBEAT_SLACK_SECONDS:
            return
        if pipeline is not None:
            # Part of someone else's transaction, which may not run: count it only where it
            # shortens the key's life (jobs use a shorter TTL than the idle worker).
            super().heartbeat(timeout, pipeline)
            self._alive_until = min(self._alive_until, moment + timeout)
            return
        with self.connection.pipeline(transaction=False) as own:
            super().heartbeat(timeout, own)
            own.execute()
        self._alive_until = moment + timeout

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """RQ's set_state, skipped when the worker is already in that state."""
        if pipeline is None and state == self.get_state():
            return
        super().set_state(state, pipeline)

    def prepare_execution(self, job: Job) -> Execution:
        """RQ's execution record, worker state and the job's own preparation, in one transaction.

        Stock RQ writes the job's part in a second transaction from `prepare_job_execution`,
        which is then skipped for this job. For a compression job the transaction is left
        unsent, for the job's first transaction to carry (`worker.handoff`).
        """
        pipeline = self.connection.pipeline()
        heartbeat_ttl = self.get_heartbeat_ttl(job)
        execution = Execution.create(job, heartbeat_ttl, pipeline=pipeline, worker_name=self.name)
        self.executions[execution.id] = execution
        self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
        self.heartbeat(heartbeat_ttl, pipeline=pipeline)
        job.heartbeat(now(), heartbeat_ttl, pipeline=pipeline)
        job.prepare_for_execution(self.name, pipeline=pipeline)
        pipeline.persist(job.key)
        if len(self.queues) == 1:  # as perform_job decides for prepare_job_execution
            pipeline.lrem(Queue(job.origin, connection=self.connection).intermediate_queue_key, 1, job.id)
        if job.func_name == names.COMPRESS_TASK:
            self._handoff.hold(pipeline)
        else:
            with pipeline:
                pipeline.execute()
        self._prepared = job.id
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """Nothing for the job `prepare_execution` has just prepared; RQ's own otherwise."""
        if self._prepared == job.id:
            self._prepared = None
            return
        super().prepare_job_execution(job, remove_from_intermediate_queue)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job in this process; unless its success did, mark the worker idle and alive and
        check that workers are not suspended (what RQ does next) in one round trip."""
        self._in_job = True
        with logs.job_context(job.id), handoff.for_job() as self._handoff:
            execution = self.prepare_execution(job)
            self._back_to_idle = False
            try:
                self.perform_job(job, queue, execution)
                if self._back_to_idle:
                    return
                with self.connection.pipeline(transaction=False) as pipeline:
                    self._stage_idle(pipeline)
                    self._idle_staged(pipeline.execute()[-1])
            finally:
                self._in_job = False

    def _stage_idle(self, pipeline: Pipeline) -> None:
        """Add what the job deferred, the idle state, the heartbeat and the check for `rq suspend`
        (last) to a pipeline."""
        self._handoff.stage_deferred(pipeline)
        self.set_state(WorkerStatus.IDLE, pipeline)
        super().heartbeat(self.worker_ttl + 60, pipeline)
        pipeline.exists(WORKERS_SUSPENDED)

    def _idle_staged(self, suspended: int) -> None:
        """Note what the round trip with `_stage_idle`'s commands has done."""
        self._running_checked = not suspended
        self._alive_until = time.monotonic() + self.worker_ttl + 60
        self._back_to_idle = True

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: StartedJobRegistry, execution: Execution
    ) -> None:
        """RQ's record of a success (counters, result, registries) and the return to idle, in one
        transaction with no read before it; RQ's own for a job that repeats."""
        if job.repeats_left:
            super().handle_job_success(job, queue, started_job_registry, execution)
            return
        with self.connection.pipeline() as pipeline:
            pipeline.exists(job.dependents_key)
            self.increment_successful_job_count(pipeline=pipeline)
            assert job.started_at is not None and job.ended_at is not None
            self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            result_ttl = job.get_result_ttl(self.default_result_ttl)
            if result_ttl != 0:
                rqprivate.stage_success(job, pipeline, result_ttl, self.name, execution)
            job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
            rqprivate.mark_finished(job)
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)
            self._stage_idle(pipeline)
            replies = pipeline.execute()
        self._idle_staged(replies[-1])
        if replies[0]:  # someone else queued jobs that wait for this one
            queue.enqueue_dependents(job)
        release_slot(job)

    def teardown(self) -> None:
        """RQ's end of the worker (deregistered, unsubscribed), which a further stop signal must
        not cut short: the worker is stopping already. The handlers are put back after it (a
        process that ran a worker in burst mode goes on, and its children inherit them)."""
        if threading.current_thread() is not threading.main_thread():
            super().teardown()  # type: ignore[no-untyped-call]
            return
        previous = {stop: signal.signal(stop, signal.SIG_IGN) for stop in (signal.SIGINT, signal.SIGTERM)}
        try:
            super().teardown()  # type: ignore[no-untyped-call]
        finally:
            for stop, handler in previous.items():
                signal.signal(stop, handler)

    def register_death(self) -> None:
        """RQ's record of the worker's end, skipped with a warning when Redis cannot be reached:
        the worker's keys expire by themselves, and the stop goes on without a traceback."""
        try:
            super().register_death()  # type: ignore[no-untyped-call]
        except RedisConnectionError as exc:
            self.log.warning("Worker %s: Redis cannot be reached (%s); not deregistered", self.name, exc)

    def unsubscribe(self) -> None:
        """RQ's end of the command-channel subscription; without Redis, its listener just stops."""
        try:
            super().unsubscribe()  # type: ignore[no-untyped-call]
        except RedisConnectionError:
            if self.pubsub_thread is not None:
                self.pubsub_thread.stop()
                self.pubsub_thread.join(timeout=LISTENER_WAKE_SECONDS + 1)
            if self.pubsub is not None:
                self.pubsub.close()

    def subscribe(self) -> None:
        """RQ's subscription to the worker's command channel. Its listener thread leaves stop
        signals to the main thread and checks each second whether to end: redis-py's `stop()`
        waits for it, and RQ has it sleep up to 60 s."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        with stopping.stop_signals_held():
            self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
                sleep_time=LISTENER_WAKE_SECONDS,
                daemon=True,
                exception_handler=rqprivate.pubsub_exception_handler(self),
            )

    def _shutdown(self) -> None:  # RQ's private method (worker/rqprivate.py checks the version)
        """A warm stop: after the job in hand, if any, else now (RQ's, but a job is in hand until
        `execute_job` returns: its success transaction marks the worker idle before it is sent,
        and RQ would stop the worker there, in the middle of recording the job's end)."""
        if not self._in_job:
            super()._shutdown()  # type: ignore[no-untyped-call]
            return
        rqprivate.stop_after_job(self)
        self.set_shutdown_requested_date()  # type: ignore[no-untyped-call]

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's check for `rq suspend`, unless the round trip that ended the last job just made it.

        It comes first in RQ's work loop: the stop signals a pool worker held while it started
        are let through here, on the loop's first turn, where a stop ends the loop cleanly.
        """
        if not self._signals_released:
            stopping.release_stop_signals()
            self._signals_released = True
        if self._running_checked:
            self._running_checked = False
            return
        super().check_for_suspension(burst)

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """RQ's cold stop (a second Ctrl-C), which raises SystemExit in the job in hand."""
        self._stopping_at_once = True
        super().request_force_stop(signum, frame)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """RQ's report of a job's exception, but one line for the job a cold stop ended: the
        stop was asked for, and its traceback would only say where the job was."""
        if not (self._stopping_at_once and exc_info and exc_info[0] is SystemExit):
            super().handle_exception(job, *exc_info)
            return
        self.log.warning("Worker %s: job %s stopped at once", self.name, job.id)
        call_exception_handlers(self._exc_handlers, job, *exc_info)

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """Note the job's end; its heartbeat is written with its result unless callbacks run first.

        The job's preparation, if the job left it unsent, is sent first.
        """
        self._handoff.release()
        if job.success_callback or job.failure_callback:
            super().handle_execution_ended(job, queue, heartbeat_ttl)
            return
        job.ended_at = now()
        job.last_heartbeat = job.ended_at
