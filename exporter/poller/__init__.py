"""Where the API is polled: a bounded pool of workers, one schedule per account, and discovery."""

from .account import AccountPoller, next_delay
from .supervisor import Supervisor

__all__ = ["AccountPoller", "Supervisor", "next_delay"]
