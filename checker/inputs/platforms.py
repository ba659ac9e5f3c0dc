"""Named flow configurations, and configurations from flags (`2x2`, faults, events)."""

from __future__ import annotations

import re
from dataclasses import replace

from spec.flow import FlowConfig, TdxFlow
from spec.memory import SZ_1G, MemRange
from spec.platform import SZ_128M, Platform
from spec.profiles import get_profile
from spec.sysinfo import TdxSysinfo

DEFAULT = "default"

CONFIGS: dict[str, FlowConfig] = {c.name: c for c in (
    FlowConfig(name=DEFAULT),
    FlowConfig(name="1x1", platform=Platform(packages=1, cpus_per_package=1)),
    FlowConfig(name="2x1", platform=Platform(packages=2, cpus_per_package=1)),
    FlowConfig(name="2x4", platform=Platform(packages=2, cpus_per_package=4)),
    FlowConfig(name="4x2", platform=Platform(packages=4, cpus_per_package=2)),
    FlowConfig(name="reload", caller_loads=(2, 1)),
    FlowConfig(name="quiet-2x2", cpu_hotplug=False, memory_hotplug=False, sleep_requests=False,
               machine_checks=False, boot_hibernation=(False,)),
    FlowConfig(name="rsvd-exhausted",
               platform=Platform(sysinfo=TdxSysinfo(max_reserved_per_tdmr=1))),
    FlowConfig(name="too-few-keyids", platform=Platform(private_keyids=1)),
    FlowConfig(name="unchecked-callers", callers_check_packages=False),
    FlowConfig(name="old-module", platform=Platform(module_no_rbp_mod=False)),
    FlowConfig(name="no-erratum", platform=Platform(erratum=False)),
    # One node, so one TDMR holds all memory and its own PAMT: the shape of a small
    # single-socket host (every other configuration has two TDMRs).
    FlowConfig(name="one-node", platform=Platform(
        packages=1, regions=(MemRange(0, 2 * SZ_1G, 0),),
        hot_blocks=(MemRange(2 * SZ_1G - SZ_128M, 2 * SZ_1G + SZ_128M, 0),))),
    # Memory hot-added on a node of its own, apart from boot memory (a CXL expander, say):
    # onlined before init it is a snapshot entry and a TDMR by itself, so re-onlining it
    # tests both ends of the notifier's range check (the default block shares its entry).
    FlowConfig(name="hot-node", platform=Platform(
        packages=1, hot_blocks=(MemRange(4 * SZ_1G, 4 * SZ_1G + SZ_128M, 2),))),
)}

_SHAPE = re.compile(r"^(\d+)x(\d+)$")


def get_config(name: str) -> FlowConfig:
    """A named configuration, or a shape `PxC` (the default configuration on that topology)."""
    if name in CONFIGS:
        return CONFIGS[name]
    match = _SHAPE.match(name)
    if match:
        packages, cpus = int(match.group(1)), int(match.group(2))
        return replace(CONFIGS[DEFAULT], name=name,
                       platform=replace(Platform(), packages=packages, cpus_per_package=cpus))
    raise KeyError(f"unknown flow configuration {name!r} (known: {', '.join(CONFIGS)}, or PxC)")


def configure(base: str = DEFAULT, **flags) -> FlowConfig:
    """`base` with some fields changed: `faults=0`, `cpu_hotplug=False`, `erratum=False`,
    `packages=4`, ... Platform fields go to the platform, the rest to the configuration."""
    config = get_config(base)
    platform_fields = {k: flags.pop(k) for k in list(flags) if hasattr(config.platform, k)}
    if "faults" in flags:
        flags["fault_budget"] = flags.pop("faults")
    platform = replace(config.platform, **platform_fields)
    name = flags.pop("name", None) or _flag_name(base, platform_fields, flags)
    return replace(config, name=name, platform=platform, **flags)


def _flag_name(base: str, platform_fields: dict, flags: dict) -> str:
    changed = {**platform_fields, **flags}
    if not changed:
        return base
    return base + "," + ",".join(f"{k}={v}" for k, v in sorted(changed.items()))


def flow_model(profile: str = "v6.8", config: str | FlowConfig = DEFAULT) -> TdxFlow:
    """The flow model for a profile name and a configuration (name or object)."""
    if isinstance(config, str):
        config = get_config(config)
    return TdxFlow(get_profile(profile), config)


def model_from_description(description: dict) -> TdxFlow:
    """Rebuild the model a trace was recorded on (the `model` block of its JSON)."""
    return flow_model(description["profile"], description["config"])
