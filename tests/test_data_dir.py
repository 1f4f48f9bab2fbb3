"""ui.data_dir: the data directory suggested for a run (pure logic, no Streamlit)."""

from __future__ import annotations

from pathlib import Path

from ui.data_dir import suggest_data_dir


def test_a_directory_named_in_the_run_config_wins(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "scans").mkdir()
    config = {"lr": 0.1, "training_config": {"dataset": {"data_root": "scans"}}}
    assert suggest_data_dir(tmp_path / "wandb", config) == str(tmp_path / "scans")


def test_an_absolute_named_directory_is_used_as_is_and_missing_ones_are_skipped(tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere"
    absolute.mkdir()
    config = {"data_dir": str(tmp_path / "gone"), "images_dir": str(absolute)}
    assert suggest_data_dir(tmp_path / "project" / "wandb", config) == str(absolute)
    assert suggest_data_dir(None, config) == str(absolute)  # a cloud run: only absolute paths count


def test_data_beside_the_wandb_folder_then_nothing(tmp_path: Path) -> None:
    assert suggest_data_dir(tmp_path / "wandb", {"data_dir": "not-there"}) == ""
    (tmp_path / "data").mkdir()
    assert suggest_data_dir(tmp_path / "wandb", {}) == str(tmp_path / "data")
    assert suggest_data_dir(None, {}) == ""
