"""The step tier: the functions the KFP components call, one module per component
(``components/X.py`` calls ``mmrlaif.steps.X``; the TrainJob launcher of ``train`` is
``trainjob``, the shard helpers of ``sample``, ``label`` and ``merge`` live in ``merge``).

A step takes the whole :class:`~mmrlaif.config.Config` and artifact folders and does a task's
cross-package work (shard cache, seeds, lineage, tracking, continual sources) around the stage
packages, which take config sections and paths only: the ``stages`` import contract in
``pyproject.toml`` forbids them tracking, continual and this tier.
"""
