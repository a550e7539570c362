"""agentplex: a coordination hub for software agents.

The package is laid out by concern: ``core`` holds pure decisions (validation, glob matching,
channel logs, acks), ``engine`` the shared state (memory, later Redis), ``hub`` the operations
every transport calls, ``rpc`` the gRPC adapters and ``cli`` the command line.
"""

__version__ = "0.1.0"
