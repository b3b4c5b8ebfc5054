"""Plots and reports from runs' logs (``recore-dist plot``)."""
