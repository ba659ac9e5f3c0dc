"""Named flow configurations, and configurations from flags (`2x2`, faults, events)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

from checker.inputs.readers import InputError, memory_map_json, read_json_map
from spec.flow import FlowConfig, TdxFlow
from spec.memory import SZ_1G, SZ_4K, MemRange
from spec.placement import FirstFit
from spec.platform import SZ_128M, Platform
from spec.profiles import get_profile
from spec.sysinfo import TdxSysinfo

DEFAULT = "default"
# The largest platform a flow configuration may have: the explorer exhausts 8 CPUs in half a
# minute, and a model of 100000x100000 CPUs would not even finish being built.
MAX_FLOW_CPUS = 16

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


def model_from_description(description: dict, name: str = "<trace>") -> TdxFlow:
    """Rebuild the model a trace was recorded on (the `model` block of its JSON): a named
    configuration, or one written in full (`configuration`, a searched machine)."""
    if "configuration" in description:
        return flow_model(description["profile"],
                          config_from_json(description["configuration"], name))
    return flow_model(description["profile"], description["config"])


# --- a configuration as JSON: how a trace found on a searched machine names its model ---------

# Each scalar field and its JSON type.
_PLATFORM_FLAGS = {"packages": int, "cpus_per_package": int, "erratum": bool,
                   "module_no_rbp_mod": bool, "private_keyids": int, "tdmr_init_chunk": int}
_CONFIG_FLAGS = {"fault_budget": int, "cpu_hotplug": bool, "memory_hotplug": bool,
                 "sleep_requests": bool, "machine_checks": bool, "alloc_faults": bool,
                 "callers_check_packages": bool, "module_update": bool}
_LISTS = {"caller_loads": int, "boot_hibernation": bool}
_TYPE_WORDS = {int: "an integer", bool: "true or false"}
_MEMORY_KEYS = {"regions", "cmrs", "metadata"}  # a map without PAMT bases: first-fit places
MAX_LOADS = 8  # loads per caller: each is a step of the explored space


def config_json(config: FlowConfig) -> dict:
    """`config` in full, for a machine that no name stands for (`config_from_json` reads it)."""
    platform = config.platform
    if not isinstance(platform.placement, FirstFit):
        raise ValueError("only first-fit PAMT placement can be written down")
    return {"name": config.name,
            **{flag: getattr(platform, flag) for flag in _PLATFORM_FLAGS},
            "memory": memory_map_json(platform.regions, platform.cmrs, platform.sysinfo),
            "hot_blocks": memory_map_json(platform.hot_blocks)["regions"],
            "caller_loads": list(config.caller_loads),
            "boot_hibernation": list(config.boot_hibernation),
            **{flag: getattr(config, flag) for flag in _CONFIG_FLAGS}}


def config_from_json(doc, name: str) -> FlowConfig:
    """The configuration `config_json` wrote; InputError (line 0) names what is wrong. Its
    memory and hot blocks are read as our memory-map format is (`read_json_map`)."""

    def fail(problem: str) -> InputError:
        return InputError(name, 0, f"configuration: {problem}")

    if not isinstance(doc, dict):
        raise fail("must be an object")
    known = {"name", "memory", "hot_blocks", *_LISTS, *_PLATFORM_FLAGS, *_CONFIG_FLAGS}
    missing = sorted(known - set(doc))
    if missing or set(doc) - known:
        raise fail(f"missing {missing[0]!r}" if missing
                   else f"unknown key {sorted(set(doc) - known)[0]!r}")
    if not isinstance(doc["name"], str):
        raise fail("'name' must be a string")
    for flag, want in (_PLATFORM_FLAGS | _CONFIG_FLAGS).items():
        if type(doc[flag]) is not want:
            raise fail(f"{flag!r} must be {_TYPE_WORDS[want]}")
    for key, want in _LISTS.items():
        if not isinstance(doc[key], list) or any(type(v) is not want for v in doc[key]):
            raise fail(f"{key!r} must be a list, each item {_TYPE_WORDS[want]}")
    problem = cpus_problem(doc["packages"], doc["cpus_per_package"],
                           f"{doc['packages']}x{doc['cpus_per_package']}")
    if problem:
        raise fail(problem)
    if doc["private_keyids"] < 0:
        raise fail("'private_keyids' must be >= 0")
    if doc["tdmr_init_chunk"] < SZ_4K:
        raise fail("'tdmr_init_chunk' must be at least a page (4096)")
    if not doc["boot_hibernation"]:
        raise fail("'boot_hibernation' needs at least one choice")
    if any(not 0 <= loads <= MAX_LOADS for loads in doc["caller_loads"]):
        raise fail(f"each of 'caller_loads' must be 0 to {MAX_LOADS}")
    if not isinstance(doc["memory"], dict) or set(doc["memory"]) - _MEMORY_KEYS:
        raise fail(f"'memory' must be a memory map with {', '.join(sorted(_MEMORY_KEYS))} "
                   "only")
    memory = read_json_map(json.dumps(doc["memory"]), f"{name} (configuration.memory)")
    if not isinstance(doc["hot_blocks"], list):
        raise fail("'hot_blocks' must be a list")
    blocks = () if not doc["hot_blocks"] else read_json_map(
        json.dumps({"regions": doc["hot_blocks"]}), f"{name} (configuration.hot_blocks)").regions
    try:
        platform = Platform(regions=memory.regions, cmrs=memory.cmrs,
                            sysinfo=memory.sysinfo or TdxSysinfo(), hot_blocks=blocks,
                            **{flag: doc[flag] for flag in _PLATFORM_FLAGS})
        return FlowConfig(name=doc["name"], platform=platform,
                          caller_loads=tuple(doc["caller_loads"]),
                          boot_hibernation=tuple(doc["boot_hibernation"]),
                          **{flag: doc[flag] for flag in _CONFIG_FLAGS})
    except ValueError as exc:
        raise fail(str(exc)) from None


def cpus_problem(packages: int, cpus_per_package: int, what: str) -> str | None:
    """Why `what`, a platform of `packages` x `cpus_per_package` CPUs, cannot be built, or
    None."""
    if packages < 1 or cpus_per_package < 1:
        return f"{what}: a platform needs at least one package with one CPU"
    if packages * cpus_per_package > MAX_FLOW_CPUS:
        return (f"{what} has {packages * cpus_per_package:,} CPUs; at most {MAX_FLOW_CPUS} are "
                "supported")
    return None
