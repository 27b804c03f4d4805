"""Tier 1: the concordance frame (astrometric and photometric solutions per image).

Science functions here take arrays and tables and never touch the database;
the tile-job steps load their inputs and store their results around them.
"""
