"""CoinW's spot API: signed requests, parsing of its replies, and a simulated exchange."""
