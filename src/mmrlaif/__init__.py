"""mmrlaif: preference alignment of vision-language models on AI feedback (RLAIF-V, POVID)."""

__version__ = "0.1.0"
