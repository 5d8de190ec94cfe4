"""What a trial stores: every attr a search writes is a TrialRecord field, read back losslessly."""

import optuna
import pytest

from autoprune.metrics import METRICS
from autoprune.record import FIELDS, TrialRecord, mark
from autoprune.search.run import search
from autoprune.study import load_study
from tests.conftest import options, quiet


def test_a_search_stores_only_record_fields_and_reads_them_back(
    tiny_model_dir, tiny_csv, tiny_space, studies
):
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=3, threads=1), log=quiet)
    trials = load_study("s1", None).get_trials()
    assert trials
    for trial in trials:
        assert set(trial.user_attrs) <= set(FIELDS), set(trial.user_attrs) - set(FIELDS)
        record = TrialRecord.of(trial)
        assert record.attrs() == trial.user_attrs
        assert record.keep_set == tuple(trial.user_attrs["keep"])
    trained = [TrialRecord.of(t) for t in trials if t.state.name == "COMPLETE"]
    assert all(r.metric("mase") > 0 and r.params > 0 and r.wall_s > 0 for r in trained)


def test_false_is_stored_none_is_not_and_unknown_fields_are_refused():
    trial = optuna.create_study().ask()
    mark(trial, latency_off_profile=False, baseline=None)
    assert trial.user_attrs == {"latency_off_profile": False}
    with pytest.raises(TypeError, match="kep"):
        mark(trial, kep=[0, 1])
    assert set(METRICS) <= set(FIELDS)  # run_trial's metrics each have their field
