"""What several sub-commands share: their settings' flags, the storehouse they need."""

from __future__ import annotations

import argparse

from alert_pipeline.errors import ConfigError
from alert_pipeline.settings import add_setting_arguments
from alert_pipeline.storehouse.builder import settings


def add_settings(parser: argparse.ArgumentParser, *declared: settings.Setting) -> None:
    """The flags of some declared settings (numbers converted by argparse, as before)."""
    add_setting_arguments(parser, declared, typed=True)


def required(args: argparse.Namespace, setting: settings.Setting, where: str) -> str:
    """A setting the command cannot run without, or ConfigError saying where to give it."""
    value = getattr(args, setting.name, None)
    if not value:
        via = f"pass {setting.flag}" + (f" or set {setting.variable}" if setting.variable else "")
        raise ConfigError(f"{where}: {via} (or {setting.name} in the config file's [builder] table)")
    return value
