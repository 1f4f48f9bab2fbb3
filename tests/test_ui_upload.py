"""The sidebar line that says what an uploaded history held."""

from __future__ import annotations

from analysis.sources import open_table
from ui.upload import read_summary


def test_the_summary_quotes_the_metrics_that_grade_the_run_before_time_and_memory(tmp_path):
    """QA: an mmcv log read "last aAcc 71.74, data_time 0.0103, decode.loss_cls 1.438": the columns in file order,
    a data-loading time among them."""
    p = tmp_path / "log.csv"
    rows = "".join(
        f"{i * 50},{0.4 + i / 1000:.4f},0.0103,4807,{2.0 - i / 100:.3f},{30 + i / 10:.2f},{i}\n" for i in range(1, 40)
    )
    p.write_text("iter,time,data_time,memory,loss,mIoU,warmup_count\n" + rows)
    line = read_summary(open_table(p))
    assert "last loss 1.61, mIoU 33.9, warmup_count 39" in line, line
