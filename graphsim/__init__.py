"""graphsim: a faithful simulator of Entra ID's identity endpoints and the Microsoft Graph endpoints
Lanyard uses. It serves the demo tenant for `make run` and is the Graph of the test suite.

The contract it implements, with sources, is `docs/graph-contract.md`. Where the docs are
silent (DOC-GAP in the contract) the simulator follows the contract's recommendation and says so
in code. graphsim does not import Django: it runs as its own process (`python -m graphsim`) or
in a thread.
"""
