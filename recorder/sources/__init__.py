"""Where balances come from: exchange clients, their parsers and simulators."""
