"""The handbook's YAML configuration (`experiment_monitoring`, `training_config`, `data_quality`), validated.

Defaults live here and only here: `AnalyzerConfig()` is the configuration used when the user gives none.
Unknown keys and wrong types raise `ConfigError` naming the dotted key and, when loaded from a file, its line.
Secrets (the Slack webhook URL, the SMTP password) are read from the environment, never stored in reports:
`AlertsConfig.resolved_slack_webhook()` prefers `$SLACK_WEBHOOK_URL`, and `${VAR}` in the YAML is expanded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analysis.core.errors import ConfigError
from analysis.core.vocabulary import Direction

RecoveryStrategy = Literal["rollback_on_severe_drop", "adjust_lr_on_plateau", "trigger_early_stopping"]
ReportFormat = Literal["markdown", "json", "html"]

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_APPRISE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
_URL_SPLIT = re.compile(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")  # apprise's own list syntax: spaces or commas
SECRET_PLACEHOLDER = "<from environment>"


def _all_strategies() -> list[RecoveryStrategy]:
    return ["rollback_on_severe_drop", "adjust_lr_on_plateau", "trigger_early_stopping"]


def _all_formats() -> list[ReportFormat]:
    return ["markdown", "json", "html"]


# Every number has a sane range: a value that passes validation must never overflow later (a window of 1e20
# points, a retry delay of 1e300 seconds).
_MAX_STEPS = 1_000_000_000
_Pixels = Annotated[int, Field(ge=0, le=1_000_000)]


class _Strict(BaseModel):
    # NaN/Inf are never meaningful settings (a NaN threshold silently disables its check)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class AnomalyDetectionConfig(_Strict):
    performance_drop_threshold: float = Field(0.05, ge=0, le=1, description="relative drop from the running best")
    statistical_anomaly_zscore: float = Field(
        3.0, gt=0, le=1e12, description="|z| above this on the rolling window flags"
    )
    zscore_window: int = Field(20, ge=3, le=100_000, description="rolling window (points) for z-scores")
    warmup_steps: int = Field(5, ge=0, le=_MAX_STEPS, description="points before the z-score and drop detectors start")
    robust: bool = Field(True, description="also run the median/MAD detector")
    drop_only: bool = Field(False, description="only report degradations (cuts alert fatigue)")
    critical_drop_threshold: float = Field(0.15, ge=0, le=1, description="relative degradation that is critical")
    zscore_length_adjusted: bool = Field(
        True, description="post-hoc analysis: raise the z bar to sqrt(2 ln n) on a series of n points"
    )
    # Per-metric absolute bounds. Keys match a metric name exactly (`val/recall`) or its last part (`recall`).
    metric_thresholds: dict[str, float] = Field(default_factory=lambda: {"recall": 0.8})
    # Direction overrides; otherwise the name decides (analysis.core.vocabulary.metric_direction).
    metric_directions: dict[str, Direction] = Field(default_factory=dict)
    cross_batch_mad: float = Field(4.0, gt=0, le=1000, description="robust z below the peers at the same step")
    change_point_min_size: int = Field(3, ge=2, le=100_000, description="minimum points per change-point segment")
    change_point_penalty: float | None = Field(
        None, gt=0, le=1e12, description="ruptures penalty; None scales it to the noise"
    )


class AutoRecoveryConfig(_Strict):
    enable: bool = True
    strategies: list[RecoveryStrategy] = Field(default_factory=_all_strategies)
    severe_drop_threshold: float = Field(0.15, ge=0, le=1, description="relative drop that triggers a rollback")
    plateau_patience: int = Field(10, ge=1, le=_MAX_STEPS, description="steps without improvement before an LR change")
    lr_factor: float = Field(0.5, gt=0, lt=1)
    early_stop_patience: int = Field(
        30, ge=1, le=_MAX_STEPS, description="steps of sustained degradation before stopping"
    )
    max_rollbacks: int = Field(3, ge=0, le=1000)


class ReportingConfig(_Strict):
    auto_generate_reports: bool = Field(
        True,
        description="write reports at the end of CLI runs (false: only with an explicit --format/--output-dir) and "
        "at TrainingMonitor.close() (of the wandb run monitored, once finished)",
    )
    report_formats: list[ReportFormat] = Field(default_factory=_all_formats)

    @field_validator("report_formats", mode="before")
    @classmethod
    def _aliases(cls, v: Any) -> Any:
        """The CLI's short names work here too (`md`, `htm`), and a single name needs no list."""
        aliases = {"md": "markdown", "htm": "html"}
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            return [aliases.get(x.strip().lower(), x.strip().lower()) if isinstance(x, str) else x for x in v]
        return v


