"""Hallucination measures: ObjHal, RespHal, Cover and POPE, on the lexicon of a world."""
