"""`realtime loadtest`: drive a deployment from outside and check every event arrives once.

The load tester speaks only the wire contract (HTTP and the websocket), so it measures any
deployment: the embedded default, or several nodes behind a load balancer.
"""

from __future__ import annotations

from realtime.loadtest.options import Options
from realtime.loadtest.report import Report
from realtime.loadtest.runner import run_loadtest

__all__ = ["Options", "Report", "run_loadtest"]
