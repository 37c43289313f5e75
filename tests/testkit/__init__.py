"""Helpers the tests share: free ports, real server processes, waiting."""
