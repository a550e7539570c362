"""The JavaScript client (ES modules, see README.md), shipped as package data so the hub's
dashboard can serve it: `importlib.resources.files("agentplex.jsclient")`."""
