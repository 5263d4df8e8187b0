"""avflow built-in plugin: musetalk nodes (registered through the avflow.plugins entry point)."""

from avflow import hookimpl


@hookimpl
def avflow_register_nodes():
    return []
