"""Time budgets for long jobs, so that a run ends inside the limits Odoo kills workers at.

Odoo stops a unit of work that overruns its limits:

- ``limit_time_cpu`` (CPU seconds): a prefork worker sets ``RLIMIT_CPU`` to its CPU time plus
  this limit before each unit of work and dies of ``SIGXCPU`` beyond it;
- ``limit_time_real`` (wall seconds; ``limit_time_real_cron`` for cron workers, ``-1`` meaning the
  same): the master kills a worker that has not pinged it for that long. A cron worker pings
  before it goes to sleep (up to ``SLEEP_INTERVAL`` + 9 s, until a ``NOTIFY`` or its next poll),
  so the sleep counts too; a threaded server measures from the start of the cron thread's poll.

A cron worker's unit of work is one wake-up: every job ready then, each called again at once (up
to 10 times) while it reports remaining work through ``ir.cron._notify_progress``. A run of a job
is therefore given a share of what its unit of work has left, and it stops claiming batches when
what is left is less than twice its slowest batch so far.

Pure Python: the limits, clocks and thread are parameters, so the arithmetic is tested without a
database.
"""

import math
import resource
import threading
import time
import weakref

# Odoo's cron worker sleeps SLEEP_INTERVAL + pid % 10 seconds (plus a jitter under 0.1 s) after
# pinging the master's watchdog: the worst case counted against limit_time_real_cron.
CRON_SLEEP = 60 + 10
# A prefork HTTP worker waits at most its beat (4 s) for a request after its ping.
HTTP_SLEEP = 4
# Share of a limit one run may use; the rest absorbs a batch slower than the ones measured.
DEFAULT_SHARE = 0.5
# Another batch is claimed only while what is left is at least this many times the slowest one.
DEFAULT_MARGIN = 2.0
# The first batch of a run claims this fraction of the batch size; the next ones grow with time.
SLOW_START = 8

# One budget per unit of work of a cron job: the iterations Odoo runs at once share it.
_unit_budgets = weakref.WeakKeyDictionary()


def _limit(value):
    """A limit from Odoo's configuration, ``None`` when there is none (0 or -1)."""
    return value if value and value > 0 else None


