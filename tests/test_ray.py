"""The Ray backend on a real Ray runtime: a local one started by the search, and a head plus a
worker node started with `ray start` on loopback. Tiny model and space, so each test takes well
under a minute; the parts that cost time are Ray's start-up and each worker's first import."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

import autoprune.search.run as run_module
from autoprune.objective import run_trial
from autoprune.report import collect, still_growing
from autoprune.search.cached import ensure_reference
from autoprune.search.options import prepare
from autoprune.search.run import search
from autoprune.study import (
    GRACE_S,
    hypervolume_curve_of,
    load_study,
    search_seconds,
    stored_study,
    trained_trials,
)
from tests.conftest import (
    TINY_SPACE,
    options,
    quiet,
    search_command,
    search_growing_at_fifth,
)

pytestmark = pytest.mark.ray

BIN = Path(sys.executable).parent
SLOW_SPACE = TINY_SPACE.replace("steps = 2", "steps = 40")


@pytest.fixture(autouse=True, scope="module")
def ray_scratch():
    """Ray's session folders (logs, sockets, spilled objects) in a short folder of this module's,
    removed after it: by default every runtime these tests start leaves one under /tmp/ray."""
    path = tempfile.mkdtemp(prefix="autoprune-test-ray-")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", path)  # read by the driver and by `ray start`
        yield path
    shutil.rmtree(path, ignore_errors=True)


def pareto_numbers(study: optuna.Study) -> set[int]:
    """The front as Optuna itself computes it, over the trained trials."""
    trained = {t.number for t in trained_trials(study)}
    return {t.number for t in study.best_trials if t.number in trained}


def keeps_are_unique(study: optuna.Study) -> bool:
    keeps = [tuple(t.user_attrs["keep"]) for t in trained_trials(study)]
    return len(keeps) == len(set(keeps))


def test_two_workers_continue_a_local_study_and_local_continues_it(
    tiny_model_dir, tiny_csv, tiny_space, studies, ray_scratch
):
    # trials long enough that the second worker has started before the first one has done them
    # all: with 2-step trials one worker often trained every keep set
    tiny_space.write_text(SLOW_SPACE)
    search(options(tiny_model_dir, tiny_csv, tiny_space, study="r", trials=2), log=quiet)
    before = {t.number: t.values for t in trained_trials(load_study("r"))}
    on_ctrl_c = signal.getsignal(signal.SIGINT)

    result = search(
        options(
            tiny_model_dir, tiny_csv, tiny_space, study="r", trials=6, backend="ray", workers=2
        ),
        log=quiet,
    )
    assert result["stopped"] == "reached"
    assert list(Path(ray_scratch).glob("ray/session_*"))  # where the fixture put Ray's folders
    # Tune gave Ctrl-C back: after its run, one stops the selection, the test split, the report
    assert signal.getsignal(signal.SIGINT) is on_ctrl_c
    study = load_study("r")
    trained = trained_trials(study)
    assert len(trained) == 6
    for number, values in before.items():
        assert study.trials[number].values == values
    assert keeps_are_unique(study)
    ray_workers = {t.user_attrs["worker"] for t in trained if t.number not in before}
    assert len(ray_workers) == 2  # two worker processes trained them
    assert all(w.rsplit(":", 1)[1] != str(os.getpid()) for w in ray_workers)
    # the same trial record, but for `counted`: only a process that checks the study's total
    # records it (Ray Tune counts the trials it starts itself)
    assert set(trained[-1].user_attrs) >= set(trained[0].user_attrs) - {"counted"}

    summary = collect(study)
    assert summary["trials"]["trained"] == 6
    assert {f["trial"] for f in summary["front"]} == pareto_numbers(study)
    assert study.user_attrs["selection"]["trial"] in pareto_numbers(study)

    # on Ray too, a compute budget the study has already spent starts no trial
    spent = options(
        tiny_model_dir, tiny_csv, tiny_space, study="r", trials=None, compute=search_seconds(study),
        backend="ray", workers=2,
    )  # fmt: skip
    assert search(spent, log=quiet)["stopped"] == "budget"
    assert len(trained_trials(load_study("r"))) == 6

    search(
        options(tiny_model_dir, tiny_csv, tiny_space, study="r", trials=7), log=quiet
    )  # back to local
    study = load_study("r")
    assert len(trained_trials(study)) == 7 and keeps_are_unique(study)


def test_a_multi_fidelity_study_continues_on_ray_with_the_same_records(
    tiny_model_dir, tiny_csv, tiny_space, studies
):
    """--fidelity multi on Ray workers: rungs are recorded there as locally, the workers read
    the calibration from the shared study, and a keep set stopped at a rung is stored PRUNED with
    what it measured and never reaches the front."""
    tiny_space.write_text(TINY_SPACE.replace("steps = 2", "steps = 10"))  # rungs after 1 and 3
    first = options(tiny_model_dir, tiny_csv, tiny_space, study="r", trials=5, fidelity="multi")
    search(first, log=quiet)
    result = search(
        options(
            tiny_model_dir, tiny_csv, tiny_space, study="r", trials=9, fidelity="multi",
            backend="ray", workers=2,
        ),
        log=quiet,
    )  # fmt: skip
    assert result["stopped"] == "reached"
    study = load_study("r")
    trained = trained_trials(study)
    assert len(trained) == 9 and keeps_are_unique(study)
    # the rung the stop rule reads, and no other (`TrialContext.rungs`)
    assert all(set(t.user_attrs["rungs"]) == {"3"} for t in trained)
    stopped = [t for t in study.trials if "stopped_at" in t.user_attrs]
    for t in stopped:
        assert t.state == TrialState.PRUNED and t.values is None
        assert t.user_attrs["stopped_at"] == 3 and set(t.user_attrs["rungs"]) == {"3"}
    assert not {t.number for t in stopped} & pareto_numbers(study)
    selected = study.user_attrs["selection"]["trial"]
    assert study.trials[selected].state == TrialState.COMPLETE


def test_a_multi_dataset_study_continues_on_ray_with_per_dataset_records(
    tiny_model_dir, tiny_csv, other_csv, tiny_space, studies
):
    """Workers re-align on the same mixture and aggregate against the same full model as the
    driver: a keep set's records are those a local trial of it would store."""
    both = f"{tiny_csv},{other_csv}"
    search(options(tiny_model_dir, both, tiny_space, study="r", trials=3), log=quiet)
    search(
        options(tiny_model_dir, both, tiny_space, study="r", trials=6, backend="ray", workers=2),
        log=quiet,
    )
    study = load_study("r")
    trained = trained_trials(study)
    assert len(trained) == 6 and keeps_are_unique(study)
    full = study.user_attrs["reference"]["realigned"]["datasets"]
    for trial in trained:
        per = trial.user_attrs["datasets"]
        assert set(per) == {"toy", "other"}
        ratios = [per[n]["mase"] / full[n]["mase"] for n in per]
        assert trial.values[0] == pytest.approx(float(np.exp(np.mean(np.log(ratios)))))
    # a Ray trial's keep set trained again locally gives the same record
    on_ray = next(t for t in trained if t.number >= 3)
    prep = prepare(options(tiny_model_dir, both, tiny_space, study="r", trials=6))
    ensure_reference(prep, quiet)
    _, record = run_trial(prep.ctx, tuple(on_ray.user_attrs["keep"]))
    # (equal up to float summation order: workers train on 1 thread)
    assert record["mase"] == pytest.approx(on_ray.values[0], rel=1e-4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_head(ray: str, env: dict) -> str:
    """`ray start --head` on a free loopback port; its address. `free_port` lets the port go
    before Ray binds it, and Ray's own processes from the tests before may take it first (CI once
    saw the head exit 1 here): one more try on another port, and a second failure shows Ray's
    own words."""
    for attempt in (1, 2):
        port = free_port()
        head = subprocess.run(
            [ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
             "--num-cpus", "1", "--include-dashboard", "false", "--disable-usage-stats"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if head.returncode == 0:
            return f"127.0.0.1:{port}"
        if attempt == 1:
            subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
    raise AssertionError(f"`ray start --head` failed twice: {head.stderr[-3000:]}")


def cli(tiny_model_dir, tiny_csv, space: Path, trials: int, *extra: str) -> list[str]:
    return search_command("r", tiny_model_dir, tiny_csv, space, trials, "--backend", "ray", *extra)


def test_a_study_runs_on_a_head_and_a_worker_node_on_loopback(
    tiny_model_dir, tiny_csv, tiny_space, studies
):
    ray = str(BIN / "ray")
    # `ray start --head` turns on token authentication; the other node and the driver need it on
    env = {**os.environ, "AUTOPRUNE_STUDIES_DIR": str(studies), "RAY_AUTH_MODE": "token"}
    try:
        address = start_head(ray, env)
        node = subprocess.run(
            [ray, "start", "--address", address, "--node-ip-address", "127.0.0.1",
             "--num-cpus", "1", "--disable-usage-stats"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert node.returncode == 0, node.stderr[-3000:]
        run = subprocess.run(
            cli(tiny_model_dir, tiny_csv, tiny_space, 4, "--workers", "2", "--address", address),
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        status = subprocess.run([ray, "status", "--address", address], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert status.stdout.count("node_") >= 2, status.stdout  # both nodes still in the cluster
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
    study = load_study("r")
    trained = trained_trials(study)
    assert len(trained) == 4 and keeps_are_unique(study)
    # one CPU per node and one per trial: the two workers ran on the two nodes
    assert len({t.user_attrs["worker"] for t in trained}) == 2


def ray_trial_processes() -> list[int]:
    """Pids of Ray actor processes running a Tune trial of ours."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::ImplicitFunc"):
            pids.append(int(proc.name))
    return pids


def wait_for(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def trials_in(db: Path, *states: TrialState) -> list[optuna.trial.FrozenTrial]:
    """The study's trials as they stand, read without creating anything: `optuna.load_study`
    creates Optuna's tables in a database the run has just made, and the run creating them too
    failed with 'table trial_values already exists' (CI, 2026-12-06)."""
    try:
        study = stored_study("r", f"sqlite:///{db}")
    except Exception:  # noqa: BLE001 - not created yet
        return []
    return [] if study is None else study.get_trials(deepcopy=False, states=states or None)


def test_a_trial_whose_worker_dies_is_failed_and_requeued_once(
    tiny_model_dir, tiny_csv, tmp_path, studies
):
    space = tmp_path / "slow.toml"
    space.write_text(SLOW_SPACE)
    env = {**os.environ, "AUTOPRUNE_STUDIES_DIR": str(studies)}
    db = studies / "r" / "study.db"
    said = tmp_path / "stderr.txt"
    with said.open("w") as stderr:
        process = subprocess.Popen(
            cli(tiny_model_dir, tiny_csv, space, 3, "--workers", "1", "--cpus-per-trial", "1"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,  # a file, not a pipe nobody reads until the end, which can fill
        )
    try:
        wait_for(lambda: trials_in(db, TrialState.RUNNING), 180, "a running trial")
        victim = wait_for(ray_trial_processes, 60, "the Ray worker process")[0]
        os.kill(victim, signal.SIGKILL)
        process.wait(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 0, said.read_text()[-3000:]
    failed = trials_in(db, TrialState.FAIL)
    assert len(failed) == 1
    assert failed[0].user_attrs["fail_reason"] == "the Ray worker running this trial died"
    retries = [t for t in trials_in(db) if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retries) == 1  # re-queued once, with the same keep set, and trained
    assert retries[0].state == TrialState.COMPLETE
    assert retries[0].params == failed[0].params
    study = load_study("r")
    assert len(trained_trials(study)) == 3 and keeps_are_unique(study)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_ray_run_resumes_with_nothing_lost(
    tiny_model_dir, tiny_csv, tmp_path, studies, stop
):
    space = tmp_path / "slow.toml"
    space.write_text(SLOW_SPACE)
    env = {**os.environ, "AUTOPRUNE_STUDIES_DIR": str(studies)}
    db = studies / "r" / "study.db"
    command = cli(tiny_model_dir, tiny_csv, space, 5, "--workers", "2")
    said = tmp_path / "stderr.txt"
    with said.open("w") as stderr:  # a file, not a pipe nobody reads until the end, which can fill
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        try:
            wait_for(lambda: trials_in(db, TrialState.COMPLETE), 240, "a finished trial")
        except AssertionError as waited:  # say where the run was (seen once in CI, 2026-12-06)
            raise AssertionError(f"{waited}; the run said:\n{said.read_text()[-3000:]}") from None
        wait_for(lambda: trials_in(db, TrialState.RUNNING), 60, "a running trial")
        process.send_signal(stop)
        process.wait(timeout=120)
    finally:
        process.kill()
    scratch = list(Path(tempfile.gettempdir()).glob(f"autoprune-ray-{process.pid}-*"))
    if stop == signal.SIGINT:
        assert not scratch  # removed on the way out
        assert process.returncode == 130
        printed = said.read_text()
        assert "run the same command to resume" in printed
        assert "Tuner.restore" not in printed  # Tune's own resume hint names a removed folder
        assert "Token authentication" not in printed  # on, as Ray's default, without its warning
        assert not trials_in(db, TrialState.RUNNING)  # failed and re-queued at once
    else:
        assert len(scratch) == 1  # a killed run cannot clean up after itself ...
        time.sleep(GRACE_S)  # its trials' heartbeats go stale: the next run re-queues them
    done = {t.number: t.values for t in trials_in(db, TrialState.COMPLETE)}
    assert done

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not any(path.exists() for path in scratch)  # ... the next run on this machine does
    study = load_study("r")
    for number, values in done.items():
        assert study.trials[number].values == values
    assert len(trained_trials(study)) == 5 and keeps_are_unique(study)
    assert not study.get_trials(states=(TrialState.WAITING,))  # every re-queued one was run
    for failed in study.get_trials(states=(TrialState.FAIL,)):  # left running by the stop
        retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == failed.number]
        assert len(retry) == 1
        # the same keep set again; a trial killed after `ask` made it RUNNING (and beat) but
        # before it chose its whole keep set has none to repeat, and its retry chooses one of
        # its own (`tests/test_study.py`: none of the layers it had chosen carries over)
        assert retry[0].params == failed.params or (
            "keep" not in failed.user_attrs and retry[0].params
        )
    # a trial the killed driver had created but not given a keep set, whose heartbeat had not
    # gone stale when the resumed run last looked, may still read RUNNING; nothing trained in it
    assert all(not t.params for t in study.get_trials(states=(TrialState.RUNNING,)))


def test_without_trials_ray_goes_on_while_the_front_is_still_growing(
    tiny_model_dir, tiny_csv, tiny_space, studies, ray_scratch, monkeypatch, steady_latency
):
    """As `test_search`'s local test: 5 trained keep sets leave the front still growing, and a
    Ray search without --trials trains on until it is not (the default's 30 and 45 as 5 and 8),
    on one Ray runtime: it is not started again for the extension."""
    import ray

    from autoprune.backends import ray as ray_backend

    starts = []

    def connect(address=None):
        starts.append(real_connect(address))
        return starts[-1]

    real_connect = ray_backend.connect
    monkeypatch.setattr(ray_backend, "connect", connect)
    monkeypatch.setattr(run_module, "DEFAULT_TRIALS", 5)
    monkeypatch.setattr(run_module, "DEFAULT_TRIALS_MAX", 8)
    objectives = ["mase", "params", "latency_ms"]
    search_growing_at_fifth(options(tiny_model_dir, tiny_csv, tiny_space, study="g"), log=quiet)
    assert still_growing(hypervolume_curve_of(load_study("g"), objectives))
    ray_run = options(
        tiny_model_dir, tiny_csv, tiny_space, study="g", trials=None, backend="ray", workers=1
    )
    assert search(ray_run, log=quiet)["stopped"] == "reached"
    study = load_study("g")
    curve = hypervolume_curve_of(study, objectives)
    assert 5 < len(curve) <= 8 and (len(curve) == 8 or not still_growing(curve))
    assert keeps_are_unique(study)
    # Tune ran at least twice (to 5, then on): Ray was started once, joined by every run, and
    # shut down after the last
    assert starts[0] and not any(starts[1:]) and len(starts) >= 3 and not ray.is_initialized()
