"""The actions of `ledger audit` subcommands: each imports the module that does the work when it runs,
so that `ledger run` and the other subcommands start without the audit's dependencies."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import import_module

from infra.config import Settings

DatabaseUrl = Callable[[Settings], str]
Action = Callable[[argparse.Namespace, Settings, object], int]


def online(name: str, database_url: DatabaseUrl, module: str = "audit.commands") -> Action:
    """The action running `module`.`name` on the ledger's database, imported when it runs."""

    def action(args: argparse.Namespace, settings: Settings, _codec: object) -> int:
        run: Callable[[argparse.Namespace, str], int] = getattr(import_module(module), name)
        return run(args, database_url(settings))

    return action


def offline(name: str, module: str = "audit.commands") -> Action:
    """The action running `module`.`name`, which needs no database, imported when it runs."""

    def action(args: argparse.Namespace, _settings: Settings, _codec: object) -> int:
        run: Callable[[argparse.Namespace], int] = getattr(import_module(module), name)
        return run(args)

    return action
