"""Monitor settings: the alert sinks and recovery strategies of the active config, and a test alert."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import state
from ui.format import md_escape

st.title("Monitor settings")
cfg = state.config()
mon = cfg.experiment_monitoring
alerts = mon.alerts
st.markdown(
    "The `TrainingMonitor` in your training loop reads this configuration "
    "(`from experiment_analyzer import TrainingMonitor`)."
)

st.subheader("Alert sinks")
webhook = alerts.resolved_slack_webhook()
sinks = pd.DataFrame(
    [
        {
            "sink": "Slack webhook",
            "configured": bool(webhook),
            "detail": "from $SLACK_WEBHOOK_URL or config (URL hidden)" if webhook else "set $SLACK_WEBHOOK_URL",
        },
        {
            "sink": "Email (SMTP)",
            "configured": bool(alerts.email_recipients),
            "detail": f"{', '.join(alerts.email_recipients) or 'no recipients'} via {alerts.smtp_host}:{alerts.smtp_port}"
            + (" (STARTTLS)" if alerts.smtp_starttls else ""),
        },
        {"sink": "wandb.alert", "configured": True, "detail": "when a wandb run is active in the training process"},
        {"sink": "log", "configured": True, "detail": "Python logging, always on"},
    ]
)
st.dataframe(sinks, hide_index=True, key="mon_sinks", width="stretch")
st.caption(
    f"Throttle: one alert per metric every {alerts.throttle_seconds:g} s; failed sends retried "
    f"{alerts.max_retries}× with backoff in the background."
)

st.subheader("Recovery strategies")
rec = mon.auto_recovery
st.markdown(f"Auto recovery is **{'on' if rec.enable else 'off'}**.")
st.dataframe(pd.DataFrame([{"strategy": s} for s in rec.strategies]), hide_index=True, key="mon_strategies")
st.caption(
    f"Rollback on a relative drop ≥ {rec.severe_drop_threshold:g} (at most {rec.max_rollbacks}×, "
    f"checkpoints in {md_escape(cfg.training_config.checkpoint_dir)}); LR × {rec.lr_factor:g} after "
    f"{rec.plateau_patience} steps without improvement; early stop after {rec.early_stop_patience} "
    f"degraded steps."
)

st.subheader("Detection thresholds")
ad = mon.anomaly_detection
st.dataframe(
    pd.DataFrame([{"setting": k, "value": str(v)} for k, v in ad.model_dump().items()]),
    hide_index=True,
    key="mon_detection",
)

if st.button("Send test alert", key="mon_test_alert"):
    from analysis.monitoring.alerts import send_test_alert

    results = send_test_alert(cfg)
    for r in results:
        name, ok, detail = (r["name"], r["ok"], r["detail"]) if isinstance(r, dict) else (r.name, r.ok, r.detail)
        (st.success if ok else st.error)(f"{name}: {md_escape(detail)}")
