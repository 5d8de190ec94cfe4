"""Where a study lives and how it is created, resumed and read.

A study is an Optuna multi-objective study in an RDB storage; `storage_url` is the one function
that decides where a study is stored.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import logging
import os
import random
import re
import sqlite3
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from autoprune.errors import StudyError, UnknownNameError
from autoprune.pareto import hv_reference, hypervolume, hypervolume_curve, non_dominated, normalise
from autoprune.record import TrialRecord

STUDIES_ENV = "AUTOPRUNE_STUDIES_DIR"
SETTINGS_ATTR = "autoprune"
REFERENCE_ATTR = "reference"
PROFILE_ATTR = "latency_profile"
SELECTION_ATTR = "selection"
FRONT_TEST_ATTR = "front_test"  # test metrics of front keep sets, by keep_key
FRONT_LATENCY_ATTR = "front_latency"  # measured latency (ms) of front keep sets, by keep_key
BASELINES_ATTR = "baselines"
PRIORS_ATTR = "priors"
HOLDOUT_ATTR = "holdout"  # the selection and the full model, zero-shot on held-out datasets
COMPUTE_ATTR = "compute"  # seconds each once-per-study step took, by step (`spending`)
# the screened sampler went without the zero-shot screen: why (`search.run.screen_knowledge`)
SCREEN_SKIPPED_ATTR = "screen_skipped"
# a search without --trials that went on past the default while its front was still growing
WENT_ON_ATTR = "went_on"
# the once-per-study steps `spending` records, in the order a search meets them
STEPS_BEFORE_TRIALS = ("latency profile", "full model (val)", "importance", "screen")
STEPS_AFTER_TRIALS = ("full model (test)", "selection", "front latency", "front test", "held-out")
HEARTBEAT_S = 5
GRACE_S = 15
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

# Settings that make trials comparable: resuming with any of them changed is refused.
RESUME_KEYS = (
    "dataset",
    "dataset_options",
    "aggregate",  # only in a multi-dataset study
    "setting",
    "objectives",
    "realign",
    "evaluation",
    "seed",
    "space",
)
# what a resume may choose afresh; the study's settings keep its latest run's
RUN_KEYS = ("sampler", "fidelity", "warm_start", "screen")
# which model: resuming needs the same one (`same_model`), under whatever name it has now
MODEL_KEYS = ("model", "weights_sha256")


class CutShort(logging.Filter):
    """Drops Optuna's two warnings for a trial a Ctrl-C cut short, its traceback and then its
    value: the command says it was interrupted and how to resume, and the resumed study trains
    that keep set again (it stays FAIL with no reason, `samplers.taken`)."""

    def __init__(self) -> None:
        super().__init__()
        self.trial: str | None = None  # the trial whose second warning is still to come

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            self.trial = record.getMessage().split(maxsplit=2)[1]  # "Trial N failed with ..."
            return False
        if self.trial and record.getMessage().startswith(f"Trial {self.trial} failed with value"):
            self.trial = None
            return False
        return True


def quiet_optuna() -> None:
    """Keep Optuna's per-trial lines and its experimental-feature warnings out of the output of
    an entry point: the command line, and a Ray worker process (which never runs it). Optuna
    also warns that heartbeats are meant for Study.optimize; here the driver beats for its
    trials. A trial cut short by Ctrl-C is not reported with a traceback (`CutShort`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optimize_log = logging.getLogger("optuna.study._optimize")  # where Optuna reports a trial
    if not any(isinstance(f, CutShort) for f in optimize_log.filters):
        optimize_log.addFilter(CutShort())
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


def studies_root() -> Path:
    return Path(os.environ.get(STUDIES_ENV) or "studies")


def validate_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise StudyError(
            f"study name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
            "(no slashes, no '..', at most 100 characters), e.g. etth1-tiny"
        )
    return name


def study_dir(name: str) -> Path:
    return studies_root() / validate_name(name)


def storage_url(name: str, storage: str | None = None) -> str:
    """The storage of study `name`: `storage` if given, else SQLite at `studies/<name>/study.db`.

    SQLite by default because every Optuna tool reads it from a plain URL (`optuna-dashboard
    sqlite:///studies/s1/study.db`), each write is an ACID transaction so a `kill -9` can never
    leave a half-written trial, and RDB storages support heartbeats, which is how trials left
    RUNNING by a crash are found and re-queued. Any other Optuna RDB URL (`postgresql://...`)
    works the same way and lets many processes and machines share one study."""
    if storage:
        if "://" not in storage:
            raise StudyError(
                f"--storage {mask_url(storage)!r} is not a storage URL; use e.g. "
                "sqlite:///path/study.db or postgresql://user:pass@host/db"
            )
        return storage
    directory = study_dir(name)
    return f"sqlite:///{directory.resolve() / 'study.db'}"


# module SQLAlchemy imports for a URL -> the pip package that provides it
_DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pymysql": "PyMySQL"}


def _raw_password(url: str) -> str:
    """The password as typed in `url` (between the user's `:` and the last `@`), or ''."""
    rest = url.partition("://")[2] if "://" in url else url.partition(":")[2]
    return rest.rpartition("@")[0].partition(":")[2]


def mask_url(url: str) -> str:
    """The URL as it may appear in messages and logs: any password masked, also in a URL
    SQLAlchemy cannot parse (a bad port, a missing `//`)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - SQLAlchemy raises several types for a malformed URL
        password = _raw_password(url)
        return url.replace(f":{password}@", ":***@") if password else url


def mask_in(text: str, url: str) -> str:
    """`text` (a driver's or Optuna's message about `url`) with the URL's password masked."""
    password = _raw_password(url)
    text = text.replace(url, mask_url(url))
    return text.replace(password, "***") if password else text


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases, in-memory SQLite and a
    malformed URL (opening it says what is wrong)."""
    if not url.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    try:
        database = make_url(url).database
    except Exception:  # noqa: BLE001 - SQLAlchemy raises several types for a malformed URL
        return None
    return Path(database) if database and database != ":memory:" else None


def _not_optuna(path: Path) -> str | None:
    """Why an existing file is not an Optuna SQLite storage; None when it is one."""
    if path.is_dir():
        return "is a directory"
    if path.stat().st_size == 0:
        return "is empty (0 bytes)"
    try:
        tables = _table_names(path, "ro")
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_READONLY_ROLLBACK:
            return "is not a SQLite database"
        # a hot journal: a process was killed mid-write (kill -9, power loss); SQLite rolls the
        # file back to its last commit when a writable connection opens it, as any client does
        try:
            tables = _table_names(path, "rw")
        except sqlite3.DatabaseError:
            return "is not a SQLite database"
    return None if {"studies", "version_info"} <= tables else "holds no Optuna tables"


def _table_names(path: Path, mode: str) -> set[str]:
    """The tables of the SQLite file `path`, opened with `mode` (ro or rw: never created)."""
    with contextlib.closing(
        sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True)
    ) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master")}


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Processes creating a storage in `folder` take turns: two searches started together on a
    new study would otherwise both write Optuna's schema (`alembic_version` UNIQUE)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def open_storage(url: str, create: bool = True) -> RDBStorage:
    """The storage at `url`. With `create`, a new SQLite file (and its folder) or Optuna's
    tables in an empty database are made; without, it must already be an Optuna storage, and
    nothing is created or changed (report, export and list only read). A file that exists but
    is not an Optuna storage - empty, foreign, a folder - is refused either way."""
    for noisy in ("sqlalchemy", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    path = _sqlite_file(url)
    if path is None:
        return _rdb(url, create)
    if not create and not path.exists():
        raise StudyError(
            f"storage file {str(path)!r} does not exist; check the --storage path "
            "(report, export and list never create one)"
        )
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StudyError(
                f"cannot create the study folder {str(path.parent)!r}: {exc.strerror}; "
                "choose a writable place with AUTOPRUNE_STUDIES_DIR or --storage"
            ) from None
    with _folder_lock(path.parent) if create else contextlib.nullcontext():
        why = _not_optuna(path) if path.exists() else None
        if why:
            raise StudyError(
                f"storage file {str(path)!r} {why}, so it is not an Optuna study storage; "
                "move it away, or give another --study or --storage"
            )
        storage = _rdb(url, create)
    from sqlalchemy import event

    event.listen(storage.engine, "handle_error", lambda context: _write_failure(context, path))
    return storage


# SQLite's messages for a write the disk or folder refuses -> the errno a file write would get
_SQLITE_WRITE_FAILURES = {
    "database or disk is full": errno.ENOSPC,
    "attempt to write a readonly database": errno.EROFS,
    "unable to open database file": errno.EACCES,
    "disk I/O error": errno.EIO,
}


def _write_failure(context, path: Path) -> None:
    """A SQLite write the disk refuses is raised as the OSError a file write would raise, naming
    the storage file, so the CLI says it in one line like any other full disk (Optuna would
    wrap it in a StorageInternalError that names nothing)."""
    text = str(context.original_exception)
    for message, code in _SQLITE_WRITE_FAILURES.items():
        if message in text:
            raise OSError(code, message, str(path)) from context.original_exception


def _rdb(url: str, create: bool) -> RDBStorage:
    try:
        return _rdb_creating_together(url, create)
    except ImportError as exc:
        module = getattr(exc.__cause__, "name", None) or "its database driver"
        package = _DRIVERS.get(module, module)
        raise StudyError(
            f"storage {mask_url(url)!r} needs the Python module {module!r}, which is not "
            f"installed; pip install '{package}'"
        ) from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for bad URLs
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        message = mask_in((lines[0] if lines else type(exc).__name__)[:200], url)
        raise StudyError(
            f"cannot open storage {mask_url(url)!r}: {message}; check the URL and that the "
            "database server is running and reachable"
        ) from None


SCHEMA_ATTEMPTS = 8


class RetryAsQueued(RetryHeartbeatStaleTrialCallback):
    """Optuna's re-queueing of a trial left RUNNING by a dead process (once), except that the
    new trial starts from what the old one was enqueued with, not from everything it stored
    while it ran: with a copied claim, every other trial yields to, and the study total waits
    for, the retry before it has chosen anything (and for good if its process dies then)."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        queued = copy.copy(trial)
        record = TrialRecord.of(trial)
        queued.user_attrs = record.queued().attrs()
        if record.keep is None:
            # it died while choosing its keep set: nothing to repeat, and the layers it had
            # chosen would override the sampler's next choice one by one (a keep set it was
            # enqueued with stays in its system attrs)
            queued.params, queued.distributions = {}, {}
        super().__call__(study, queued)


def _rdb_creating_together(url: str, create: bool) -> RDBStorage:
    """Optuna's storage at `url`. On a database server, processes that create Optuna's tables
    at the same instant collide in the server's catalog (a duplicate table, type or
    `alembic_version` row); whoever loses retries after a short random pause, by which time the
    winner's tables exist and creating them is skipped. (SQLite files take turns under a folder
    lock instead.)"""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    kwargs = {
        "engine_kwargs": {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
        "heartbeat_interval": HEARTBEAT_S,
        "grace_period": GRACE_S,
        "heartbeat_stale_trial_callback": RetryAsQueued(max_retry=1),
        "skip_table_creation": not create,
    }
    for attempt in range(1, SCHEMA_ATTEMPTS if create else 1):
        try:
            return RDBStorage(url, **kwargs)
        except (IntegrityError, ProgrammingError):
            time.sleep(random.uniform(0.1, 0.5) * attempt)
    return RDBStorage(url, **kwargs)


def study_exists(storage: RDBStorage, name: str) -> bool:
    return any(s.study_name == name for s in storage.get_all_studies())


def stored_study(
    name: str, storage: str | None = None, read_only: bool = True
) -> optuna.Study | None:
    """Study `name` if its storage holds it, else None. Creates no file, folder or study; with
    `read_only`, not even Optuna's tables in an empty database, and a `--storage` file that
    does not exist is an error (a mistyped path), not an empty storage."""
    url = storage_url(validate_name(name), storage)
    path = _sqlite_file(url)
    if path is not None and not path.exists() and (storage is None or not read_only):
        return None
    rdb = open_storage(url, create=not read_only)
    return optuna.load_study(study_name=name, storage=rdb) if study_exists(rdb, name) else None


def load_study(name: str, storage: str | None = None) -> optuna.Study:
    """An existing study, for reading (report, export, list)."""
    study = stored_study(name, storage)
    if study is None and storage is None:
        known = [s["name"] for s in list_studies()]
        raise UnknownNameError(
            f"unknown study {name!r} under {studies_root()}/; known: {', '.join(known) or 'none'}"
        )
    if study is None:
        raise UnknownNameError(
            f"storage {mask_url(storage)!r} has no study named {name!r}; see `autoprune list "
            "studies` or check --storage"
        )
    return study


def selected_checkpoint(study: optuna.Study) -> Path | None:
    """Where the study's selected checkpoint is. Stored relative to the study folder, so a
    copied study folder exports its own copy; older studies stored an absolute path."""
    selection = study.user_attrs.get(SELECTION_ATTR)
    return study_dir(study.study_name) / selection["checkpoint"] if selection else None


def settings_of(study: optuna.Study) -> dict:
    return study.user_attrs.get(SETTINGS_ATTR, {})


SETTINGS_WAIT_S = 10.0


def _settings_once_written(study: optuna.Study) -> dict:
    """The study's settings. A process that creates a study writes them just after Optuna
    creates it; another one that opens the study in between (searches started together on a
    new study) waits for them rather than reading none."""
    deadline = time.monotonic() + SETTINGS_WAIT_S
    while not (stored := settings_of(study)) and time.monotonic() < deadline:
        time.sleep(0.1)  # study attrs are read from the storage each time
    return stored


def same_model(a: dict, b: dict) -> bool:
    """Whether two studies' settings (or two truth tables) were made with one model: by its
    weights' sha256 where both recorded it, so a moved checkpoint directory or a hub id and its
    download are one model and a hub id whose weights were replaced is not; by the name it was
    given otherwise (studies and tables made before autoprune recorded the digest)."""
    if a.get("weights_sha256") and b.get("weights_sha256"):
        return a["weights_sha256"] == b["weights_sha256"]
    return a.get("model") == b.get("model")


def model_named(settings: dict) -> str:
    """A model as an error message names it: its name, and its weights' digest where known."""
    digest = settings.get("weights_sha256")
    named = f"model {settings.get('model')!r}"
    return f"{named} (weights sha256 {digest[:12]})" if digest else named


def create_or_resume(
    name: str,
    storage: str | None,
    settings: dict,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    """Create the study, or resume it after checking it was created with the same model
    (`same_model`) and settings (`RUN_KEYS` may differ: they are stored as this run's, as are
    the model's name and digest). Its sampler is set where trials start
    (`search.run.study_sampler`)."""
    url = storage_url(name, storage)
    rdb = open_storage(url)
    if study_exists(rdb, name):
        study = optuna.load_study(study_name=name, storage=rdb, sampler=sampler)
        stored = _settings_once_written(study)
        if not same_model(stored, settings):
            raise StudyError(
                f"study {name!r} was created with {model_named(stored)}, not "
                f"{model_named(settings)}; resume it with the same model or start a new --study"
            )
        for key in RESUME_KEYS:
            if stored.get(key) != settings.get(key):
                raise StudyError(
                    f"study {name!r} was created with {key} = {stored.get(key)!r}, not "
                    f"{settings.get(key)!r}; resume it with the same settings or start a new "
                    "--study"
                )
        keys = (*RUN_KEYS, *MODEL_KEYS)
        if changed := {k: settings.get(k) for k in keys if stored.get(k) != settings.get(k)}:
            study.set_user_attr(SETTINGS_ATTR, {**stored, **changed})
        return study
    directions = ["minimize"] * len(settings["objectives"])
    study = optuna.create_study(
        study_name=name, storage=rdb, sampler=sampler, directions=directions, load_if_exists=True
    )
    study.set_metric_names(list(settings["objectives"]))
    study.set_user_attr(SETTINGS_ATTR, settings)
    return study


@contextlib.contextmanager
def spending(study: optuna.Study, step: str) -> Iterator[None]:
    """Add the seconds the block takes to the study's record of `step` (`COMPUTE_ATTR`), once
    it finishes: what a study spent outside its trials (screen, reference, test metrics, ...)
    is kept beside what each trial records, so its report can say where the compute went."""
    if step not in STEPS_BEFORE_TRIALS + STEPS_AFTER_TRIALS:
        raise ValueError(f"{step!r} is not a compute step the report knows")
    start = time.perf_counter()
    try:
        yield
    finally:  # a step cut short (a screen over its budget, Ctrl-C) spent its seconds too
        seconds = time.perf_counter() - start
        spent = dict(study.user_attrs.get(COMPUTE_ATTR, {}))
        spent[step] = round(spent.get(step, 0.0) + seconds, 3)
        study.set_user_attr(COMPUTE_ATTR, spent)


def is_trained(trial: FrozenTrial) -> bool:
    """A completed trial that trained its own keep set (not a lookup of an earlier one)."""
    return trial.state == TrialState.COMPLETE and TrialRecord.of(trial).lookup_of is None


def keep_key(keep) -> str:
    """A keep set as a storage key: `0 3 4`."""
    return " ".join(map(str, keep))


def trained_trials(study: optuna.Study) -> list[FrozenTrial]:
    states = (TrialState.COMPLETE,)
    return [t for t in study.get_trials(deepcopy=False, states=states) if is_trained(t)]


def failed_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.FAIL,))


def stopped_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials stopped at a rung: PRUNED, with the steps they got (`stopped_at`)."""
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    return [t for t in pruned if TrialRecord.of(t).stopped_at is not None]


def full_values(reference: dict, objectives: list[str]) -> list[float]:
    return [reference["realigned"][o] for o in objectives]


def front_of(study: optuna.Study) -> tuple[list[FrozenTrial], np.ndarray]:
    """The trained trials and which of them are on the front: the one front of search, report,
    list and export."""
    trials = trained_trials(study)
    if not trials:
        return [], np.zeros(0, dtype=bool)
    return trials, non_dominated(np.array([t.values for t in trials]))


def _normalised_trained(study: optuna.Study, objectives: list[str]) -> np.ndarray:
    """The trained trials' values in trial order, divided by the re-aligned full model's (none
    before the full model is re-aligned)."""
    reference = study.user_attrs.get(REFERENCE_ATTR)
    trials = trained_trials(study)
    if not reference or not trials:
        return np.zeros((0, len(objectives)))
    return normalise(np.array([t.values for t in trials]), full_values(reference, objectives))


def current_hypervolume(study: optuna.Study, objectives: list[str]) -> float:
    """The front's hypervolume, objectives divided by the re-aligned full model's."""
    points = _normalised_trained(study, objectives)
    return hypervolume(points, hv_reference(objectives)) if len(points) else 0.0


def hypervolume_curve_of(study: optuna.Study, objectives: list[str]) -> list[float]:
    """The front's hypervolume after each trained trial, in trial order (the report's curve)."""
    return hypervolume_curve(_normalised_trained(study, objectives), hv_reference(objectives))


TRIAL_KINDS = {
    "trained": "trials trained to the full budget",
    "stopped": "trials stopped at a rung",
    "failed": "trials that failed",
}


def compute_spent(study: optuna.Study) -> dict:
    """Seconds the study has spent so far, in every run of it, by step: what each trial
    recorded (trained to the full budget, stopped at a rung, failed; a look-up runs nothing),
    and the once-per-study steps around them. Summed over processes, so with several workers
    it exceeds the wall clock; start-up (imports, loading the model and data) is not counted."""
    spent = study.user_attrs.get(COMPUTE_ATTR, {})
    trials = {kind: [0, 0.0] for kind in TRIAL_KINDS}
    for trial in study.get_trials(deepcopy=False):
        record = TrialRecord.of(trial)
        if record.wall_s is None:
            continue
        kind = (
            "stopped"
            if record.stopped_at is not None
            else "failed"
            if trial.state == TrialState.FAIL
            else "trained"
        )
        trials[kind][0] += 1
        trials[kind][1] += record.wall_s

    def once(steps):
        return [{"step": s, "count": None, "seconds": spent.get(s, 0.0)} for s in steps]

    rows = once(STEPS_BEFORE_TRIALS)
    rows += [
        {"step": TRIAL_KINDS[kind], "count": count, "seconds": round(seconds, 3)}
        for kind, (count, seconds) in trials.items()
    ]
    rows += once(STEPS_AFTER_TRIALS)
    rows = [r for r in rows if r["seconds"] or r["count"]]
    return {"steps": rows, "total_s": round(sum(r["seconds"] for r in rows), 3)}


def search_seconds(study: optuna.Study) -> float:
    """The study's search compute so far, in all its runs: the steps before the trials and
    every trial (`compute_spent`'s rows before the final steps), what `--compute` limits."""
    rows = compute_spent(study)["steps"]
    return sum(r["seconds"] for r in rows if r["step"] not in STEPS_AFTER_TRIALS)


def list_studies() -> list[dict]:
    """Every study under the studies folder, with its model, dataset and progress: trials
    trained to the full budget, stopped at a rung and failed, the front's size and hypervolume
    (objectives over its re-aligned full model's) and the seconds of compute it has spent."""
    rows = []
    root = studies_root()
    for db in sorted(root.glob("*/study.db")) if root.is_dir() else []:
        name = db.parent.name
        try:
            storage = open_storage(f"sqlite:///{db}", create=False)
            study = optuna.load_study(study_name=name, storage=storage)
        except Exception:  # noqa: BLE001 - a foreign or broken file is listed, not fatal
            rows.append({"name": name, "model": "?", "dataset": "?", "trials": 0, "front": 0})
            continue
        settings = settings_of(study)
        trained, mask = front_of(study)
        objectives = settings.get("objectives")
        rows.append(
            {
                "name": name,
                "model": settings.get("model", "?"),
                "dataset": settings.get("dataset", "?"),
                "trials": len(trained),
                "stopped": len(stopped_trials(study)),
                "failed": len(failed_trials(study)),
                "front": int(mask.sum()),
                "hypervolume": round(current_hypervolume(study, objectives), 4)
                if objectives
                else None,
                "compute_s": round(compute_spent(study)["total_s"]),
            }
        )
    return rows
