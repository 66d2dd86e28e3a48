"""Serving the cascade to many sessions at once.

One Streamlit process serves every browser session, each in its own script
thread.  Two things here keep that cheap:

* :class:`WeightSetRegistry` (``REGISTRY``): one verified :class:`WeightSet`
  per folder for the whole process, loaded once however many sessions ask at
  the same time.  Asking returns as soon as the manifest is read and every
  sha256 checked; the models are then built in a background thread, and a
  caller that needs a model before it is built waits for it.
  :func:`warm_up` starts all of that (and a first forward pass) when the app
  starts, so the first diagnosis does not pay for it.
* :class:`InferenceServer`: one worker thread per weight set runs the cascade
  for every session, with dynamic batching as TorchServe and Triton do it.
  Callers put prepared cases on a bounded queue; the worker takes up to
  ``max_batch`` waiting cases (waiting at most ``max_wait_s`` for more once
  the first has come), runs DLM-1 on all of their images in one batch, then
  each DLM-2 sub-model on the images of the benign ones
  (:meth:`Cascade.run_batch`).  A full queue refuses new cases with
  :class:`ServerBusyError`; a caller can read how many cases are ahead of its
  own (:meth:`Ticket.ahead`).  A case that fails is answered with its error
  and the others of its batch are run again without it.

torch's thread policy is set once, deliberately (:func:`configure_torch_threads`):
the worker's forward passes use every core this process may run on, and no
session thread runs a forward pass of its own, so the process holds one
worker team of threads instead of one per session.  Grad-CAM stays per
request (:mod:`softmass_core.inference.gradcam`).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softmass_core.errors import SoftmassError

if TYPE_CHECKING:  # torch is imported by the worker and the loader, not by importing this module
    from softmass_core.inference.cascade import Cascade, CascadeResult, CaseImages
    from softmass_core.io.roi import Prepared
    from softmass_core.weights.weight_set import WeightSet

#: Most cases one batch holds (each case is one or two images, each scored once per test-time view).
MAX_BATCH = 8
#: How long the worker waits for more cases once the first of a batch has come.
MAX_WAIT_S = 0.005
#: Most cases that may wait; one more is refused with :class:`ServerBusyError`.
MAX_QUEUE = 64
#: Environment variable that overrides the number of torch threads (default: the usable cores).
THREADS_ENV = "SOFTMASS_TORCH_THREADS"


class ServerBusyError(SoftmassError):
    """The inference queue is full: the caller should try again in a moment."""


# --------------------------------------------------------------------------- torch threads

_THREADS_LOCK = threading.Lock()
_THREADS: int | None = None


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads once per process; returns the number in force.

    Default: ``SOFTMASS_TORCH_THREADS`` if set, else every usable core (the one
    inference worker uses them all).  Inter-op parallelism is set to one
    thread (nothing here forks graph work), where torch still allows it.
    Later calls change nothing and return the first call's number.
    """
    global _THREADS
    with _THREADS_LOCK:
        if _THREADS is not None:
            return _THREADS
        import torch

        if threads is None:
            env = os.environ.get(THREADS_ENV, "").strip()
            threads = int(env) if env.isdigit() and int(env) > 0 else usable_cores()
        torch.set_num_threads(int(threads))
        with contextlib.suppress(RuntimeError):  # already set, or inter-op work has started: keep torch's
            torch.set_num_interop_threads(1)
        _THREADS = torch.get_num_threads()
        return _THREADS


# --------------------------------------------------------------------------- the batching worker


