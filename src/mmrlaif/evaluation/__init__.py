"""Hallucination measures: CHAIR_i, CHAIR_s, Cover and POPE, on the lexicon of a world."""
