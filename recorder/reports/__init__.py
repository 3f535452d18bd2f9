"""Answers from the history: holdings, balances over time, changes, exports, health."""
