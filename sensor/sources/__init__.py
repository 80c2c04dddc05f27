"""Inputs: capture files (and later live capture and logs), yielding batches."""
