"""Ray backend: the same trials as `local`, run in parallel by Ray Tune workers, written into the
same Optuna study and storage - so a study started locally continues on Ray and the other way
round, and reports cannot tell the two apart (only each trial's `worker` attr names the process).

The driver asks the study for keep sets (`StudySearch`); each worker runs the local objective on
that Optuna trial and tells the storage itself (`work`), so on several machines the storage must
be one they all reach (postgresql://...), not a SQLite file.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import signal
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
import ray
import torch
from optuna.trial import FrozenTrial, TrialState
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from autoprune.backends.local import Streaks, stop_reason
from autoprune.errors import AutoPruneError, StudyError
from autoprune.evaluate import resolve_device
from autoprune.export import process_alive
from autoprune.objective import TrialContext, failure_reason, make_objective, suggest_keep
from autoprune.record import TrialRecord, mark
from autoprune.space import SearchSpace
from autoprune.study import HEARTBEAT_S, open_storage, quiet_optuna

CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class RayOptions:
    workers: int = 1
    cpus_per_trial: float | None = None  # default: the cluster's CPUs shared among the workers
    gpus_per_trial: float = 0.0
    address: str | None = None  # None: start a local runtime; "auto" or HOST:PORT: join a cluster
    device: str = "auto"  # resolved on each worker, which may have a GPU the driver lacks


def _check_reachable(address: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise AutoPruneError(
            f"--address {address!r} is not auto or HOST:PORT; use e.g. --address 10.0.0.5:6379 "
            "(the address `ray start --head` printed)"
        )
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise AutoPruneError(
            f"--address {address}: no Ray head answers there ({exc.strerror or exc}); start one "
            "with `ray start --head --port PORT` on that machine, or leave out --address to start "
            "a local Ray runtime"
        ) from None


def preflight(options: RayOptions) -> None:
    """What can be checked before the study does any work: a local runtime asked for GPUs on a
    machine without one, an address nobody answers at."""
    if ray.is_initialized():
        return
    if options.address is None and options.gpus_per_trial > 0 and not torch.cuda.is_available():
        raise AutoPruneError(
            f"--gpus-per-trial {options.gpus_per_trial:g} needs a GPU and this machine has none; "
            "leave it out, or join a cluster that has GPUs with --address"
        )
    if options.address not in (None, "auto") and "://" not in options.address:
        _check_reachable(options.address)


def connect(address: str | None = None) -> bool:
    """Start a local Ray runtime (no address) or join a cluster. Returns whether this call did,
    and so owns the connection; an already initialised Ray (a notebook, a test) is reused."""
    if ray.is_initialized():
        return False
    options = {"include_dashboard": False} if address is None else {}
    # Ray warns on every new local runtime that token authentication is on, as it is by
    # default: nothing for the user to do (its warning that it is off still shows)
    auth = "ray._private.authentication.authentication_token_setup"
    try:
        with unsaid(auth, "Token authentication is enabled for this"):
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **options)
    except (ConnectionError, ValueError, RuntimeError, ray.exceptions.RayError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise AutoPruneError(
            f"--address {address}: cannot join a Ray cluster ({first}); start one with "
            "`ray start --head`, or leave out --address to start a local Ray runtime"
        ) from None
    return True


@contextmanager
def unsaid(logger: str, opening: str) -> Iterator[None]:
    """While the block runs, the records of `logger` whose message starts with `opening` are
    dropped (Ray's and Tune's lines that would mislead or ask nothing of the user)."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(opening)

    log = logging.getLogger(logger)
    log.addFilter(keep)
    try:
        yield
    finally:
        log.removeFilter(keep)


