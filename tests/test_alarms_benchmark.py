"""The user-facing alarm benchmark's scoring (benchmarks/alarms.py): which labels are falls, the tolerance, and
that every code measured is scored on the same series."""

from __future__ import annotations

from benchmarks import alarms


def _series(column: str, cps: list[tuple[int, str, str]], n: int = 100, healthy: bool = False) -> dict:
    return {
        "file": "f.csv",
        "column": column,
        "n_points": n,
        "healthy": healthy,
        "change_points": [{"index": i, "kind": k, "confidence": c} for i, k, c in cps],
    }


def _read(alarms_at: list[tuple[str, int]], columns: dict[str, int]) -> dict[str, dict]:
    steps = list(range(0, 1000, 10))  # row r is step 10 r
    rows = {c: list(range(n)) for c, n in columns.items()}
    return {str(alarms.DATA / "f.csv"): {"steps": steps, "rows": rows, "alarms": [[[m], s] for m, s in alarms_at]}}


def test_falls_are_collapses_and_level_shifts_the_bad_way_for_a_known_direction():
    assert alarms._fall("collapse", "anything")
    assert alarms._fall("level_shift_down", "val/recall") and not alarms._fall("level_shift_up", "val/recall")
    assert alarms._fall("level_shift_up", "train_loss") and not alarms._fall("level_shift_down", "train_loss")
    assert not alarms._fall("level_shift_down", "seed_0")  # the name says nothing: no fall is known


def test_an_alarm_counts_for_a_fall_within_the_tolerance_and_healthy_alarms_are_counted():
    recall = _series("val/recall", [(40, "level_shift_down", "high"), (70, "level_shift_down", "low")])
    quiet = _series("val/loss", [], healthy=True)
    read = _read([("val/recall", 440), ("val/loss", 200), ("val/loss", 300)], {"val/recall": 100, "val/loss": 100})
    c = alarms.score([recall, quiet], read)
    assert (c["falls"], c["falls alarmed"]) == (1, 1)  # step 440 is 4 rows after the label: within max(5, 2 %)
    assert (c["healthy"], c["healthy alarms"], c["healthy with alarm"]) == (1, 2, 1)
    far = _read([("val/recall", 470)], {"val/recall": 100, "val/loss": 100})
    assert alarms.score([recall], far)["falls alarmed"] == 0  # 7 rows away: outside the tolerance


def test_a_series_one_code_cannot_read_row_for_row_is_left_out_for_every_code():
    recall = _series("val/recall", [(40, "collapse", "high")])
    whole = _read([("val/recall", 400)], {"val/recall": 100})
    merged = _read([("val/recall", 400)], {"val/recall": 95})  # a reader that merged rows
    text = alarms.table({"test": [recall]}, {"new": whole, "old": merged})
    assert text.count("| 0 of 0 | 1 |") == 2  # both rows score nothing and leave the series out


def test_a_monitor_episode_counts_for_a_fall_it_overlaps_and_flagged_observations_are_summed():
    """`--monitor` alarms are episodes [metrics, first step, last step]: one that began before the fall's window and
    lasts into it alarms the fall; the healthy series' flagged observations are counted for the share column."""
    recall = _series("val/recall", [(40, "level_shift_down", "high")])
    quiet = _series("val/loss", [], healthy=True)
    read = _read([], {"val/recall": 100, "val/loss": 100})
    d = read[str(alarms.DATA / "f.csv")]
    d["alarms"] = [[["val/recall"], 300, 420], [["val/loss"], 100, 120]]
    d["flagged"] = {"val/loss": 3, "val/recall": 9}
    c = alarms.score([recall, quiet], read)
    assert (c["falls"], c["falls alarmed"]) == (1, 1)  # 300-420 reaches the window 350-450
    assert (c["healthy alarms"], c["healthy points"], c["healthy flagged"]) == (1, 100, 3)
    d["alarms"] = [[["val/recall"], 100, 340]]
    assert alarms.score([recall], read)["falls alarmed"] == 0  # ended before the window
    assert "healthy observations flagged" in alarms.table({"test": [recall, quiet]}, {"x": read}, monitor=True)