class TimeBudget:
    """The CPU and wall time one run of a long job may spend, measured batch by batch.

    Use::

        budget = TimeBudget(cpu_seconds=30, wall_seconds=25)
        while budget.allows_batch():
            with budget.batch():
                ...  # claim, apply and commit one batch

    :param float cpu_seconds: CPU time (of the whole process) the run may use; ``None``: no limit
    :param float wall_seconds: wall time the run may use; ``None``: no limit
    :param float margin: another batch starts only while what is left is at least ``margin``
        times the slowest batch so far (the first batch starts while anything is left)
    :param clock: wall clock, ``time.monotonic`` by default
    :param cpu_clock: CPU clock of the process, ``time.process_time`` by default
    """

    def __init__(
        self,
        cpu_seconds=None,
        wall_seconds=None,
        *,
        margin=DEFAULT_MARGIN,
        clock=time.monotonic,
        cpu_clock=time.process_time,
    ):
        self.cpu_seconds = cpu_seconds
        self.wall_seconds = wall_seconds
        self.margin = margin
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._started_wall = clock()
        self._started_cpu = cpu_clock()
        self.batches = 0
        self.items = 0
        self.slowest_cpu = 0.0
        self.slowest_wall = 0.0
        self._per_item = 0.0
        self._last_size = 0
        self.exhausted = False  # set once the budget refused a batch

    def __repr__(self):
        cpu_left, wall_left = self.left()
        return (
            f"<TimeBudget cpu {self.cpu_seconds} s (left {cpu_left:.1f}), wall {self.wall_seconds} s "
            f"(left {wall_left:.1f}), {self.batches} batches, slowest {self.slowest_wall:.2f} s>"
        )

    # === FROM ODOO'S LIMITS === #

    @classmethod
    def from_limits(
        cls,
        cpu_limit=None,
        wall_limit=None,
        *,
        cpu_spent=0.0,
        wall_spent=0.0,
        share=DEFAULT_SHARE,
        **kwargs,
    ):
        """Return the budget of a run given the limits of its unit of work and what that unit
        already used: ``share`` of each limit, less what was spent.

        :param float cpu_limit: the CPU limit, ``None`` (or 0, -1) for none
        :param float wall_limit: the wall limit (after the worker's sleep), ``None`` for none
        :param float cpu_spent: CPU seconds the unit of work used before this run
        :param float wall_spent: wall seconds the unit of work used before this run
        """
        cpu_limit, wall_limit = _limit(cpu_limit), _limit(wall_limit)
        return cls(
            cpu_seconds=None if cpu_limit is None else share * cpu_limit - cpu_spent,
            wall_seconds=None if wall_limit is None else share * wall_limit - wall_spent,
            **kwargs,
        )

    @classmethod
    def for_worker(
        cls, config, *, unit=None, thread=None, rlimit_cpu=None, now=None, share=DEFAULT_SHARE, **kwargs
    ):
        """Return the budget of a run in the current Odoo process, from its configured limits.

        - CPU: ``share`` of ``limit_time_cpu``, less the CPU time the unit of work used before
          (a prefork worker set ``RLIMIT_CPU`` to its CPU time + the limit when the unit began);
        - wall: ``share`` of ``limit_time_real_cron`` (or ``limit_time_real``), less the worker's
          longest sleep before a unit of work and what the unit used before (at least its CPU
          time; exact in a threaded server, which records when the cron thread's poll began).

        :param config: ``odoo.tools.config`` (a mapping)
        :param unit: an object living as long as the unit of work (a cron job's cursor): the
            runs given the same one share one budget (Odoo calls a job again at once, in the
            same unit of work, while it reports remaining work); ``None``: a new budget
        :param thread: the current thread (a parameter for tests)
        :param int rlimit_cpu: the soft ``RLIMIT_CPU`` (a parameter for tests)
        :param float now: the current ``time.time()`` (a parameter for tests)
        """
        if unit is not None and unit in _unit_budgets:
            return _unit_budgets[unit]
        thread = thread or threading.current_thread()
        cpu_clock = kwargs.get("cpu_clock", time.process_time)
        now = time.time() if now is None else now
        cron = getattr(thread, "type", None) == "cron" or "WorkerCron" in thread.name
        prefork = thread.name.startswith("Worker ")
        cpu_limit = _limit(config.get("limit_time_cpu"))
        wall_limit = _limit(config.get("limit_time_real"))
        if cron and _limit(config.get("limit_time_real_cron")):
            wall_limit = config["limit_time_real_cron"]
        cpu_spent = 0.0
        if cpu_limit and prefork:
            soft = resource.getrlimit(resource.RLIMIT_CPU)[0] if rlimit_cpu is None else rlimit_cpu
            if soft not in (resource.RLIM_INFINITY, -1):
                # Set to int(CPU time at the unit's start + limit): never less than what was used.
                cpu_spent = max(0.0, cpu_clock() - (soft - cpu_limit))
        wall_spent = cpu_spent
        if wall_limit:
            if getattr(thread, "start_time", None):
                wall_spent = max(wall_spent, now - thread.start_time)
            elif prefork:
                wall_limit -= CRON_SLEEP if cron else HTTP_SLEEP
        budget = cls.from_limits(
            cpu_limit, wall_limit, cpu_spent=cpu_spent, wall_spent=wall_spent, share=share, **kwargs
        )
        if unit is not None:
            _unit_budgets[unit] = budget
        return budget

    @classmethod
    def for_run(cls, env, config, **kwargs):
        """Return the budget of a run of a job, from Odoo's limits (:meth:`for_worker`): in a
        cron worker, the runs Odoo makes at once in one unit of work share it (they share the
        job's cursor).

        :param env: the run's environment
        :param config: ``odoo.tools.config``
        """
        unit = env.cr if env.context.get("ir_cron_progress_id") else None
        return cls.for_worker(config, unit=unit, **kwargs)

    # === MEASURE === #

    def spent(self):
        """Return the CPU and wall seconds spent since the run began.

        :rtype: tuple[float, float]
        """
        return self._cpu_clock() - self._started_cpu, self._clock() - self._started_wall

    def left(self):
        """Return the CPU and wall seconds left (``math.inf`` without a limit).

        :rtype: tuple[float, float]
        """
        cpu, wall = self.spent()
        return (
            math.inf if self.cpu_seconds is None else self.cpu_seconds - cpu,
            math.inf if self.wall_seconds is None else self.wall_seconds - wall,
        )

    def allows_batch(self):
        """Whether another batch fits: anything left for the first one, at least ``margin``
        times the slowest batch so far for the next ones. Once refused, always refused.

        :rtype: bool
        """
        if self.exhausted:
            return False
        cpu_left, wall_left = self.left()
        fits = (
            cpu_left > 0
            and wall_left > 0
            and cpu_left >= self.margin * self.slowest_cpu
            and wall_left >= self.margin * self.slowest_wall
        )
        self.exhausted = not fits
        return fits

    def batch_size(self, default):
        """Return how many items the next batch may claim, sized by time: the first batch is a
        fraction of ``default`` (its cost is unknown: on a slow or busy machine a full one alone
        could overrun the limits), then each batch at most doubles the previous one and holds
        no more items than the per-item cost measured so far fits in what is left, with the
        margin.

        :param int default: the batch size when time allows it
        :rtype: int
        """
        if not self._per_item:
            return max(1, default // SLOW_START)
        cpu_left, wall_left = self.left()
        fits = min(cpu_left, wall_left) / (self.margin * self._per_item)
        size = min(default, 2 * self._last_size) if self._last_size else default
        return size if fits >= size else max(1, int(fits))

    def batch(self, items=0):
        """Return a context manager measuring one batch (also when it raises).

        :param int items: how many items it holds, to size the next batches by time
        """
        return _Batch(self, items)

    def record(self, cpu, wall, items=0):
        """Account for a batch that took ``cpu`` and ``wall`` seconds over ``items`` items."""
        self.batches += 1
        self.slowest_cpu = max(self.slowest_cpu, cpu)
        self.slowest_wall = max(self.slowest_wall, wall)
        if items:
            self.items += items
            self._last_size = items
            self._per_item = max(self._per_item, max(cpu, wall) / items)


class _Batch:
    __slots__ = ("budget", "items", "_cpu", "_wall")

    def __init__(self, budget, items):
        self.budget = budget
        self.items = items

    def __enter__(self):
        self._cpu = self.budget._cpu_clock()
        self._wall = self.budget._clock()
        return self

    def __exit__(self, *exc):
        budget = self.budget
        budget.record(budget._cpu_clock() - self._cpu, budget._clock() - self._wall, self.items)
        return False


def report_cron_progress(cron, done, remaining):
    """Tell Odoo's cron how far a run went, so that what is left runs next.

    With work left, Odoo runs the job again at once, in the same unit of work, while the run did
    something (``done``); a run that could not start a batch (the unit's budget is spent) or a
    run outside a cron worker asks for a new unit of work instead: a trigger and a ``NOTIFY``,
    so that a cron worker starts one at once, with fresh limits.

    :param cron: the job's `ir.cron` record
    :param int done: items this run processed
    :param int remaining: items left to process
    """
    in_cron = bool(cron.env.context.get("ir_cron_progress_id"))
    if remaining and (not done or not in_cron):
        cron.sudo()._trigger()
    cron.env["ir.cron"]._notify_progress(done=done, remaining=remaining)


def iter_batches(records, budget, cron, batch_size=100, commit=True):
    """Yield ``records`` one by one, in batches measured against ``budget``: after each batch
    the work is committed (``commit``) and the next batch starts only while the budget allows
    it; at the end, what was done and what is left are reported to ``cron`` (see
    :func:`report_cron_progress`).

    For a job looping over a recordset whose items leave its search once handled (or are
    cheap to check again), so that the next run picks up the rest.

    :param records: the recordset to go through
    :param TimeBudget budget: the run's budget
    :param cron: the job's `ir.cron` record
    :param int batch_size: items between two commits (fewer when time is short)
    :param bool commit: whether to commit after each batch (not in tests)
    """
    done = 0
    total = len(records)
    while done < total and budget.allows_batch():
        batch = records[done : done + budget.batch_size(batch_size)]
        with budget.batch(len(batch)):
            yield from batch
            if commit:
                records.env.cr.commit()  # pylint: disable=invalid-commit
        done += len(batch)
    report_cron_progress(cron, done, total - done)
