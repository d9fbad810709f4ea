"""Fixtures for the agent tests: a lying server in memory, a crashable disk, a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hotpatch_client import Agent
from hotpatch_client.fs import FileSystem
from hotpatch_client.testing import FakeClock, MemoryFileSystem, RepositorySimulator


@pytest.fixture
def clock() -> FakeClock:
    """Time that moves only when told: the devices' and the simulated server's."""
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> RepositorySimulator:
    """An update server in memory."""
    return RepositorySimulator(clock=clock)


@pytest.fixture
def fs() -> MemoryFileSystem:
    """A crashable in-memory disk."""
    return MemoryFileSystem()


@pytest.fixture
def make_agent(sim: RepositorySimulator, clock: FakeClock) -> Iterator[Callable[..., Agent]]:
    """Build agents of ``sim``'s app on a file system; every one is closed at the end."""
    agents: list[Agent] = []

    def build(fs: FileSystem, **overrides: Any) -> Agent:
        restart = overrides.pop("restart", None)
        agent = Agent(
            sim.config(**overrides), http=sim.client(), fs=fs, clock=clock, restart=restart
        )
        agents.append(agent)
        return agent

    yield build
    for agent in agents:
        agent.close()
