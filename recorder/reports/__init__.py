"""Answers from the history: holdings, balances over time (carried), statements, changes,
exports (CSV, JSON Lines, XLSX, HTML with charts), health."""
