"""Batch evaluation, metrics and reports.

    metrics   psnr, ssim, lpips (per image), SetMetrics / set_metrics (FID, KID over a set)
    evaluate  run_eval(config) runs or resumes `inversa eval`; merge(run_dir) rebuilds the tables
    report    summary.csv / summary.md / report.html / run.json from a run's rows
"""

from inversa.eval.config import EvalConfig
from inversa.eval.evaluate import merge, run_eval
from inversa.eval.metrics import MetricUnavailable, SetMetrics, load_lpips, lpips, psnr, set_metrics, ssim

__all__ = ["EvalConfig", "MetricUnavailable", "SetMetrics", "load_lpips", "lpips", "merge", "psnr", "run_eval",
           "set_metrics", "ssim"]
