"""TaskService: declared in the schema, served once the tasks capability lands."""

from __future__ import annotations

from typing import Any

from agentplex.errors import Unimplemented


class TaskServicer:
    def __getattr__(self, name: str) -> Any:
        if not name[:1].isupper():
            raise AttributeError(name)

        async def unimplemented(request: Any, context: Any) -> Any:
            raise Unimplemented(f"TaskService.{name} is not available yet in this hub version")

        return unimplemented
