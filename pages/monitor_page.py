"""Monitor settings: the alert sinks and recovery strategies of the active config, and a test alert."""

from __future__ import annotations

import streamlit as st

from analysis.core.errors import AnalyzerError
from analysis.core.paths import allowed_hosts, check_host, data_roots
from ui import state, tables
from ui.format import error_text, md_escape

st.title("Monitor settings")
cfg = state.config()
mon = cfg.experiment_monitoring
alerts = mon.alerts
st.markdown(
    "The `TrainingMonitor` in your training loop reads this configuration "
    "(`from experiment_analyzer import TrainingMonitor`)."
)

st.subheader("Alert sinks")
sinks = tables.alert_sinks_table(alerts)
st.dataframe(sinks, hide_index=True, key="mon_sinks", width="stretch")
st.caption(
    f"Throttle: one alert per metric every {alerts.throttle_seconds:g} s; failed sends retried "
    f"{alerts.max_retries}× with backoff in the background."
)

st.subheader("Recovery strategies")
rec = mon.auto_recovery
st.markdown(f"Auto recovery is **{'on' if rec.enable else 'off'}**.")
st.dataframe(tables.strategies_table(rec.strategies), hide_index=True, key="mon_strategies")
st.caption(
    f"Rollback on a relative drop ≥ {rec.severe_drop_threshold:g} (at most {rec.max_rollbacks}×, "
    f"checkpoints in {md_escape(cfg.training_config.checkpoint_dir)}); LR × {rec.lr_factor:g} after "
    f"{rec.plateau_patience} steps without improvement; early stop after {rec.early_stop_patience} "
    f"degraded steps."
)

st.subheader("Detection thresholds")
st.dataframe(tables.detection_table(mon.anomaly_detection), hide_index=True, key="mon_detection")

SHOW = {"success": st.success, "info": st.info, "error": st.error}
if st.button("Send test alert", key="mon_test_alert"):
    from analysis.monitoring.alerts import send_test_alert

    try:
        if data_roots():  # a confined (team) server sends only to the operator's allowed hosts
            for destination in tables.alert_destinations(alerts):
                check_host(destination, allowed_hosts())
    except AnalyzerError as exc:
        st.error(error_text(exc))
        st.stop()
    for result in send_test_alert(cfg):
        SHOW[tables.alert_result_style(result.ok, result.detail)](f"{result.name}: {md_escape(result.detail)}")