def trial_resources(options: RayOptions, url: str) -> tuple[float, float]:
    """CPUs and GPUs each trial asks for, checked against the cluster Ray is connected to, so an
    impossible request fails now instead of leaving trials queued for ever."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = [n["Resources"].get("CPU", 0.0) for n in nodes]
    gpus = [n["Resources"].get("GPU", 0.0) for n in nodes]
    if options.gpus_per_trial > 0 and max(gpus, default=0) < options.gpus_per_trial:
        raise AutoPruneError(
            f"--gpus-per-trial {options.gpus_per_trial:g}: no node of the Ray cluster has that "
            f"many GPUs (largest: {max(gpus, default=0):g}); leave it out or ask for a fraction"
        )
    largest = max(cpus, default=0.0)
    per_trial = options.cpus_per_trial or min(largest, max(1.0, sum(cpus) // options.workers))
    if per_trial > largest:
        raise AutoPruneError(
            f"--cpus-per-trial {per_trial:g}: no node of the Ray cluster has that many CPUs "
            f"(largest: {largest:g})"
        )
    hosts = {n["NodeManagerAddress"] for n in nodes}
    if url.startswith("sqlite") and len(hosts) > 1:
        raise AutoPruneError(
            f"the Ray cluster spans {len(hosts)} machines, but the study is a SQLite file that "
            "only this one can write; use a shared storage, e.g. --storage "
            "postgresql://user:pass@host/db"
        )
    return per_trial, options.gpus_per_trial


class StudySearch(OptunaSearch):
    """OptunaSearch over the study itself, stopping by the study's own rules (read against Ray
    2.60's `ray/tune/search/optuna/optuna_search.py`).

    It hands OptunaSearch the study's own name, storage and sampler (the screened sampler
    included), so priors, enqueued seed trials and re-queued trials are served exactly as by
    `study.optimize`. The keep set is suggested and stored on the trial here in the driver
    (`objective.suggest_keep`), so the sampler, asked for the next trial, sees every trial still
    running.

    It tells nothing itself: the worker does (`work`). OptunaSearch would `tell` from the driver
    once Tune relays the result: a driver killed in between loses a trained trial, and for a
    multi-objective trial without values (a duplicate, a failure reported as a result) it tells
    a list of None, which Optuna rejects, leaving the trial RUNNING for good."""

    def __init__(
        self,
        study: optuna.Study,
        url: str,
        space: SearchSpace,
        target: int,
        on_trial: Callable[[optuna.Study, FrozenTrial | None], None],
        compute: float | None = None,
    ) -> None:
        self.storage = open_storage(url)
        self.keep_space = space
        self.target, self.on_trial, self.compute = target, on_trial, compute
        self.in_flight: dict[str, int] = {}  # Tune trial id -> Optuna trial id
        self.streaks = Streaks()
        self.stopped: str | None = None
        self.error: StudyError | None = None
        super().__init__(
            space=self._define,
            metric=list(space.objectives),
            mode=["min"] * len(space.objectives),
            sampler=study.sampler,
            study_name=study.study_name,
            storage=self.storage,
        )

    def _define(self, trial: optuna.Trial) -> dict:
        keep = suggest_keep(trial, self.keep_space)
        mark(trial, keep=list(keep))
        return {"trial_id": trial._trial_id, "number": trial.number}

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.stopped or self.error:
            return Searcher.FINISHED
        optuna.storages.fail_stale_trials(self._ot_study)
        in_flight = len(self.in_flight)
        if reason := stop_reason(
            self._ot_study, self.keep_space, self.target, in_flight, self.compute
        ):
            if self.in_flight:
                return None  # wait: a running trial may fail or turn out a look-up
            self.stopped = reason
            return Searcher.FINISHED
        config = super().suggest(trial_id)
        self.in_flight[trial_id] = config["trial_id"]
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        """Fail (and re-queue once, by the storage's retry callback) only a trial whose worker
        died before telling; feed the progress bar and the stop rules `local` uses."""
        optuna_id = self.in_flight.pop(trial_id, None)
        if optuna_id is None:
            return
        trial = self.storage.get_trial(optuna_id)
        if trial.state == TrialState.RUNNING:  # its worker died before it could tell
            trial = self._fail(optuna_id, "the Ray worker running this trial died")
        self.on_trial(self._ot_study, trial)
        try:
            if stalled := self.streaks.update(trial):
                self.stopped = stalled
        except StudyError as exc:
            self.error = exc

    def _fail(self, optuna_id: int, reason: str) -> FrozenTrial:
        """Record a trial failed and re-queue its keep set once (the storage's retry callback,
        the same that re-queues a local trial left stale by a crash)."""
        try:
            self.storage.set_trial_user_attr(optuna_id, "fail_reason", reason)
            self.storage.set_trial_state_values(optuna_id, TrialState.FAIL)
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            return self.storage.get_trial(optuna_id)  # it finished after all
        failed = self.storage.get_trial(optuna_id)
        retry = self.storage.get_heartbeat_stale_trial_callback()
        if retry is not None:
            retry(self._ot_study, failed)
        return failed

    def release(self) -> None:
        """After Tune stopped (interrupted): trials asked and not finished are failed and
        re-queued now, rather than after the heartbeat grace period."""
        for optuna_id in list(self.in_flight.values()):
            if self.storage.get_trial(optuna_id).state == TrialState.RUNNING:
                self._fail(optuna_id, "interrupted before it finished")
        self.in_flight.clear()

    @contextmanager
    def heartbeats(self) -> Iterator[None]:
        """Beat for every trial in flight while Tune runs (asked and not yet seen finish: queued
        for resources or running), for Optuna's stale-trial detection. A killed driver takes its
        Ray job's workers with it and its beats stop, so the next run - on either backend -
        fails those trials as stale and re-queues them once, as after a local crash."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                for optuna_id in list(self.in_flight.values()):
                    self.storage.record_heartbeat(optuna_id)

        thread = threading.Thread(target=beat, name="autoprune-heartbeats", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def save_to_dir(self, *args, **kwargs) -> None:
        """Nothing to save: the Optuna storage is the state a resumed run starts from."""

    def __getstate__(self) -> dict:
        """Tune pickles its searcher into the experiment folder for `Tuner.restore`, which this
        backend never uses; the driver's progress callback (a live console) stays out."""
        return {k: v for k, v in self.__dict__.items() if k != "on_trial"}


_CONTEXTS: dict[str, TrialContext] = {}  # per worker process: the run's context, on its device
_STORAGES: dict[str, optuna.storages.RDBStorage] = {}  # per worker process: one engine per URL


def _context(shipped: dict, device: str) -> TrialContext:
    """The run's trial context (the adapter with its weights, the series, the latency profile):
    it goes into Ray's object store once per run and is kept by each worker process (actors are
    reused), so a worker loads it once rather than per trial, and workers on other machines need
    neither the model files nor the dataset."""
    if shipped["key"] not in _CONTEXTS:
        _CONTEXTS.clear()  # a reused worker of an earlier run: free that model
        ctx: TrialContext = ray.get(shipped["ref"])
        _CONTEXTS[shipped["key"]] = dataclasses.replace(ctx, device=resolve_device(device))
    return _CONTEXTS[shipped["key"]]


def work(
    config: dict,
    *,
    shipped: dict,
    url: str,
    study_name: str,
    threads: int,
    device: str,
) -> None:
    """One Tune trial on a worker: the Optuna trial the driver asked, re-opened from the
    storage, run by the local objective (`objective.make_objective`, with its look-ups,
    duplicate check and trial record) and told to the storage here, so a trained keep set is
    stored the moment it is trained."""
    quiet_optuna()
    torch.set_num_threads(threads)
    ctx = _context(shipped, device)
    if url not in _STORAGES:
        _STORAGES[url] = open_storage(url)
    storage = _STORAGES[url]
    study = optuna.load_study(
        study_name=study_name, storage=storage, sampler=optuna.samplers.RandomSampler()
    )
    trial = optuna.trial.Trial(study, config["trial_id"])
    values, state = None, TrialState.COMPLETE
    try:
        values = make_objective(ctx)(trial)
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except Exception as exc:  # noqa: BLE001 - recorded on the trial, as study.optimize does
        if TrialRecord.of(trial).fail_reason is None:
            mark(trial, fail_reason=failure_reason(exc))
        state = TrialState.FAIL
    study.tell(trial, values, state=state)
    objectives = ctx.space.objectives
    tune.report(
        {o: values[i] if values else math.nan for i, o in enumerate(objectives)}
        | {"state": state.name, "number": config["number"]}
    )


@contextmanager
def own_signals() -> Iterator[None]:
    """Around Tune's run: Ctrl-C is ours again when it ends, and Tune's resume hint is not said.
    Tune takes over SIGINT (and SIGUSR1) for its run and gives them back only after a first
    signal: once it finished on its own, a Ctrl-C during the selection, the test split or the
    report was logged by Tune and otherwise ignored. They are given back when the run ends. While
    it runs, Tune's last word on Ctrl-C, "Experiment has been interrupted ... Resume experiment
    with: Tuner.restore(path=...)", is dropped: that path is this run's scratch folder, removed
    when it ends, and a study resumes by running the same command, which the command line says."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread sets handlers, and Tune leaves them alone there too
        return
    names = [signal.SIGINT] + ([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else [])
    handlers = {name: signal.getsignal(name) for name in names}
    try:
        with unsaid("ray.tune.tune", "Experiment has been interrupted"):
            yield
    finally:
        for name, handler in handlers.items():
            signal.signal(name, handler)


SCRATCH = "autoprune-ray-"


def scratch_folder() -> str:
    """A new folder for Tune's own state, named by this process's pid. Those a run killed
    before its cleanup (kill -9) left behind, their process gone, are removed first."""
    for left in Path(tempfile.gettempdir()).glob(f"{SCRATCH}*-*"):
        pid = left.name.removeprefix(SCRATCH).split("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{SCRATCH}{os.getpid()}-")


@contextmanager
def session(options: RayOptions) -> Iterator[None]:
    """One Ray runtime for every `run` inside it (a search that goes on past its target runs
    again): started or joined once, and shut down after the last if this call started it."""
    preflight(options)
    owns = connect(options.address)
    try:
        yield
    finally:
        if owns:
            ray.shutdown()


def run(
    study: optuna.Study,
    ctx: TrialContext,
    target: int,
    url: str,
    options: RayOptions,
    on_trial: Callable[[optuna.Study, FrozenTrial | None], None] = lambda s, t: None,
    compute: float | None = None,
) -> str:
    """Run trials on Ray until the study holds `target` trained keep sets or has spent `compute`
    seconds of search (trials in flight finish); returns why it stopped, as `local.run` does.
    Raises KeyboardInterrupt when Tune was interrupted (Ctrl-C). Runs on the Ray runtime of
    an enclosing `session`, else in a session of its own."""
    with session(options):
        scratch = scratch_folder()
        searcher: StudySearch | None = None
        try:
            cpus, gpus = trial_resources(options, url)
            searcher = StudySearch(study, url, ctx.space, target, on_trial, compute)
            trainable = tune.with_resources(
                tune.with_parameters(
                    work,
                    shipped={"key": uuid.uuid4().hex, "ref": ray.put(ctx)},
                    url=url,
                    study_name=study.study_name,
                    threads=max(1, int(cpus)),
                    device=options.device,
                ),
                {"cpu": cpus, "gpu": gpus},
            )
            os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: Tune prints nothing
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    num_samples=-1,  # the searcher says when the study is done
                    max_concurrent_trials=options.workers,
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=study.study_name,
                    storage_path=scratch,
                    verbose=0,
                    failure_config=tune.FailureConfig(max_failures=0),
                ),
            )
            with searcher.heartbeats(), own_signals():
                tuner.fit()
        finally:
            if searcher is not None:
                searcher.release()
            shutil.rmtree(scratch, ignore_errors=True)
    if searcher.error:
        raise searcher.error
    if searcher.stopped is None:
        raise KeyboardInterrupt
    return searcher.stopped
