"""Many SDK agents in one process, for load tests: `python -m tests.support.swarm --hub H
--agents 50 --capabilities work [--min-delay S --max-delay S]`. Each task's input is echoed as
its result after a random delay. On SIGTERM it prints one JSON line: how often each
(task id, attempt) was executed."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
from collections import Counter

from agentplex.client import Client, TaskContext
from agentplex.v1 import agent_pb2


async def main(args: argparse.Namespace) -> None:
    runs: Counter[str] = Counter()
    async with Client(args.hub) as client:
        await client.wait_ready()
        sessions = []
        for i in range(args.agents):
            card = agent_pb2.AgentCard(
                id=f"{args.prefix}-{i}",
                capabilities=args.capabilities.split(","),
                max_concurrent_tasks=args.max_tasks,
            )
            session = client.session(card)
            await session.connect()

            async def work(task: TaskContext) -> bytes:
                runs[task.id] += 1
                if args.max_delay:
                    await asyncio.sleep(random.uniform(args.min_delay, args.max_delay))
                return task.input.data

            session.on_task(work)
            sessions.append(session)
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        print(json.dumps(dict(runs)), flush=True)
        await asyncio.gather(*(s.close() for s in sessions))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--hub", required=True)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--capabilities", default="work")
    parser.add_argument("--max-tasks", type=int, default=1)
    parser.add_argument("--min-delay", type=float, default=0.0)
    parser.add_argument("--max-delay", type=float, default=0.0)
    parser.add_argument("--prefix", default="swarm")
    asyncio.run(main(parser.parse_args()))
