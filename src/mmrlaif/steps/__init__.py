"""The step tier: the functions the KFP components call, one module per component.

A step takes the whole :class:`~mmrlaif.config.Config` and artifact folders, and does the
cross-package work of a task (shard cache, seeds, lineage, tracking) around the stage
packages, which take config sections and paths only. The tier is being filled (issue 20): the
``*_step`` functions still living in the stage packages are listed as exceptions of the
``stages`` import contract in ``pyproject.toml`` until they move here.
"""
