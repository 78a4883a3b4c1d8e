"""The stream-processing application: the Faust app (main.py, factory.py), exactly-once output
and local-state recovery, metrics, logs, and the test harness (testing.py)."""
