"""``vast study``: the paper's claims tested side by side at proxy scale.

A *plan* (:mod:`vast.study.plan`) names a data set, one training recipe, seeds and groups of model
configurations; :mod:`vast.study.runner` trains every configuration with every seed through the normal
trainer, measures it in the same process and appends one record per run to ``study.json`` (a finished
run is never run again); :mod:`vast.study.report` aggregates the seeds into ``report.md`` with a
verdict per claim, and :mod:`vast.study.plots` draws the figures.
"""

from vast.study.plan import RunSpec, StudyPlan, load_plan, plan_names
from vast.study.runner import run_study

__all__ = ["RunSpec", "StudyPlan", "load_plan", "plan_names", "run_study"]
