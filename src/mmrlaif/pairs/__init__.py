"""Preference pairs: RLAIF-V rules over scored candidates, and POVID rejected-answer sources."""