class AlertsConfig(_Strict):
    slack_webhook: str | None = None
    apprise_urls: list[str] = Field(
        default_factory=list,
        description="Apprise URLs (discord://, msteams://, tgram://, json://, ...) or ${ENV_VAR}; "
        "$APPRISE_URLS wins; needs the notify extra",
    )
    email_recipients: list[str] = Field(default_factory=list)
    smtp_host: str = "localhost"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_sender: str = "experiment-analyzer@localhost"
    throttle_seconds: float = Field(300.0, ge=0, le=7 * 86400, description="min seconds between alerts for one metric")
    timeout_seconds: float = Field(5.0, gt=0, le=300)
    max_retries: int = Field(3, ge=0, le=100)
    retry_backoff_seconds: float = Field(0.5, gt=0, le=3600, description="first retry delay; doubles up to 30 s")
    min_severity: Literal["info", "warning", "critical"] = Field("warning", description="least severity sent")

    @field_validator("email_recipients")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for i, addr in enumerate(v):
            if "@" not in addr or any(c in addr for c in "\r\n,;") or addr != addr.strip():
                raise ValueError(f"item {i} ({addr!r}) is not one email address (one per list item)")
        return v

    @field_validator("smtp_sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        if "@" not in v or any(c in v for c in "\r\n"):
            raise ValueError(f"{v!r} is not an email address")
        return v

    @field_validator("slack_webhook")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v is not None and v.strip() == SECRET_PLACEHOLDER:
            return None  # a dumped config read back: the URL comes from $SLACK_WEBHOOK_URL
        if v and not _ENV_REF.match(v.strip()) and not v.strip().lower().startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL or ${ENV_VAR} (better: set $SLACK_WEBHOOK_URL)")
        return v

    def resolved_slack_webhook(self) -> str | None:
        """The webhook URL: `$SLACK_WEBHOOK_URL` wins, then the config (with `${VAR}` expanded)."""
        return os.environ.get("SLACK_WEBHOOK_URL") or _expand_env(self.slack_webhook)

    @field_validator("apprise_urls", mode="before")
    @classmethod
    def _apprise_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("apprise_urls")
    @classmethod
    def _apprise(cls, v: list[str]) -> list[str]:
        kept = [u.strip() for u in v if u.strip() != SECRET_PLACEHOLDER]  # a dumped config read back
        for i, url in enumerate(kept):
            if not (_ENV_REF.match(url) or _APPRISE_URL.match(url)):  # never echo the value: it holds a token
                raise ValueError(f"item {i} is not an Apprise URL (service://...) or ${{ENV_VAR}}")
        return kept

    def resolved_apprise_urls(self) -> list[str]:
        """The Apprise URLs: `$APPRISE_URLS` (space- or comma-separated) wins, then the config (`${VAR}` expanded,
        unset variables dropped)."""
        env = os.environ.get("APPRISE_URLS")
        items = [env] if env and env.strip() else [_expand_env(u) or "" for u in self.apprise_urls]
        return [u for item in items for u in _URL_SPLIT.split(item.strip()) if u]

    @staticmethod
    def smtp_password() -> str | None:
        """The SMTP password, only ever from `$SMTP_PASSWORD`."""
        return os.environ.get("SMTP_PASSWORD")


class ExperimentMonitoringConfig(_Strict):
    enable_real_time_analysis: bool = True
    anomaly_detection: AnomalyDetectionConfig = Field(default_factory=AnomalyDetectionConfig)
    auto_recovery: AutoRecoveryConfig = Field(default_factory=AutoRecoveryConfig)
    reporting: ReportingConfig = Field(default_factory=ReportingConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)


class TrainingConfig(_Strict):
    validation_interval: int = Field(
        100,
        ge=1,
        le=_MAX_STEPS,
        description="log_batch_metrics(config=...) logs only at steps that are multiples of this",
    )
    batch_logging: bool = Field(True, description="false: log_batch_metrics(config=...) logs nothing")
    checkpoint_dir: str = "./checkpoints"
    experiment_name: str = "ocr_model_v1"
    problematic_recall_threshold: float = Field(
        0.8, ge=0, le=1, description="log_batch_metrics logs problematic_batch_{i} below this recall"
    )
    batch_key_pattern: str | None = Field(
        None,
        description="regex with named groups `batch` and `metric` for per-batch keys; none = detect "
        "batch_{i}/{metric}, <prefix>/batch_{i}/{metric} or {metric}_batch{i}",
    )

    @field_validator("batch_key_pattern")
    @classmethod
    def _batch_pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                groups = re.compile(v).groupindex
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
            missing = {"batch", "metric"} - set(groups)
            if missing:
                raise ValueError(
                    f"needs the named groups (?P<batch>...) and (?P<metric>...); missing: {', '.join(sorted(missing))}"
                )
        return v


class DataQualityConfig(_Strict):
    min_resolution: tuple[_Pixels, _Pixels] = (100, 100)  # (width, height) in pixels
    max_rotation_degrees: float = Field(15, ge=0, le=90)
    blur_threshold: float = Field(100, ge=0, le=1e9, description="in blur_score units; higher = sharper")
    enable_filtering: bool = Field(
        False,
        description="move logged problematic images that fail the checks out of the analysis' problem-image list "
        "into its filtered list (needs a data directory; the audit and root causes keep every image)",
    )
    min_contrast: float = Field(0.1, ge=0, le=1, description="luminance p99 - p1 on 0..1; 0 disables the check")
    max_image_pixels: int = Field(100_000_000, gt=0, le=2**40, description="decompression-bomb cap")
    duplicate_hash_distance: int = Field(
        10, ge=0, le=64, description="near duplicates: at most this many of the 256 perceptual-hash bits differ"
    )
    duplicate_min_share: float = Field(
        0.5, gt=0, le=1, description="a batch repeating at least this share of its images from another is a cause"
    )

    @field_validator("min_resolution", mode="before")
    @classmethod
    def _pair(cls, v: Any) -> Any:
        if isinstance(v, int):
            return (v, v)
        return v


class AnalyzerConfig(_Strict):
    experiment_monitoring: ExperimentMonitoringConfig = Field(default_factory=ExperimentMonitoringConfig)
    training_config: TrainingConfig = Field(default_factory=TrainingConfig)
    data_quality: DataQualityConfig = Field(default_factory=DataQualityConfig)

    @property
    def anomaly(self) -> AnomalyDetectionConfig:
        return self.experiment_monitoring.anomaly_detection

    def public_dict(self) -> dict[str, Any]:
        """The config as plain data with secrets replaced: safe to put in reports."""
        data: dict[str, Any] = self.model_dump(mode="json")
        alerts = data["experiment_monitoring"]["alerts"]
        if alerts.get("slack_webhook"):
            alerts["slack_webhook"] = SECRET_PLACEHOLDER
        alerts["apprise_urls"] = [
            u if _ENV_REF.match(u) else SECRET_PLACEHOLDER for u in alerts.get("apprise_urls", [])
        ]
        return data


def _expand_env(value: str | None) -> str | None:
    if not value:
        return value
    m = _ENV_REF.match(value.strip())
    if m:
        return os.environ.get(m.group(1)) or None
    return value


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at the pydantic error location `loc` (deepest one found)."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        nxt = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(part):
                    nxt, line = v, k.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
            line = nxt.start_mark.line + 1
        node = nxt
    return line


def config_from_dict(
    data: dict[str, Any] | None, *, source: str = "config", node: yaml.Node | None = None
) -> AnalyzerConfig:
    """Validate plain data into an `AnalyzerConfig`; errors name the dotted key (and line with `node`)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping with experiment_monitoring, training_config and/or data_quality"
        )
    try:
        return AnalyzerConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            line = _line_of(node, err["loc"])
            where = f"{source}:{line}" if line else source
            msg = (
                _unknown_key_message(err["loc"])
                if err["type"] == "extra_forbidden"
                else "must be a mapping of keys"
                if err["type"] in ("model_type", "dict_type")
                else err["msg"]
            )
            problems.append(f"{where}: {key}: {msg}")
        raise ConfigError("; ".join(problems)) from None


def load_config(path: str | os.PathLike[str] | None) -> AnalyzerConfig:
    """Load and validate a YAML config file; `None` gives the defaults."""
    if path is None:
        return AnalyzerConfig()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config {p}: not a UTF-8 text file") from None
    return parse_config_text(text, source=str(p))


def parse_config_text(text: str, *, source: str = "config") -> AnalyzerConfig:
    """Parse YAML text (e.g. an uploaded file) into a validated config."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except RecursionError:  # PyYAML recurses once per nesting level
        raise ConfigError(f"{source}: nested too deeply to be a configuration") from None
    try:
        return _validated(node, data, source)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a configuration") from None


def _validated(node: yaml.Node | None, data: Any, source: str) -> AnalyzerConfig:
    """Duplicate keys refused, then the data validated (errors name the key and its line)."""
    dups = _duplicate_keys(node)
    if dups:
        raise ConfigError(
            "; ".join(
                f"{source}:{line}: {key}: duplicate key (YAML would silently keep only the last one)"
                for key, line in dups
            )
        )
    return config_from_dict(data, source=source, node=node)


def _duplicate_keys(node: yaml.Node | None, prefix: str = "", visited: set[int] | None = None) -> list[tuple[str, int]]:
    """(dotted key, line) of every mapping key that repeats within its mapping.

    Each node is visited once: YAML aliases share nodes, and a file of nested aliases ("billion laughs") would
    otherwise take exponential time here."""
    visited = set() if visited is None else visited
    if id(node) in visited:
        return []
    visited.add(id(node))
    out: list[tuple[str, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            key = f"{prefix}{k.value}"
            if k.value in seen:
                out.append((key, k.start_mark.line + 1))
            seen.add(k.value)
            out += _duplicate_keys(v, key + ".", visited)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out += _duplicate_keys(v, f"{prefix}{i}.", visited)
    return out


def _unknown_key_message(loc: tuple[int | str, ...]) -> str:
    """'unknown key', with the closest valid key names of that section when one is near."""
    import difflib

    model: Any = AnalyzerConfig
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(str(part))
        model = getattr(field, "annotation", None) if field else None
        if not isinstance(model, type) or not issubclass(model, BaseModel):
            return "unknown key"
    valid = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"valid keys: {', '.join(valid)}"
    return f"unknown key ({hint})"


def dump_config(config: AnalyzerConfig) -> str:
    """YAML text of a config (secrets replaced), e.g. for the app's download of the active config."""
    return yaml.safe_dump(config.public_dict(), sort_keys=False)