class Ticket:
    """A case on its way through an :class:`InferenceServer`: wait for it, or ask how many are ahead."""

    def __init__(self, server: InferenceServer, prepared: dict[str, Prepared], run_all: bool, keep_features: bool):
        self._server = server
        self.prepared = prepared
        self.run_all = run_all
        self.keep_features = keep_features
        self.submitted = time.perf_counter()
        self._done = threading.Event()
        self._result: CascadeResult | None = None
        self._error: BaseException | None = None

    def ahead(self) -> int:
        """Cases the worker will finish before this one starts: those in front of it in the queue and
        those of the batch now running.  0 once its own batch runs (or it is done)."""
        return self._server._ahead(self)

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: as long as it takes); True when the result is in."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> CascadeResult:
        """The case's :class:`CascadeResult`; raises the case's own error if it failed."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"The case was not done within {timeout} s.")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def cancel(self) -> bool:
        """Take the case off the queue if it has not started; True when it was taken off."""
        return self._server._cancel(self)

    def _finish(self, result: CascadeResult | None, error: BaseException | None = None) -> None:
        self._result, self._error = result, error
        self.prepared = {}  # the result keeps what it needs
        self._done.set()


class InferenceServer:
    """One worker thread that runs a :class:`Cascade` for every caller, in dynamic batches.

    ``submit`` prepares the case (ROI crop and resize) in the caller's
    thread, so a bad ROI is the caller's error at once, and queues it.  The
    worker starts with the first case and stops on :meth:`close`.
    """

    def __init__(
        self,
        cascade: Cascade,
        *,
        max_batch: int = MAX_BATCH,
        max_wait_s: float = MAX_WAIT_S,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_s >= 0.")
        self.cascade = cascade
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self.max_queue = int(max_queue)
        self._cond = threading.Condition()
        self._queue: collections.deque[Ticket] = collections.deque()
        self._running: list[Ticket] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        _ALL_SERVERS.add(self)
        self.batches_run = 0  # how many batches the worker has run (for tests and the bench)
        self.largest_batch = 0

    # ------------------------------------------------------------ callers

    def submit(self, case: CaseImages, *, run_all: bool = False, keep_features: bool = False) -> Ticket:
        """Queue ``case``; returns its :class:`Ticket` (:class:`ServerBusyError` when the queue is full)."""
        return self.submit_prepared(self.cascade.prepare(case), run_all=run_all, keep_features=keep_features)

    def submit_prepared(
        self, prepared: dict[str, Prepared], *, run_all: bool = False, keep_features: bool = False
    ) -> Ticket:
        """Queue an already prepared case ``{modality: Prepared}``."""
        ticket = Ticket(self, dict(prepared), bool(run_all), bool(keep_features))
        with self._cond:
            if self._closed:
                raise SoftmassError(
                    "The inference server was closed (the weight set was reloaded); run the case again."
                )
            if len(self._queue) >= self.max_queue:
                raise ServerBusyError(
                    f"The server is busy ({len(self._queue)} cases are waiting for the models); try again in a moment."
                )
            self._queue.append(ticket)
            if self._thread is None:
                self._thread = _start_background(self._work, (), "softmass-inference")
            self._cond.notify_all()
        return ticket

    def run(
        self, case: CaseImages, *, run_all: bool = False, keep_features: bool = False, timeout: float | None = None
    ) -> CascadeResult:
        """Submit ``case`` and wait for its result."""
        return self.submit(case, run_all=run_all, keep_features=keep_features).result(timeout)

    def queued(self) -> int:
        """Cases waiting (not counting the batch that runs)."""
        with self._cond:
            return len(self._queue)

    def close(self, timeout: float | None = 10.0) -> None:
        """Refuse new cases, let the worker finish those queued, and stop it."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # ------------------------------------------------------------ queue bookkeeping

    def _ahead(self, ticket: Ticket) -> int:
        with self._cond:
            if ticket.done() or ticket in self._running:
                return 0
            try:
                return self._queue.index(ticket) + len(self._running)
            except ValueError:
                return 0

    def _cancel(self, ticket: Ticket) -> bool:
        with self._cond:
            try:
                self._queue.remove(ticket)
            except ValueError:
                return False
        ticket._finish(None, SoftmassError("The case was cancelled before it ran."))
        return True

    def _take(self) -> list[Ticket]:
        """Block for the next batch: the first waiting case, then whatever else comes within max_wait_s."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return []
                self._cond.wait()
            deadline = time.monotonic() + self.max_wait_s
            while len(self._queue) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            self._running = batch
            return batch

    # ------------------------------------------------------------ the worker

    def _work(self) -> None:
        configure_torch_threads()
        while True:
            batch = self._take()
            if not batch:
                return
            try:
                self._serve(batch)
            finally:
                with self._cond:
                    self._running = []

    def _serve(self, batch: list[Ticket]) -> None:
        try:
            results = self.cascade.run_batch(
                [t.prepared for t in batch],
                run_all=[t.run_all for t in batch],
                keep_features=[t.keep_features for t in batch],
            )
        except Exception as exc:  # noqa: BLE001 - answered to the caller(s), never kills the worker
            if len(batch) == 1:
                batch[0]._finish(None, exc)
                return
            for ticket in batch:  # find the failing case(s): each alone, so only they get an error
                self._serve([ticket])
            return
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        for ticket, result in zip(batch, results, strict=True):
            ticket._finish(result)


# --------------------------------------------------------------------------- the registry


class _Entry:
    def __init__(self, stamp: float) -> None:
        self.stamp = stamp
        self.ready = threading.Event()  # set when the manifest is read and every sha256 checked
        self.weight_set: WeightSet | None = None
        self.error: BaseException | None = None
        self.models_loaded = threading.Event()  # set when every model is built (or failed to)
        self.server: InferenceServer | None = None


class WeightSetRegistry:
    """One verified :class:`WeightSet` per folder for the whole process (thread-safe, load-once).

    A changed set (another ``stamp``, e.g. the newest modification time of its
    files) replaces the old one, whose inference server is closed.  At most
    ``max_sets`` sets are held; the least recently asked for goes first.
    """

    def __init__(self, max_sets: int = 4) -> None:
        self.max_sets = max_sets
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()

    def weight_set(self, folder: str | Path, stamp: float = 0.0, *, load_models: bool = True) -> WeightSet:
        """The verified set in ``folder``; its models are built in a background thread (``load_models``).

        Raises the loader's :class:`SoftmassError` (bad manifest, checksum) to every caller.
        """
        entry = self._entry(folder, stamp, load_models=load_models)
        entry.ready.wait()
        if entry.error is not None:
            raise entry.error
        assert entry.weight_set is not None
        return entry.weight_set

    def models(self, folder: str | Path, stamp: float = 0.0, timeout: float | None = None) -> WeightSet:
        """The set in ``folder`` once all of its models are built (waits for the background loader)."""
        ws = self.weight_set(folder, stamp)
        entry = self._entry(folder, stamp, load_models=True)
        entry.models_loaded.wait(timeout)
        ws.load_all()  # raises the build error, if there was one; a no-op otherwise
        return ws

    def server(self, ws: WeightSet) -> InferenceServer:
        """The inference server of ``ws`` (one per loaded set, made on first use)."""
        with self._lock:
            for entry in self._entries.values():
                if entry.weight_set is ws:
                    if entry.server is None:
                        entry.server = _new_server(ws)
                    return entry.server
        return _server_outside_registry(ws)

    def clear(self) -> None:
        """Forget every set (their servers are closed)."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            if entry.server is not None:
                entry.server.close(timeout=0)

    def _entry(self, folder: str | Path, stamp: float, *, load_models: bool) -> _Entry:
        key = str(Path(folder).resolve())
        dropped: list[_Entry] = []
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.stamp == stamp:
                self._entries.move_to_end(key)
                return entry
            if entry is not None:
                dropped.append(self._entries.pop(key))
            entry = _Entry(stamp)
            self._entries[key] = entry
            while len(self._entries) > self.max_sets:
                dropped.append(self._entries.popitem(last=False)[1])
        for old in dropped:
            if old.server is not None:
                old.server.close(timeout=0)
        self._load(key, entry, load_models=load_models)
        return entry

    def _load(self, folder: str, entry: _Entry, *, load_models: bool) -> None:
        from softmass_core.weights.weight_set import WeightSet

        try:
            entry.weight_set = WeightSet.load(folder)
        except Exception as exc:  # noqa: BLE001 - kept and raised to every caller
            entry.error = exc
            entry.models_loaded.set()
        finally:
            entry.ready.set()
        if entry.error is None:
            if load_models:
                _start_background(_build_models, (entry,), "softmass-load-models")
            else:
                entry.models_loaded.set()


