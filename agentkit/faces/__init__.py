"""The faces: how people and programs reach agentkit, all above the method layer and the sweeps.

- ``cli``: the ``agentkit`` command (one module per command family: chat, solve, sweep, serve, handbook);
- ``service``: the behavior handbook over HTTP (``agentkit serve``);
- ``proxy``: an OpenAI-compatible endpoint that runs any registered method (``agentkit proxy``);
- ``mcp_server``: the handbook as a Model Context Protocol server (``agentkit mcp``);
- ``view``: a read-only web page for a sweep database (``agentkit view``);
- ``web``: what the HTTP faces share (one middleware with the bearer check and the error mapper, JSON, the port
  check and bind).

Every face runs a method through ``agentkit.methods.run_method`` and reports it with ``result_summary``.
"""
