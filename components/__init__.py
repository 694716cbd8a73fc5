"""KFP components: thin wrappers, one library call each (shipped as ``mmrlaif.components``).

Every artifact is a folder:

- world (``Dataset``): the toy world's tables (``mmrlaif.toyworld.WorldPaths``);
- policy (``Model``): a run folder with the model under ``model/`` and its training report;
- samples / feedback / pairs (``Dataset``): ``<name>.parquet`` and ``stats.json``;
- report (``Artifact``): ``eval.json`` (held-out eval split) and ``val.json`` (validation).

A component parses the YAML config it is given, makes one call into the library and writes
its outputs; it never holds logic of its own, so the same steps run in tests without KFP.
"""
