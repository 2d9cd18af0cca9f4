r"""Scoring corpora with a trained flow: tables, statistics, baselines."""
