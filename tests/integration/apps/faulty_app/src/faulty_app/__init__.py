"""faulty_app: partitions that raise or kill their worker, for failure tests."""
