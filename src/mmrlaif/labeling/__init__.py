"""Divide-and-conquer AI feedback: claims, yes/no questions and a VLM labeler's verdicts."""
