"""What every component's entry program shares: how it is given ctloop.yaml, and how it loads it."""

from __future__ import annotations

import argparse

import yaml

from ctloop import artifacts, config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="Path of ctloop.yaml.")
    source.add_argument("--config-yaml", help="The text of ctloop.yaml (what a KFP parameter carries).")


def settings_from_file(path) -> config.Settings:
    """ctloop.yaml, validated, with the artifact layer pointed at the configured S3 endpoint."""
    settings = config.load(path)
    artifacts.configure(s3_endpoint_url=settings.endpoints.artifact_store.s3_endpoint_url)
    return settings


def load_settings(args: argparse.Namespace) -> config.Settings:
    """Settings from --config or --config-yaml."""
    if args.config:
        return settings_from_file(args.config)
    else:
        try:
            raw = yaml.safe_load(args.config_yaml)
        except yaml.YAMLError as e:
            raise config.ConfigError("--config-yaml", [("(text)", f"not valid YAML: {e}")]) from None
        settings = config.parse(raw, source="--config-yaml")
    artifacts.configure(s3_endpoint_url=settings.endpoints.artifact_store.s3_endpoint_url)
    return settings
