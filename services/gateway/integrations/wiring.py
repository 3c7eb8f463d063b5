"""The integration side of the gateway as one value: finding integrations, defining custom ones, installing
them and their tools, built in dependency order."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.gateway.integrations.custom import CustomDefinitions
from services.gateway.integrations.directory import Directory
from services.gateway.integrations.installs import Installs
from services.gateway.integrations.tools import Tools
from services.gateway.projection import Projection
from services.gateway.waiters import Waiters
from shared.bus import Bus
from shared.netguard import AllowList


@dataclass(frozen=True)
class Integrations:
    """What the REST API and the meta-tools use to serve integrations and tools."""

    directory: Directory
    custom: CustomDefinitions
    installs: Installs
    tools: Tools

    @classmethod
    def create(
        cls,
        bus: Bus,
        pool: asyncpg.Pool,
        waiters: Waiters,
        projection: Projection,
        allow: AllowList,
        install_wait: float,
    ) -> Integrations:
        directory = Directory(bus, pool)
        installs = Installs(bus, pool, waiters, projection, allow, install_wait, directory)
        return cls(
            directory=directory,
            custom=CustomDefinitions(bus, projection, allow, directory),
            installs=installs,
            tools=Tools(bus, pool, projection, installs),
        )
