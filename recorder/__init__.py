"""recorder: keeps the balance history of CoinW spot accounts in a SQL database."""

__version__ = "0.1.0"
