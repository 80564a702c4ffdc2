"""The documents' claims about batch normalization, each measured by an experiment with a verdict.

``gluon-bn study NAME`` runs one; the pieces, from pure data down to MXNet:

- :mod:`~gluon_bn.study.registry`: the studies (claim, source, measurement, criterion,
  settings) as frozen dataclasses; :mod:`~gluon_bn.study.settings`: their settings, the
  comparisons they state before running (direction and margin) and their deciding scales;
- :mod:`~gluon_bn.study.stats`: paired t intervals, Welch, effect sizes, TOST and the one
  rule from an interval to an outcome;
- :mod:`~gluon_bn.study.criteria`: the verdicts, pure functions of the numbers (the faster
  study's in :mod:`~gluon_bn.study.reaching`, the ablations' in
  :mod:`~gluon_bn.study.ablated`, batch-noise's in :mod:`~gluon_bn.study.noise`,
  regularization's in :mod:`~gluon_bn.study.fitted`);
- :mod:`~gluon_bn.study.plans`: each study's configurations, and how its runs reach its
  criterion;
- :mod:`~gluon_bn.study.study_record`, :mod:`~gluon_bn.study.study_report` and
  :mod:`~gluon_bn.study.figures`: the JSON record, the progress file, the Markdown report
  (with :mod:`~gluon_bn.study.study_tables`), the figures (every seed's numbers, and
  :mod:`~gluon_bn.study.forest`, the comparisons' intervals) and the summary table;
- :mod:`~gluon_bn.study.runner`: one study run end to end, resumable;
  :mod:`~gluon_bn.study.stated`: the git commits of a study's criterion and of its runs,
  whether the criterion was stated before them;
- :mod:`~gluon_bn.study.experiments`, :mod:`~gluon_bn.study.speed` and
  :mod:`~gluon_bn.study.ablation_runs` (MXNet): what one configuration measures with one seed;
- :mod:`~gluon_bn.study.command`: the ``gluon-bn study`` subcommand (its arguments are in :mod:`gluon_bn.cli`).

Importing this package, the registry, the statistics, the criteria, the plans, the records
or the reports loads no MXNet.
"""

from gluon_bn.study.registry import STUDIES, Settings, Study, get_study

__all__ = ["STUDIES", "Settings", "Study", "get_study"]
