"""The YAML config: validation with key + line, defaults in one place, the example file, secrets from the env."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from analysis.core.config import AnalyzerConfig, dump_config, load_config, parse_config_text
from analysis.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.yaml"
HANDBOOK = """\
experiment_monitoring:
  enable_real_time_analysis: true
  anomaly_detection:
    performance_drop_threshold: 0.05
    statistical_anomaly_zscore: 3.0
  auto_recovery:
    enable: true
    strategies:
      - rollback_on_severe_drop
      - adjust_lr_on_plateau
      - trigger_early_stopping
  reporting:
    auto_generate_reports: true
    report_formats: [markdown, json, html]
  alerts:
    slack_webhook: "https://hooks.slack.com/..."
    email_recipients: ["team@company.com"]
training_config:
  validation_interval: 100
  batch_logging: true
  checkpoint_dir: "./checkpoints"
  experiment_name: "ocr_model_v1"
data_quality:
  min_resolution: [100, 100]
  max_rotation_degrees: 15
  blur_threshold: 100
  enable_filtering: true
"""


def _keys(data: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in data.items():
        out.add(prefix + k)
        if isinstance(v, dict) and k not in ("metric_thresholds", "metric_directions"):
            out |= _keys(v, f"{prefix}{k}.")
    return out


def test_the_handbook_config_loads_as_written():
    cfg = parse_config_text(HANDBOOK, source="handbook.yaml")
    assert cfg.data_quality.min_resolution == (100, 100)
    assert cfg.experiment_monitoring.reporting.report_formats == ["markdown", "json", "html"]
    assert cfg.experiment_monitoring.alerts.email_recipients == ["team@company.com"]


def test_the_example_file_loads_and_documents_every_key(monkeypatch):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    cfg = load_config(EXAMPLE)
    documented = _keys(yaml.safe_load(EXAMPLE.read_text()))
    missing = _keys(AnalyzerConfig().model_dump()) - documented
    assert not missing, f"config.example.yaml lacks keys: {sorted(missing)}"
    # apart from the alert settings it spells out, the example is the defaults
    defaults = AnalyzerConfig().model_dump()
    got = cfg.model_dump()
    for section in ("training_config", "data_quality"):
        assert got[section] == defaults[section]
    assert got["experiment_monitoring"]["anomaly_detection"] == defaults["experiment_monitoring"]["anomaly_detection"]
    assert cfg.experiment_monitoring.alerts.resolved_slack_webhook() is None  # "${SLACK_WEBHOOK_URL}" unset


def test_no_config_and_an_empty_file_give_the_defaults(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert load_config(None) == AnalyzerConfig() == load_config(empty)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "experiment_monitoring:\n  anomaly_detection:\n    statistical_anomaly_zscor: 3\n",
            "c.yaml:3: experiment_monitoring.anomaly_detection.statistical_anomaly_zscor: unknown key "
            "(did you mean statistical_anomaly_zscore?)",
        ),
        (
            "experiment_monitoring:\n  anomaly_detection:\n    statistical_anomaly_zscore: high\n",
            "c.yaml:3: experiment_monitoring.anomaly_detection.statistical_anomaly_zscore: Input should be a valid number",
        ),
        (
            "experiment_monitoring:\n  auto_recovery:\n    strategies:\n      - rollback_on_severe_drop\n      - reboot\n",
            "c.yaml:5: experiment_monitoring.auto_recovery.strategies.1: Input should be",
        ),
        (
            "data_quality:\n  blur_threshold: 100\n  blur_threshold: 50\n",
            "c.yaml:3: data_quality.blur_threshold: duplicate key",
        ),
        (
            "data_quality:\n  max_rotation_degrees: 120\n",
            "c.yaml:2: data_quality.max_rotation_degrees: Input should be less than or equal to 90",
        ),
        ("data_quality: 5\n", "c.yaml:1: data_quality: must be a mapping of keys"),
        (
            "experiment_monitoring:\n  reporting:\n    report_formats: [markdown, pdf]\n",
            "c.yaml:3: experiment_monitoring.reporting.report_formats.1: Input should be 'markdown', 'json' or 'html'",
        ),
        ("foo: 1\n", "c.yaml:1: foo: unknown key (valid keys: experiment_monitoring, training_config, data_quality)"),
        ("- a\n- b\n", "c.yaml: the top level must be a mapping"),
        ("training_config:\n  validation_interval: [1\n", "c.yaml:3: not valid YAML"),
    ],
)
def test_errors_name_the_key_and_the_line(text, expected):
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="c.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def test_several_problems_are_all_reported():
    text = "training_config:\n  validation_interval: 0\ndata_quality:\n  blur_threshold: -1\n"
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="c.yaml")
    msg = str(info.value)
    assert "c.yaml:2: training_config.validation_interval" in msg and "c.yaml:4: data_quality.blur_threshold" in msg


def test_unreadable_config_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read config .*missing\.yaml"):
        load_config(tmp_path / "missing.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_config(binary)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path)


def test_secrets_come_from_the_environment_and_never_leave(monkeypatch):
    cfg = parse_config_text('experiment_monitoring:\n  alerts:\n    slack_webhook: "${MY_HOOK}"\n')
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("MY_HOOK", "https://hooks.example/secret-1")
    assert cfg.experiment_monitoring.alerts.resolved_slack_webhook() == "https://hooks.example/secret-1"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example/secret-2")
    assert cfg.experiment_monitoring.alerts.resolved_slack_webhook() == "https://hooks.example/secret-2"
    monkeypatch.setenv("SMTP_PASSWORD", "pw-123")
    assert cfg.experiment_monitoring.alerts.smtp_password() == "pw-123"
    literal = parse_config_text('experiment_monitoring:\n  alerts:\n    slack_webhook: "https://hooks.example/lit"\n')
    for c in (cfg, literal):
        dumped = dump_config(c) + str(c.public_dict())
        assert "secret" not in dumped and "hooks.example" not in dumped and "pw-123" not in dumped
        assert c.public_dict()["experiment_monitoring"]["alerts"]["slack_webhook"] == "<from environment>"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "experiment_monitoring:\n  anomaly_detection:\n    metric_thresholds: {recall: .nan}\n",
            "c.yaml:3: experiment_monitoring.anomaly_detection.metric_thresholds.recall: Input should be a finite number",
        ),
        (
            "experiment_monitoring:\n  anomaly_detection:\n    statistical_anomaly_zscore: .inf\n",
            "c.yaml:3: experiment_monitoring.anomaly_detection.statistical_anomaly_zscore: Input should be a finite",
        ),
        ("data_quality:\n  blur_threshold: .inf\n", "c.yaml:2: data_quality.blur_threshold: Input should be a finite"),
        (
            "experiment_monitoring:\n  anomaly_detection:\n    change_point_penalty: -5\n",
            "c.yaml:3: experiment_monitoring.anomaly_detection.change_point_penalty: Input should be greater than 0",
        ),
        (
            "data_quality:\n  min_resolution: [-1, 50]\n",
            "c.yaml:2: data_quality.min_resolution.0: Input should be greater than or equal to 0",
        ),
    ],
)
def test_nonsense_numbers_are_rejected_not_silently_disabling_a_check(text, expected):
    """QA: a NaN threshold, an infinite z bar or a negative penalty used to load and quietly switch checks off."""
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="c.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def test_report_formats_accept_the_cli_short_names():
    """QA: `--format md` worked on the CLI but `report_formats: [md]` was a config error."""
    cfg = parse_config_text("experiment_monitoring:\n  reporting:\n    report_formats: [md, HTML]\n")
    assert cfg.experiment_monitoring.reporting.report_formats == ["markdown", "html"]
    one = parse_config_text("experiment_monitoring:\n  reporting:\n    report_formats: json\n")
    assert one.experiment_monitoring.reporting.report_formats == ["json"]


@pytest.mark.timeout(60)
def test_nested_yaml_aliases_do_not_blow_up_the_duplicate_key_check():
    """QA: the duplicate-key walk followed every alias, so 12 levels of 9 aliases ('billion laughs') meant 9**12
    visits; each node is now visited once and the file is rejected with a normal ConfigError."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    with pytest.raises(ConfigError, match="l11: unknown key"):
        parse_config_text("\n".join(lines) + "\n", source="c.yaml")


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            'experiment_monitoring:\n  alerts:\n    email_recipients: ["a@b.c, d@e.f"]\n',
            "c.yaml:3: experiment_monitoring.alerts.email_recipients: Value error, item 0 ('a@b.c, d@e.f') is not one",
        ),
        (
            'experiment_monitoring:\n  alerts:\n    smtp_sender: "x@y\\nBcc: evil@z"\n',
            "c.yaml:3: experiment_monitoring.alerts.smtp_sender: Value error",
        ),
        (
            "experiment_monitoring:\n  alerts:\n    slack_webhook: hooks.slack.com/services/T/B/X\n",
            "c.yaml:3: experiment_monitoring.alerts.slack_webhook: Value error, must be an http(s) URL",
        ),
    ],
)
def test_alert_addresses_are_checked_when_the_config_loads(text, expected):
    """QA: 'a@b.c, d@e.f' in one item, a sender with a newline (header injection) or a webhook without a scheme
    loaded fine and only failed later, in the background, when the first alert was sent."""
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="c.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def test_a_dumped_config_loads_again(monkeypatch):
    """The app's config download writes the webhook as a placeholder; reading it back must work."""
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    cfg = parse_config_text('experiment_monitoring:\n  alerts:\n    slack_webhook: "https://hooks.example/x"\n')
    again = parse_config_text(dump_config(cfg))
    assert again.experiment_monitoring.alerts.resolved_slack_webhook() is None
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example/env")
    assert again.experiment_monitoring.alerts.resolved_slack_webhook() == "https://hooks.example/env"
