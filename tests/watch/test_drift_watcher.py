"""The watcher's logic in process: CloudEvents parsed, windows judged by alibi-detect against the reference
sample, k-of-n confirmation, live accuracy and agreement per predictor, and a state that survives a restart."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from prometheus_client import CollectorRegistry

from ctloop import config, metric_names
from ctloop.contracts import cloudevents
from ctloop.errors import BadInputError
from ctloop.local import demo_data
from ctloop.services.drift_watcher.reference import ReferenceStore
from ctloop.services.drift_watcher.watcher import Watcher

from . import traffic


def settings_for(tmp_path, webhook_url: str = "http://127.0.0.1:9", **drift) -> config.Settings:
    raw = yaml.safe_load((traffic.ROOT / "ctloop.yaml").read_text())
    raw["drift"].update({"window_size": 300, "min_window_size": 150, "cooldown_s": 3600, **drift})
    raw["endpoints"]["artifact_store"]["root"] = str(tmp_path / "store")
    raw["endpoints"]["webhook"] = {"url": webhook_url}
    return config.parse(raw, base=traffic.ROOT, environ={})


def make_watcher(tmp_path, settings, version: str = "1") -> Watcher:
    references = ReferenceStore(tmp_path / "reference", settings)
    traffic.reference(4000, seed=1).to_parquet(references.path(version))
    watcher = Watcher(settings, references, CollectorRegistry())
    watcher.apply({"kind": "reference", "version": version, "time": 0.0})
    return watcher


def feed(watcher: Watcher, rows: list[dict], prefix: str, version: str = "1") -> None:
    for i, row in enumerate(rows):
        for headers, body in traffic.events_for(row, f"{prefix}-{i}", version):
            record = cloudevents.parse(headers, body)
            if not watcher.duplicate(record):
                watcher.apply(record)


def sample(watcher: Watcher, name: str, **labels) -> float:
    """A value as Prometheus would scrape it."""
    total = 0.0
    for metric in watcher.registry.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_sequential_detector_triggers_on_covariate_drift_within_one_window(tmp_path):
    """The default detector tests the last 300 events every 100; its level per test comes from the expected run
    time: 100 / 20,000 shared by Bonferroni among the 14 features and the score (computed here, not read back)."""
    from scipy.stats import ks_2samp

    settings = settings_for(tmp_path)
    assert settings.drift.detector == "sequential" and settings.drift.expected_run_time == 20_000
    watcher = make_watcher(tmp_path, settings)
    feed(watcher, traffic.rows(900, seed=2), "stable")
    assert not watcher.pending_triggers and watcher.evaluations == (900 - 150) // 100 + 1
    drifted = traffic.rows(1500, seed=3, drift="covariate")
    for i in range(0, len(drifted), 50):
        recent = list(watcher.recent_rows)
        feed(watcher, drifted[i : i + 50], f"drift{i}")
        if watcher.pending_triggers:
            break
    assert watcher.pending_triggers, "covariate drift was never detected"
    assert i + 50 <= 300  # before the last 300 events are all drifted ones
    (trigger,) = watcher.pending_triggers.values()
    level = 100 / 20_000 / (len(traffic.FEATURES) + 1)
    assert f"p < {level:.2g}" in trigger["reason"]
    injected = demo_data.generate(1000, 3, drift="covariate")[1]["drift"]["features"]
    named = [name for name in injected if f"{name} (ks" in trigger["reason"]]
    assert named, trigger["reason"]
    # The p-value the trigger names is scipy's two-sample KS of the tested window against the reference.
    tested = (recent + [{"features": r["features"]} for r in drifted[i : i + 50]])[-300:]
    window = [r.get("features", r) for r in tested]
    reference = traffic.reference(4000, seed=1)
    expected = ks_2samp([r[named[0]] for r in window], reference[named[0]].to_numpy()).pvalue
    assert f"{named[0]} (ks p={expected:.2g}" in trigger["reason"] and expected < level
    # The retrain data: the labelled rows of the windows written (a window's last row is labelled after it is
    # written); fresh evidence for the next alarm.
    assert watcher.unfrozen == {trigger["idempotency_key"]: watcher.window_index - 1} and watcher.recent_rows == []
    assert watcher.sink().freeze_labelled(trigger["idempotency_key"], watcher.window_index - 1) == watcher.window_index
    frozen = trigger["data_uri"]
    assert len(pd.concat(pd.read_parquet(p) for p in Path(frozen).glob("*.parquet"))) == (900 + i + 50) // 300 * 300 - 1
    assert sample(watcher, "ctloop_watcher_windows_evaluated_total", detector="sequential", drift="true") == 1
    assert metric_names.undeclared(watcher.registry) == []


def test_windows_detector_confirms_covariate_drift_within_three_windows(tmp_path):
    settings = settings_for(tmp_path, detector="windows")
    watcher = make_watcher(tmp_path, settings)
    feed(watcher, traffic.rows(900, seed=2), "stable")
    assert watcher.window_index == 3 and not watcher.pending_triggers
    drifted = traffic.rows(1500, seed=3, drift="covariate")
    for i in range(0, len(drifted), 100):
        feed(watcher, drifted[i : i + 100], f"drift{i}")
        if watcher.pending_triggers:
            break
    assert watcher.pending_triggers, "covariate drift was never confirmed"
    events_after_onset = i + 100
    assert events_after_onset <= 3 * 300  # k=2 of n=3 windows of 300: confirmed by the second drifted window
    (trigger,) = watcher.pending_triggers.values()
    injected = demo_data.generate(1000, 3, drift="covariate")[1]["drift"]["features"]
    assert any(name in trigger["reason"] for name in injected)
    frozen = trigger["data_uri"]
    assert frozen.endswith(f"serving/ctloop/credit-risk/spans/{trigger['idempotency_key']}")
    # Frozen by the sender before it sends (off the event loop, retried): up to the window that confirmed it.
    key = trigger["idempotency_key"]
    assert watcher.unfrozen == {key: watcher.window_index - 1}
    # Every window closed so far held feedback: one labelled part each.
    assert watcher.sink().freeze_labelled(key, watcher.window_index - 1) == watcher.window_index
    assert len(pd.concat(pd.read_parquet(p) for p in Path(frozen).glob("*.parquet"))) > 900
    # Where none up to it was labelled, the sender moves the trigger's data to the windows written since, journaled.
    watcher.apply({"kind": "awaiting_labels", "key": key, "window": watcher.window_index + 2, "time": 0.0})
    assert watcher.unfrozen == {key: watcher.window_index + 2} == watcher.state()["unfrozen"]
    # The sender journals that it froze them: the trigger stays pending, with nothing left to copy.
    watcher.apply({"kind": "frozen", "key": key, "time": 0.0})
    assert watcher.unfrozen == {} and watcher.state()["unfrozen"] == {}
    watcher.apply({"kind": "awaiting_labels", "key": key, "window": watcher.window_index + 3, "time": 0.0})
    assert watcher.unfrozen == {}  # a late record for a frozen trigger changes nothing
    assert list(watcher.pending_triggers.values()) == [trigger]
    assert sample(watcher, "ctloop_watcher_drift_confirmed") == 0  # counted afresh after the trigger
    assert sample(watcher, "ctloop_watcher_windows_evaluated_total", drift="true") >= 2
    assert metric_names.undeclared(watcher.registry) == []


def test_a_long_stable_stream_triggers_nothing_with_the_sequential_detector(tmp_path):
    watcher = make_watcher(tmp_path, settings_for(tmp_path))
    feed(watcher, traffic.rows(6000, seed=4), "stable")
    # Tested from the 150th event on (min_window_size), then every 100.
    assert sample(watcher, "ctloop_watcher_windows_evaluated_total", detector="sequential") == (6000 - 150) // 100 + 1
    assert sample(watcher, "ctloop_watcher_windows_evaluated_total", drift="true") == 0
    assert not watcher.pending_triggers and watcher.window_index == 20


def test_a_long_stable_stream_triggers_nothing_with_the_windows_detector(tmp_path):
    settings = settings_for(tmp_path, detector="windows")
    watcher = make_watcher(tmp_path, settings)
    feed(watcher, traffic.rows(6000, seed=4), "stable")
    windows = sample(watcher, "ctloop_watcher_windows_evaluated_total")
    false_alarms = sample(watcher, "ctloop_watcher_windows_evaluated_total", drift="true")
    assert windows == 20
    assert false_alarms <= 3  # a family-wise 5% per window: about 1 expected in 20
    assert not watcher.pending_triggers


def test_serving_data_is_kept_as_parquet_with_the_training_columns(tmp_path):
    settings = settings_for(tmp_path)
    watcher = make_watcher(tmp_path, settings)
    feed(watcher, traffic.rows(650, seed=5), "p")
    base = tmp_path / "store" / "serving" / "ctloop" / "credit-risk"
    requests = pd.concat(pd.read_parquet(p) for p in sorted((base / "requests").rglob("*.parquet")))
    labelled = pd.concat(pd.read_parquet(p) for p in sorted((base / "labelled").glob("*.parquet")))
    assert len(requests) == 600 and len(watcher.window_rows) == 50  # two windows written, one filling
    data = settings.data
    assert {*traffic.FEATURES, data.label, data.timestamp, data.id_column} <= set(labelled.columns)
    # A window is written when its last request arrives, before that request's feedback: 299 + 300 rows.
    assert len(labelled) == 599 and labelled[data.label].isin([0, 1]).all()
    assert str(labelled[data.label].dtype).startswith("int")


def test_live_accuracy_and_shadow_agreement_per_predictor(tmp_path):
    watcher = make_watcher(tmp_path, settings_for(tmp_path))
    for i, row in enumerate(traffic.rows(200, seed=6)):
        puid, f = f"p{i}", row["features"]
        for headers, body in (
            traffic.request_event(puid, f),
            traffic.request_event(puid, f, predictor="shadow"),  # the mirrored copy: same puid
            traffic.response_event(puid, f, "1"),
            traffic.response_event(puid, f, "2", predictor="shadow", shift=0.5),
            traffic.feedback_event(puid, row["label"]),
        ):
            watcher.apply(cloudevents.parse(headers, body))
    assert sum(len(r) for r in [watcher.window_rows]) == 200  # mirrored requests are not counted twice
    main = {"predictor": "main", "model_version": "1"}
    shadow = {"predictor": "shadow", "model_version": "2"}
    assert sample(watcher, "ctloop_watcher_feedback_total", **main) == 200
    assert sample(watcher, "ctloop_watcher_feedback_total", **shadow) == 200
    main_right = sample(watcher, "ctloop_watcher_feedback_total", **main, outcome="correct")
    shadow_right = sample(watcher, "ctloop_watcher_feedback_total", **shadow, outcome="correct")
    assert main_right > shadow_right  # a score shifted by 0.5 declines nearly everyone
    agree = sample(watcher, "ctloop_watcher_agreement_total", **shadow, agree="true")
    disagree = sample(watcher, "ctloop_watcher_agreement_total", **shadow, agree="false")
    assert agree + disagree == 200 and disagree > 0
    # The pairs: where two binary decisions differ exactly one is right, so unequal pairs are the disagreements,
    # and better less worse is the difference of the two predictors' correct answers.
    better = sample(watcher, "ctloop_watcher_paired_feedback_total", **shadow, vs_main="better")
    worse = sample(watcher, "ctloop_watcher_paired_feedback_total", **shadow, vs_main="worse")
    assert sample(watcher, "ctloop_watcher_paired_feedback_total", **shadow) == 200
    assert better + worse == disagree and better - worse == shadow_right - main_right
    assert sample(watcher, "ctloop_watcher_paired_feedback_total", **main) == 0  # main is not paired with itself
    assert sample(watcher, "ctloop_watcher_segment_feedback_total", segment="region", **main) == 200
    assert sample(watcher, "ctloop_watcher_scores_count", **main) == 200
    assert metric_names.undeclared(watcher.registry) == []


def test_feedback_for_an_unknown_request_is_counted_not_fatal(tmp_path):
    watcher = make_watcher(tmp_path, settings_for(tmp_path))
    watcher.apply(cloudevents.parse(*traffic.feedback_event("never-seen", 1)))
    assert sample(watcher, "ctloop_watcher_rejected_events_total", reason="feedback_unmatched") == 1


def test_feedback_counts_once_per_request_however_often_it_is_sent(tmp_path):
    watcher = make_watcher(tmp_path, settings_for(tmp_path))
    row = traffic.rows(1, seed=6)[0]
    f = row["features"]
    for headers, body in (traffic.request_event("p", f), traffic.response_event("p", f, "1")):
        watcher.apply(cloudevents.parse(headers, body))
    for truth in (row["label"], row["label"], 1 - row["label"]):  # resent, then forged: each a new event id
        watcher.apply(cloudevents.parse(*traffic.feedback_event("p", truth)))
    main = {"predictor": "main", "model_version": "1"}
    assert sample(watcher, "ctloop_watcher_feedback_total", **main) == 1
    assert sample(watcher, "ctloop_watcher_rejected_events_total", reason="feedback_repeated") == 2
    assert [r[settings_for(tmp_path).data.label] for r in watcher.labelled] == [row["label"]]


@pytest.mark.parametrize("detector", ["sequential", "windows"])
def test_state_round_trips_through_json(tmp_path, detector):
    settings = settings_for(tmp_path, detector=detector)
    first = make_watcher(tmp_path, settings)
    rows = traffic.rows(1000, seed=7, drift="covariate")
    feed(first, rows[:450], "a")
    second = make_watcher(tmp_path, settings)
    second.restore(json.loads(json.dumps(first.state())))
    records = []
    for i, row in enumerate(rows[450:]):
        records += [cloudevents.parse(h, b) for h, b in traffic.events_for(row, f"b-{i}", "1")]
    for watcher in (first, second):
        for record in records:
            watcher.apply(record)
    assert first.state() == second.state()
    assert first.window_index == 3 and first.evaluations == second.evaluations >= 3


def test_the_requests_and_answers_kept_leave_the_collector_little_to_walk(tmp_path):
    """Every full collection walks what the collector tracks, holding up the event loop meanwhile. The requests and
    answers the watcher keeps for feedback (up to drift.max_tracked_requests) were six tracked objects each; now about
    one (the dict of a request's answers), and a request restored from a snapshot, as pairs or as the dicts of
    earlier versions, is the same."""
    settings = settings_for(tmp_path)
    watcher = make_watcher(tmp_path, settings)
    rows = traffic.rows(3000, seed=8)

    def unlabelled(rows, prefix):
        for i, row in enumerate(rows):
            for headers, body in traffic.events_for(row, f"{prefix}-{i}", "1", feedback=False):
                watcher.apply(cloudevents.parse(headers, body))

    unlabelled(rows[:1000], "warm")  # the windows, the detectors and the metrics' children, made once
    gc.collect()
    before = len(gc.get_objects())
    unlabelled(rows[1000:], "kept")
    gc.collect()
    assert len(watcher.requests) == len(watcher.answers) == 3000
    added = len(gc.get_objects()) - before
    assert added < 2000 * 1.5, added  # six per request before: 12,000
    state = json.loads(json.dumps(watcher.state()))
    as_dicts = [[puid, {**r, "rows": [dict(pairs) for pairs in r["rows"]]}] for puid, r in state["requests"]]
    for requests in (state["requests"], as_dicts):
        restored = make_watcher(tmp_path, settings)
        restored.restore({**state, "requests": requests})
        assert restored.requests == watcher.requests and restored.answers == watcher.answers
        restored.apply(cloudevents.parse(*traffic.feedback_event("kept-0", rows[1000]["label"])))
        labelled = restored.labelled[-1]
        assert {k: labelled[k] for k in rows[1000]["features"]} == rows[1000]["features"]
        assert labelled[settings.data.label] == rows[1000]["label"]


@pytest.mark.parametrize(
    "headers, body, named",
    [
        ({"Ce-Type": cloudevents.REQUEST, "Ce-Requestid": "x"}, b"{}", "Ce-Id"),
        ({"Ce-Id": "1", "Ce-Type": "io.example.other", "Ce-Requestid": "x"}, b"{}", "Ce-Type"),
        ({"Ce-Id": "1", "Ce-Type": cloudevents.REQUEST, "Ce-Requestid": "x"}, b"{not json", "body"),
        ({"Ce-Id": "1", "Ce-Type": cloudevents.REQUEST, "Ce-Requestid": "x"}, b"{}", "data.ndarray"),
        (
            {"Ce-Id": "1", "Ce-Type": cloudevents.REQUEST, "Ce-Requestid": "x"},
            b'{"data": {"ndarray": [[1]]}}',
            "data.names",
        ),
        ({"Ce-Id": "1", "Ce-Type": cloudevents.FEEDBACK, "Ce-Requestid": "x"}, b'{"reward": 1}', "truth"),
        (
            {"Ce-Id": "1", "Ce-Type": cloudevents.REQUEST, "Ce-Requestid": "x"},
            b"[" * 100_000 + b"]" * 100_000,
            "nested too deeply",
        ),
        (
            {"Ce-Id": "1", "Ce-Type": cloudevents.REQUEST, "Ce-Requestid": "x"},
            b'{"data": {"names": [["age"]], "ndarray": [[1]]}}',
            "data.names",
        ),
        (
            {"Ce-Id": "1", "Ce-Type": cloudevents.RESPONSE, "Ce-Requestid": "x"},
            b'{"data": {"names": ["score"], "ndarray": [[0.5]]}, "meta": "x"}',
            "meta",
        ),
        (
            {"Ce-Id": "1", "Ce-Type": cloudevents.RESPONSE, "Ce-Requestid": "x"},
            b'{"data": {"names": ["score"], "ndarray": [[0.5]]}, "meta": {"tags": [1]}}',
            "meta.tags",
        ),
        ({"Ce-Id": "1", "Ce-Type": cloudevents.REQUEST, "Ce-Requestid": "x", "Ce-Time": "yesterday"}, b"{}", "Ce-Time"),
        (
            {"Ce-Id": "1", "Ce-Type": cloudevents.RESPONSE, "Ce-Requestid": "x"},
            b'{"data": {"names": ["score"], "ndarray": [[1' + b"0" * 400 + b"]]}}",
            "data.ndarray",
        ),
        (
            {"Ce-Id": "1", "Ce-Type": cloudevents.RESPONSE, "Ce-Requestid": "x"},
            b'{"data": {"names": ["score"], "ndarray": [[NaN]]}}',
            "NaN",
        ),
    ],
)
def test_bad_events_are_refused_naming_what_is_wrong(headers, body, named):
    with pytest.raises(BadInputError, match=named):
        cloudevents.parse(headers, body)


def test_overlapping_windows_encode_each_row_once_and_as_the_encoder_alone_would(tmp_path, monkeypatch):
    """The sequential detector's windows overlap, so its detector keeps the last window's rows encoded: a row is
    encoded once while it stays in the windows. Every window's matrix must equal the encoder's own encoding of its
    rows, also for copies of rows already seen (kept by identity, not content) and for a window of new rows only."""
    detector = make_watcher(tmp_path, settings_for(tmp_path)).detectors["1"]
    encode, encoded = detector.encoder.encode, []
    monkeypatch.setattr(detector.encoder, "encode", lambda rows: encoded.append(len(rows)) or encode(rows))
    rows = [{"puid": f"p{i}", "time": float(i), **r["features"]} for i, r in enumerate(traffic.rows(500, seed=3))]
    windows = [rows[0:300], rows[100:400], rows[200:500], [dict(r) for r in rows[200:500]]]
    windows.append([{"puid": "n", "time": 0.0, **r["features"]} for r in traffic.rows(300, seed=4)])
    for window in windows:
        assert (detector.encode(window) == encode(window)).all()
    assert encoded == [300, 100, 100, 300, 300]


def test_features_a_float_cannot_hold_are_kept_as_missing():
    headers = traffic.request_event("p", {"age": 30})[0]
    values = [1, 2.5, "north", True, None, float("nan"), float("inf"), 10**400, [1], {"a": 1}]
    names = [f"f{i}" for i in range(len(values))]
    body = json.dumps({"data": {"names": names, "ndarray": [values]}}).encode()
    (row,) = cloudevents.parse(headers, body)["rows"]
    assert list(row.values()) == [1, 2.5, "north", True, None, None, None, None, None, None]


def test_json_data_requests_are_read_too():
    headers = traffic.request_event("p", {"age": 30})[0]
    record = cloudevents.parse(headers, json.dumps({"jsonData": [{"age": 30, "region": "north"}]}).encode())
    assert record["rows"] == [{"age": 30, "region": "north"}]


def test_online_detectors_fire_on_drift_and_resume_after_a_restart(tmp_path):
    settings = settings_for(tmp_path, detector="windows", online=True, online_expected_run_time=1500,
                            online_bootstraps=3000)  # fmt: skip
    watcher = make_watcher(tmp_path, settings)
    feed(watcher, traffic.rows(600, seed=2), "stable")
    assert not watcher.pending_triggers and not watcher.window_online
    copy = make_watcher(tmp_path, settings)  # the configured detectors come from the cache: no new simulation
    copy.restore(json.loads(json.dumps(watcher.state())))
    records = []
    for i, row in enumerate(traffic.rows(600, seed=3, drift="covariate")):
        records += [cloudevents.parse(h, b) for h, b in traffic.events_for(row, f"drift-{i}", "1")]
    fired = []
    for w in (watcher, copy):
        for record in records:
            w.apply(record)
            if w is watcher and w.window_online and not fired:
                fired.append(len([r for r in records[: records.index(record) + 1] if r["kind"] == "request"]))
    assert fired and fired[0] <= 300, "the online detector did not fire within one window of the onset"
    assert json.loads(json.dumps(copy.state())) == json.loads(json.dumps(watcher.state()))
    assert list((tmp_path / "reference").glob("1.online-*.pickle"))


def verdicts(watcher: Watcher) -> None:
    """What the service's judge loop does, in line: each due window tested and its verdict applied, in order."""
    while watcher.due:
        window = watcher.due[0]
        watcher.apply({"kind": "verdict", "index": window["index"], "result": watcher.judge(window), "time": 0.0})


@pytest.mark.parametrize("detector", ["sequential", "windows"])
def test_windows_tested_later_reach_the_state_of_windows_tested_at_once(tmp_path, detector):
    """The service tests due windows off the event loop and journals each verdict; applied in order, the verdicts
    make the same state, the same trigger and the same reason as testing each window at once."""
    settings = settings_for(tmp_path, detector=detector)
    records = []
    rows = traffic.rows(600, seed=2) + traffic.rows(900, seed=3, drift="covariate")
    for i, row in enumerate(rows):
        records += [cloudevents.parse(h, b) for h, b in traffic.events_for(row, f"e-{i}", "1")]
    at_once = make_watcher(tmp_path / "a", settings)
    later = Watcher(settings, at_once.references, CollectorRegistry(), defer=True)
    later.apply({"kind": "reference", "version": "1", "time": 0.0})
    waited = 0
    for record in records:
        at_once.apply(record)
        later.apply(record)
        waited = max(waited, len(later.due))
        verdicts(later)
    assert waited == 1 and at_once.pending_triggers
    assert json.loads(json.dumps(later.state())) == json.loads(json.dumps(at_once.state()))


def test_a_verdict_for_a_window_a_trigger_dropped_is_ignored(tmp_path):
    settings = settings_for(tmp_path)
    reference = make_watcher(tmp_path, settings).references
    watcher = Watcher(settings, reference, CollectorRegistry(), defer=True)
    watcher.apply({"kind": "reference", "version": "1", "time": 0.0})
    feed(watcher, traffic.rows(600, seed=3, drift="covariate"), "drift")
    assert not watcher.pending_triggers and len(watcher.due) > 2  # nothing tested yet: every window waits
    first, second = watcher.due[0], watcher.due[-1]
    results = {w["index"]: watcher.judge(w) for w in (first, second)}
    for window in (second, first):  # the later window's verdict first: it triggers and drops the rest
        watcher.apply({"kind": "verdict", "index": window["index"], "result": results[window["index"]], "time": 0})
    assert len(watcher.pending_triggers) == 1 and watcher.due == [] and watcher.evaluations == 1
    # A window that could not be tested is recorded as such and leaves the queue without a decision.
    feed(watcher, traffic.rows(200, seed=4), "more")
    (window,) = watcher.due
    watcher.apply({"kind": "verdict", "index": window["index"], "result": None, "time": 0.0})
    assert watcher.due == [] and watcher.evaluations == 1
