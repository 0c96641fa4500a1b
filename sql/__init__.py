"""The correlation stages as package data: ``importlib.resources.files("pipeline.sql")``."""
