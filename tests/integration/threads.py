#!/usr/bin/python3
"""The WebSocket side of the integration suite again, with [server]
threads = 3: every joined WebSocket moves from loop 0 to one of two
worker loops, so messages, deliveries, closes, TLS sessions, limits,
fan-out across nodes and shutdown all cross loops (ccharness reads
CC_TEST_THREADS)."""
import os
import sys

os.environ["CC_TEST_THREADS"] = "3"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ccharness as h  # noqa: E402

SUITE = ["test_websocket", "test_resume", "test_chat", "test_tls", "test_abuse",
         "test_redis", "test_daemon", "test_bench", "test_cases", "test_receipts"]

if __name__ == "__main__":
    h.main(SUITE)
