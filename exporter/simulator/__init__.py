"""The demo's stand-in for WhatsGate: a loopback server, its data and its faults. Not the product.

It depends on nothing else in the package, so that it stays a faithful outsider.
"""

from .server import DEMO_ACCOUNTS, FAULTS, SimAccount, Simulator, main

__all__ = ["DEMO_ACCOUNTS", "FAULTS", "SimAccount", "Simulator", "main"]