def _build_models(entry: _Entry) -> None:
    try:
        configure_torch_threads()
        assert entry.weight_set is not None
        entry.weight_set.load_all()
    except Exception:  # noqa: BLE001 - the first caller of the failing model gets the error itself
        pass
    finally:
        entry.models_loaded.set()


def _new_server(ws: WeightSet) -> InferenceServer:
    from softmass_core.inference.cascade import Cascade

    return InferenceServer(Cascade(ws))


_LOOSE_SERVERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOOSE_LOCK = threading.Lock()


def _server_outside_registry(ws: WeightSet) -> InferenceServer:
    """A server for a set the registry does not hold (e.g. loaded by hand); it lives as long as the set."""
    with _LOOSE_LOCK:
        server = _LOOSE_SERVERS.get(ws)
        if server is None:
            server = _LOOSE_SERVERS[ws] = _new_server(ws)
        return server


#: The process-wide registry every page shares.
REGISTRY = WeightSetRegistry()


def server_for(ws: WeightSet) -> InferenceServer:
    """The process-wide inference server of ``ws``."""
    return REGISTRY.server(ws)


# --------------------------------------------------------------------------- warm-up at start

_WARMING: dict[str, threading.Thread] = {}
_WARMING_LOCK = threading.Lock()


def warm_up(folder: str | Path, stamp: float = 0.0, *, then: Sequence[Callable[[], Any]] = ()) -> threading.Thread:
    """Load ``folder``'s set in a background thread and run one case through it (once per folder and stamp).

    The thread imports torch and timm, verifies and builds every model, runs a
    synthetic case through the set's inference server (so the first real case
    finds the kernels ready), prepares Grad-CAM on it, then calls each of
    ``then`` (e.g. to build a demo case).  It never raises: a set that fails
    to load reports its error to the first page that asks for it.  Returns
    the thread (already started).
    """
    key = f"{Path(folder).resolve()}@{stamp}"
    with _WARMING_LOCK:
        thread = _WARMING.get(key)
        if thread is None:
            thread = _start_background(_warm, (folder, stamp, tuple(then)), "softmass-warm-up")
            _WARMING[key] = thread
        return thread


