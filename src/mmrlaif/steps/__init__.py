"""The step tier: the functions the KFP components call, one module per component.

A step takes the whole :class:`~mmrlaif.config.Config` and artifact folders and does a task's
cross-package work (shard cache, seeds, lineage, tracking, continual sources) around the stage
packages, which take config sections and paths only: the ``stages`` import contract in
``pyproject.toml`` forbids them tracking, continual and this tier. Here so far: ``world``,
``base_policy``, ``sample``, ``label``, ``merge`` (shards); the other components' steps still
live beside their stages (``evaluation.evaluate``, ``evaluation.select``, ``pairs.stage``,
``training``, ``tracking.steps``) and move here next (issue 20).
"""
