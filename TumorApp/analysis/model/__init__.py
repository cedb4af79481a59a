"""The network: its definition, exported graphs, quantisation and the runtime that runs it."""