def _warm(folder: str | Path, stamp: float, then: Sequence[Callable[[], Any]]) -> None:
    try:
        configure_torch_threads()
        ws = REGISTRY.models(folder, stamp)
        if _STOPPING.is_set():
            return
        import numpy as np

        from softmass_core.inference.cascade import CaseImages
        from softmass_core.labels import DLM1

        spec = ws.input_spec
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, size=(spec.height, spec.width, 3), dtype=np.uint8)
        result = server_for(ws).run(CaseImages(gray=image, cdfi=image), run_all=True, keep_features=True)
        if _STOPPING.is_set():
            return
        from softmass_core.inference.gradcam import cams_for_result

        cams_for_result(ws, result, DLM1)
    except Exception:  # noqa: BLE001 - warming is best effort; the pages report real errors
        pass
    for fn in then:
        if _STOPPING.is_set():
            return
        with contextlib.suppress(Exception):  # best effort, as above
            fn()


# --------------------------------------------------------------------------- clean exit

#: Every inference server made in this process (closed at exit).
_ALL_SERVERS: weakref.WeakSet = weakref.WeakSet()
#: Set at interpreter exit: background work stops at its next step.
_STOPPING = threading.Event()
_BACKGROUND: set[threading.Thread] = set()
_BACKGROUND_LOCK = threading.Lock()
#: How long the exit waits for background loading to reach a stopping point (seconds).
EXIT_WAIT_S = 120.0


def _start_background(target: Callable[..., Any], args: tuple, name: str) -> threading.Thread:
    """Start a daemon thread that :func:`_shutdown` waits for at exit."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    with _BACKGROUND_LOCK:
        _BACKGROUND.add(thread)
    thread.start()
    return thread


def _shutdown() -> None:
    """At exit: let background loading stop, then close every inference server and join its worker.

    A daemon thread still inside torch when the interpreter finalizes is
    killed mid-call, which aborts the process ("terminate called without an
    active exception") after all work is done; so nothing may be left running.
    """
    _STOPPING.set()
    deadline = time.monotonic() + EXIT_WAIT_S
    for server in list(_ALL_SERVERS):
        server.close(timeout=0)  # refuse new cases; the queued ones still finish
    with _BACKGROUND_LOCK:
        threads = list(_BACKGROUND)
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


atexit.register(_shutdown)
