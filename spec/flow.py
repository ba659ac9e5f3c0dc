"""The v6.8 TDX host flow as a transition system (behaviour notes, sections 4-7).

A state is an immutable tuple tree (`State`, `Package`, `Cpu`, `Caller`); `TdxFlow.successors`
lists every step the kernel, its callers or the environment can take next, each as a `Step`
label naming the kernel function or event, the CPU, the SEAMCALL and its result. Steps are
atomic where another CPU or thread can interleave: a lock section, one SEAMCALL, one IPI.

Modelling choices (each keeps the state space finite or the model symmetric):
- Callers are KVM-like users: take `cpus_read_lock`, check every package has an online CPU,
  IPI every online CPU (VMXON, then `tdx_cpu_enable`), call `tdx_enable`, unlock. They may IPI
  the CPUs in any order (the kernel's `on_each_cpu` runs them in parallel), and
  `config_global_keyid` may take the packages in any order and use any online CPU of a package.
  The kernel's id order is one of these runs; letting all of them happen makes CPU and package
  numbering irrelevant, so sorting CPUs and packages (`canonical`) is an exact reduction.
- SEAMCALLs issued from process context (TDH.SYS.RD, TDH.SYS.CONFIG, TDH.SYS.TDMR.INIT) may run
  on any online CPU, so their `Step.cpu` is None and the rules look at every online CPU.
- Faults: each SEAMCALL may fail (VMfailInvalid, entropy exhausted, module error) and a PAMT
  allocation may fail, while the configuration's fault budget lasts. #UD is never a choice: it
  happens exactly when the CPU is outside VMX operation.
- History that invariants need is kept as saturating counters (0, 1, "2 or more") and flags,
  never as unbounded counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress
from operator import is_not
from typing import NamedTuple

from spec.errno import EINVAL, ENODEV, ENOMEM
from spec.memory import SZ_1M, is_tdx_memory, tdx_memory_notifier
from spec.platform import Platform, TdmrLayout, tdx_layout
from spec.profiles import V6_8, Profile
from spec.seamcall import (
    INJECTABLE,
    MODULE_ERROR,
    SUCCESS,
    TDH_PHYMEM_PAGE_RDMD,
    TDH_SYS_CONFIG,
    TDH_SYS_INIT,
    TDH_SYS_KEY_CONFIG,
    TDH_SYS_LP_INIT,
    TDH_SYS_RD,
    TDH_SYS_TDMR_INIT,
    UD,
    seamcall_errno,
)

# Module status (`enum tdx_module_status_t`).
UNINITIALIZED, INITIALIZED, ERROR = 0, 1, 2
STATUS_NAMES = ("UNINITIALIZED", "INITIALIZED", "ERROR")

# Caller program counter.
IDLE = 0  # not loaded (or its load failed / it unloaded)
CHECKED = 1  # checked the packages, has not taken cpus_read_lock yet (only with that bug)
ENABLING = 2  # IPIs its CPUs; calls tdx_enable once no CPU is left to visit
IN_IPI = 3  # its tdx_cpu_enable is pending on some CPU (a frame on that CPU)
IN_TDX = 4  # holds the tdx_enable mutex and runs init_tdx_module
LOADED = 5  # tdx_enable returned 0; VMX stays on until unload
FAILED = 6  # tdx_cpu_enable or tdx_enable returned an error; the load unwinds next
HOLDING_CPUS_LOCK = frozenset((ENABLING, IN_IPI, IN_TDX, FAILED))
CALLER_PC_NAMES = ("idle", "checked", "enabling", "in-ipi", "in-tdx-enable", "loaded", "failed")

# Next step of init_tdx_module for the mutex owner.
S_NONE, S_SYSINFO, S_CONSTRUCT, S_CONFIG, S_WBINVD, S_KEYS, S_TDMRS, S_DONE = range(8)
S_ERR_WBINVD, S_ERR_RESET, S_ERR_FREE_PAMTS, S_ERR_FREE = range(8, 12)
STEP_NAMES = ("-", "get_tdx_tdmr_sysinfo", "construct_tdmrs", "config_tdx_module",
              "wbinvd_on_all_cpus", "config_global_keyid", "init_tdmrs", "done",
              "err_reset_pamts: wbinvd", "tdmrs_reset_pamt_all", "tdmrs_free_pamt_all",
              "free_tdmr_list")
# Steps during which init_tdx_module holds the memory-hotplug read lock.
MEMORY_LOCKED_STEPS = frozenset(range(S_SYSINFO, S_ERR_FREE + 1))

# PAMT chunk facts, one bit each.
PAMT_ALLOCATED = 1  # allocated to hold a PAMT and not freed since
PAMT_HANDED = 2  # given to the module by TDH.SYS.CONFIG
PAMT_WRITTEN = 4  # may hold data the module wrote with the global KeyID (not reset since)
PAMT_KERNEL_DIRTY = 8  # caches may hold kernel (KeyID 0) lines of it, not written back
PAMT_GLOBAL_DIRTY = 16  # caches may hold global-KeyID lines of it, not written back
PAMT_FREED = 32  # returned to the page allocator
PAMT_FREED_TWICE = 64  # returned to the page allocator more than once
PAMT_OWNED = 128  # belongs to an initialised module for the rest of the boot
PAMT_BIT_NAMES = ((PAMT_ALLOCATED, "allocated"), (PAMT_HANDED, "handed"),
                  (PAMT_WRITTEN, "module-written"), (PAMT_KERNEL_DIRTY, "kernel-dirty"),
                  (PAMT_GLOBAL_DIRTY, "global-dirty"), (PAMT_FREED, "freed"),
                  (PAMT_FREED_TWICE, "freed-twice"), (PAMT_OWNED, "owned"))

# KEY.CONFIG progress of a CPU within one config_global_keyid run.
KEY_NONE, KEY_IN_FLIGHT, KEY_SENT = 0, 1, 2

MC_PAMT_PAGE, MC_KERNEL_PAGE = "PAMT page", "kernel page"


class Cpu(NamedTuple):
    online: bool
    vmx: int  # bitmask of actors that did VMXON here; the CPU is in VMX operation iff non-zero
    lp_flag: bool  # the kernel's per-CPU tdx_lp_initialized
    lp_done: bool  # TDH.SYS.LP.INIT has succeeded on this CPU (the module's view)
    frames: tuple[int, ...]  # actors whose tdx_cpu_enable awaits LP.INIT here, innermost last
    visited: int  # bitmask of callers whose enable IPI already ran here in their current load
    key: int  # KEY_NONE / KEY_IN_FLIGHT / KEY_SENT in the current config_global_keyid


class Package(NamedTuple):
    key_issues: int  # TDH.SYS.KEY.CONFIG issued on this package this boot (saturating at 2)
    keyed: bool  # a TDH.SYS.KEY.CONFIG succeeded on this package
    cpus: tuple[Cpu, ...]


class Caller(NamedTuple):
    pc: int
    loads_left: int


class State(NamedTuple):
    booted: bool  # tdx_init has run
    hibernation: bool  # the kernel can hibernate (no `nohibernate`)
    tdx_on: bool  # platform_tdx_enabled()
    s3_off: bool  # ACPI S3 disabled by tdx_init
    s3_entered: bool  # the machine went to S3 this boot
    hibernated: bool  # the machine hibernated this boot
    sysinit_done: bool  # try_init_module_global's cached flag
    sysinit_ret: int  # its cached (or last) result
    sysinit_issues: int  # TDH.SYS.INIT issued (saturating at 2)
    status: int  # tdx_module_status
    mutex: int  # actor holding the tdx_enable mutex, -1 if free
    step: int  # next init_tdx_module step of the mutex owner
    init_err: int  # errno init_tdx_module will return while it unwinds
    init_runs: int  # init_tdx_module started (saturating at 2)
    config_issues: int  # TDH.SYS.CONFIG issued (saturating at 2)
    memblock: int  # bitmask of hot blocks that memblock holds
    snapshot: int  # memblock mask the kept tdx_memlist was built from, -1 if empty
    tdmr_list: bool  # the TDMR list is allocated
    tdmr_cursor: int  # TDMR that init_tdmrs works on
    tdmr_done: tuple[int, ...]  # successful TDH.SYS.TDMR.INIT calls per TDMR
    pamt: tuple[int, ...]  # PAMT chunk facts per TDMR
    faults: int  # faults injected so far
    hot: tuple[bool, ...]  # hot block online
    hotplug_busy: bool  # a CPU coming online is running tdx_cpu_enable
    callers: tuple[Caller, ...]  # the last two fields: see `_with_callers`, `_with_packages`
    packages: tuple[Package, ...]


class Shared(tuple):
    """A `packages` or `callers` value as the model hands it out: one object per distinct
    value (see `TdxFlow._share`, `TdxFlow._callers_with`), so it hashes by identity and a
    state's hash skips what is inside. The explorer hashes a state for every step, and the
    CPUs and callers are most of what there is to hash. Equality stays by value."""

    __slots__ = ()
    __hash__ = object.__hash__


class CpuFacts:
    """One distinct `packages` value and what the rules ask about its CPUs, worked out once.

    The model hash-conses `packages`: every value it builds is swapped for one shared tuple
    (`TdxFlow._share`), which this record keeps alive. States number in the tens of thousands
    but their distinct `packages` values in the thousands, so the facts, the sorted form and
    the CPU updates (`derived`) are computed once per value and then found by the tuple's id.
    """

    __slots__ = ("packages", "cpus", "online", "online_cpus", "framed", "vmx_cpu",
                 "package_offline", "canonical", "derived")

    def __init__(self, packages: tuple[Package, ...]) -> None:
        cpus = tuple(enumerate([cpu for package in packages for cpu in package.cpus]))
        self.packages = packages
        self.cpus = cpus  # (flat index, Cpu) for every CPU, in order
        self.online = tuple(i for i, c in cpus if c.online)
        self.online_cpus = tuple(c for _, c in cpus if c.online)
        self.framed = tuple(i for i, c in cpus if c.frames)  # tdx_cpu_enable awaits LP.INIT
        self.vmx_cpu = next((i for i, c in cpus if c.online and c.vmx), None)  # RDMD runs here
        self.package_offline = next((p for p, package in enumerate(packages)  # first one
                                     if not any(c.online for c in package.cpus)), None)
        self.canonical: tuple[Package, ...] | None = None  # the shared sorted form
        # per actor, its IPI targets; per CPU update, the shared packages after it:
        self.derived: dict[object, tuple] = {}


class Step(NamedTuple):
    """One transition's label. `seamcall`/`result` are None for steps that issue none."""

    action: str
    actor: str
    cpu: int | None = None
    seamcall: str | None = None
    result: str | None = None
    injected: bool = False
    detail: str = ""


@dataclass(frozen=True)
class FlowConfig:
    """What the explorer lets happen: the machine, the callers, the environment, the faults."""

    name: str = "custom"
    platform: Platform = Platform()
    caller_loads: tuple[int, ...] = (1, 1)  # callers, and how often each may load
    fault_budget: int = 1
    boot_hibernation: tuple[bool, ...] = (False, True)  # boot choices: hibernation available
    cpu_hotplug: bool = True
    memory_hotplug: bool = True
    sleep_requests: bool = True  # S3 and hibernation requests
    machine_checks: bool = True
    alloc_faults: bool = True  # alloc_contig_pages may fail (counts against the budget)
    callers_check_packages: bool = True  # callers refuse to start with a package offline

    def __post_init__(self) -> None:
        if not self.caller_loads or len(self.caller_loads) > 4:
            raise ValueError("between one and four callers")
        if self.fault_budget < 0:
            raise ValueError("fault budget must be >= 0")


# Labels of steps that are always the same.
_SUSPEND = Step("suspend", "environment", result="entered S3")
_SUSPEND_REFUSED = Step("suspend", "environment", result="refused: ACPI S3 disabled")
_HIBERNATE = Step("hibernate", "environment", result="hibernated")
_HIBERNATE_REFUSED = Step("hibernate", "environment", result="refused: nohibernate")

_FIELD_INDEX = {cls: {name: i for i, name in enumerate(cls._fields)}
                for cls in (Cpu, Package, Caller, State, Step)}


_STATE_INDEX = _FIELD_INDEX[State]
_STATE_INDEXES = range(len(State._fields))


def _set(record, **changes):
    """`record._replace(**changes)` without NamedTuple's generic machinery: the explorer builds
    states by the hundred thousand, and this is about twice as fast."""
    values = list(record)
    index = _FIELD_INDEX[type(record)]
    for name, value in changes.items():
        values[index[name]] = value
    return tuple.__new__(type(record), values)


def _with_packages(state: State, packages: tuple[Package, ...]) -> State:
    """`_set(state, packages=packages)` for the most frequent update (`packages` is the last
    field)."""
    return tuple.__new__(State, state[:-1] + (packages,))


def _with_callers(state: State, callers: tuple[Caller, ...]) -> State:
    """`_set(state, callers=callers)` for the next most frequent one (the last but one)."""
    return tuple.__new__(State, state[:-2] + (callers, state[-1]))


def _bit(actor: int) -> int:
    return 1 << actor


def _sat(count: int) -> int:
    return min(count + 1, 2)


class TdxFlow:
    """The transition system for one profile and configuration.

    The model surface the explorer uses: `initial_states`, `successors`, `canonical`,
    `state_fields`, `describe`.

    Built for speed, as the explorer asks for the steps out of every reachable state: the
    `packages` and `callers` values are shared objects (`Shared`, `CpuFacts`), and the
    frequent rules are replayed from records keyed on what they read and write
    (`_replayed`). Neither changes a result; `replay=False` and the tests show it.
    """

    def __init__(self, profile: Profile = V6_8, config: FlowConfig = FlowConfig(),
                 replay: bool = True) -> None:
        """`replay=False` computes every step afresh instead of replaying recorded ones
        (`_replayed`): slower, for checking that replaying changes nothing."""
        self.profile = profile
        self.config = config
        self.replay = replay
        self.platform = config.platform
        self.ncallers = len(config.caller_loads)
        self.hotplug_actor = self.ncallers  # the CPU-online callback, an actor of its own
        self.cpp = self.platform.cpus_per_package
        self.name = f"{profile.name}/{config.name}"
        self._actor_names = tuple(f"caller {a}" for a in range(self.ncallers)) + ("cpu hotplug",)
        # Memo tables (values depend only on their keys, so they never change a result):
        self._shared: dict[tuple, CpuFacts] = {}  # packages value -> its shared tuple's facts
        self._facts: dict[int, CpuFacts] = {}  # id of a shared packages tuple -> its facts
        self._last_facts = CpuFacts(())  # the facts asked for last
        self._last_canonical: tuple = ()  # the sorted packages `canonical` gave last
        self._callers: dict[tuple, tuple] = {}  # callers value -> its shared tuple
        self._caller_updates: dict[tuple, tuple] = {}  # (callers, actor, entry) -> shared
        self._cpus_locked: dict[tuple, bool] = {}  # callers -> some caller holds the lock
        self._loaded_callers: dict[tuple, tuple[int, ...]] = {}  # callers -> loaded actors
        self._layouts: dict[int, TdmrLayout] = {}  # memblock mask -> TDMR layout
        self._notifier_answers: dict[tuple[int, int], bool] = {}
        # Steps replayed by `_replayed`, keyed on everything their rules read or write:
        self._ipi_steps: dict[tuple, tuple] = {}  # a caller's enable IPIs
        self._load_steps: dict[tuple, tuple] = {}  # a caller's load start or unload
        self._lp_init_steps: dict[tuple, tuple] = {}  # pending TDH.SYS.LP.INITs
        self._hotplug_steps: dict[tuple, tuple] = {}  # CPUs going offline or online
        self._event_steps: dict[tuple, tuple] = {}  # memory, sleep and machine-check events
        self._init_module_steps: dict[tuple, tuple] = {}  # the next init_tdx_module step
        self._labels: dict[tuple, Step] = {}

    # ----- model surface -------------------------------------------------------------------

    def describe(self) -> dict:
        return {"model": "spec.flow.TdxFlow", "profile": self.profile.name,
                "config": self.config.name, "platform": self.platform.shape,
                "fault_budget": self.config.fault_budget}

    def initial_states(self) -> list[State]:
        """Before tdx_init: all CPUs online, nothing enabled; one state per boot choice."""
        cpu = Cpu(True, 0, False, False, (), 0, KEY_NONE)
        package = Package(0, False, (cpu,) * self.cpp)
        callers = self._shared_callers(tuple(Caller(IDLE, loads)
                                             for loads in self.config.caller_loads))
        hot = (False,) * len(self.platform.hot_blocks)
        packages = self._share((package,) * self.platform.packages).packages
        return [State(False, hib, False, False, False, False, False, 0, 0, UNINITIALIZED, -1,
                      S_NONE, 0, 0, 0, 0, -1, False, 0, (), (), 0, hot, False, callers, packages)
                for hib in self.config.boot_hibernation]

    def successors(self, state: State) -> list[tuple[Step, State]]:
        if not state.booted:
            return [self.tdx_init(state)]
        out: list[tuple[Step, State]] = []
        for actor, caller in enumerate(state.callers):
            # callers waiting for their IPI or the module, or done, have no step
            if caller.pc not in (IN_IPI, IN_TDX) and (caller.pc != IDLE or caller.loads_left):
                self._caller_steps(state, actor, out)
        facts = self.cpu_facts(state)
        if facts.framed:
            key = (facts, state.callers, state.faults, state.hotplug_busy)
            self._replayed(self._lp_init_steps, key, state, out, self._frame_steps)
        if state.mutex >= 0 and state.callers[state.mutex].pc == IN_TDX:
            self._replayed(self._init_module_steps, self._init_reads(state, facts), state, out,
                           self._init_steps)
        self._environment_steps(state, out)
        return out

    def canonical(self, state: State) -> State:
        """Sort CPUs within each package and packages among themselves.

        Only `packages` is permuted, and its sorted form is worked out once per distinct value
        (see `CpuFacts`); a state that already holds it is returned as it is.
        """
        if state.packages is self._last_canonical:  # most steps leave the CPUs alone
            return state
        facts = self.packages_facts(state.packages)
        packages = facts.canonical
        if packages is None:
            packages = self._share(tuple(sorted(
                Package(p.key_issues, p.keyed, tuple(sorted(p.cpus))) for p in facts.packages
            ))).packages
            facts.canonical = self._facts[id(packages)].canonical = packages
        self._last_canonical = packages
        return state if packages is state.packages else _with_packages(state, packages)

    def state_fields(self, state: State) -> dict[str, str]:
        """A flat, readable view of a state, for trace diffs and graph labels."""
        fields = {
            "platform": "on" if state.tdx_on else ("off" if state.booted else "not booted"),
            "hibernation": str(state.hibernation), "s3": "off" if state.s3_off else "on",
            "slept": ",".join(n for n, f in (("S3", state.s3_entered),
                                             ("hibernate", state.hibernated)) if f) or "-",
            "sysinit": (f"done ({state.sysinit_ret})" if state.sysinit_done else "not done")
            + f", issued {state.sysinit_issues}",
            "status": STATUS_NAMES[state.status],
            "mutex": self.actor_name(state.mutex) if state.mutex >= 0 else "free",
            "init step": STEP_NAMES[state.step], "init runs": str(state.init_runs),
            "init error": str(state.init_err), "config issued": str(state.config_issues),
            "snapshot": "empty" if state.snapshot < 0 else f"memblock {state.snapshot:#x}",
            "tdmr list": "kept" if state.tdmr_list else "none",
            "tdmr init": ",".join(map(str, state.tdmr_done)) or "-",
            "faults": str(state.faults), "hotplug busy": str(state.hotplug_busy),
        }
        for i, chunk in enumerate(state.pamt):
            fields[f"pamt[{i}]"] = pamt_describe(chunk)
        for i, online in enumerate(state.hot):
            fields[f"hot block {i}"] = "online" if online else "offline"
        for i, caller in enumerate(state.callers):
            fields[self.actor_name(i)] = f"{CALLER_PC_NAMES[caller.pc]}, {caller.loads_left} " \
                                         "loads left"
        for p, package in enumerate(state.packages):
            fields[f"package {p} key"] = f"issued {package.key_issues}, " \
                                         f"{'keyed' if package.keyed else 'unkeyed'}"
            for k, cpu in enumerate(package.cpus):
                fields[f"cpu {p * self.cpp + k}"] = self._cpu_text(cpu)
        return fields

    def actor_name(self, actor: int) -> str:
        return self._actor_names[actor]

    def _cpu_text(self, cpu: Cpu) -> str:
        words = ["online" if cpu.online else "offline"]
        if cpu.vmx:
            words.append(f"vmx {cpu.vmx:#x}")
        if cpu.lp_flag:
            words.append("lp-flag")
        if cpu.lp_done:
            words.append("lp-init")
        if cpu.frames:
            words.append("frames " + "/".join(self.actor_name(a) for a in cpu.frames))
        if cpu.visited:
            words.append(f"visited {cpu.visited:#x}")
        if cpu.key:
            words.append(("", "key in flight", "key sent")[cpu.key])
        return " ".join(words)

    # ----- helpers over states -------------------------------------------------------------

    def layout(self, state: State, mask: int | None = None) -> TdmrLayout:
        """The TDMR layout of the snapshot (or of memblock mask `mask`)."""
        if mask is None:
            mask = state.snapshot if state.snapshot >= 0 else state.memblock
        layout = self._layouts.get(mask)
        if layout is None:
            layout = self._layouts[mask] = tdx_layout(self.platform, self.profile, mask)
        return layout

    def cpu(self, state: State, index: int) -> Cpu:
        return state.packages[index // self.cpp].cpus[index % self.cpp]

    def cpu_facts(self, state: State) -> CpuFacts:
        """The facts of the state's `packages` (found by id when it is the shared tuple, as
        every `packages` the model builds is)."""
        packages = state.packages
        facts = self._last_facts  # the successors of one state ask again and again
        if facts.packages is packages:
            return facts
        facts = self._last_facts = self.packages_facts(packages)
        return facts

    def packages_facts(self, packages: tuple[Package, ...]) -> CpuFacts:
        """The facts of a `packages` value."""
        facts = self._facts.get(id(packages))
        if facts is None or facts.packages is not packages:
            facts = self._share(packages)
        return facts

    def _share(self, packages: tuple[Package, ...]) -> CpuFacts:
        """The facts of the one shared tuple equal to `packages` (made now if it is new)."""
        if type(packages) is not tuple:
            packages = tuple(packages)  # `_shared` is keyed by value
        facts = self._shared.get(packages)
        if facts is None:
            shared = tuple.__new__(Shared, packages)
            facts = self._shared[packages] = self._facts[id(shared)] = CpuFacts(shared)
        return facts

    def cpus(self, state: State) -> tuple[tuple[int, Cpu], ...]:
        """(flat index, Cpu) for every CPU, in the state's order."""
        return self.cpu_facts(state).cpus

    def online_cpus(self, state: State) -> tuple[int, ...]:
        return self.cpu_facts(state).online

    def _loaded(self, callers: tuple[Caller, ...]) -> tuple[int, ...]:
        """The callers whose load succeeded (memoised: few distinct callers values)."""
        loaded = self._loaded_callers.get(callers)
        if loaded is None:
            loaded = self._loaded_callers[callers] = tuple(
                a for a, c in enumerate(callers) if c.pc == LOADED)
        return loaded

    def cpus_read_locked(self, state: State) -> bool:
        """A caller holds cpus_read_lock (so no CPU can come or go)."""
        locked = self._cpus_locked.get(state.callers)  # few distinct callers values
        if locked is None:
            locked = self._cpus_locked[state.callers] = self.profile.caller_holds_cpus_lock \
                and any(caller.pc in HOLDING_CPUS_LOCK for caller in state.callers)
        return locked

    def memory_locked(self, state: State) -> bool:
        """init_tdx_module holds get_online_mems()."""
        return state.mutex >= 0 and state.step in MEMORY_LOCKED_STEPS

    def snapshot_memlist(self, snapshot: int):
        """The TDX memory list kept for snapshot `snapshot` (a memblock mask; -1: none)."""
        return self.layout(None, snapshot).memlist if snapshot >= 0 else ()

    def online_memory(self, hot: tuple[bool, ...]):
        """Memory the page allocator may hand out: boot memory above 1 MiB and the hot blocks
        whose flag in `hot` is set."""
        ranges = [r for r in self.platform.regions if r.end > SZ_1M]
        ranges += [b for b, on in zip(self.platform.hot_blocks, hot, strict=True) if on]
        return [(max(r.start, SZ_1M), r.end) for r in ranges]

    def page_owned_by_module(self, pamt: tuple[int, ...], page: str) -> bool:
        """The page is a PAMT page of an initialised module (given a state's `pamt`)."""
        if page != MC_PAMT_PAGE or not pamt:
            return False
        return bool(pamt[0] & PAMT_OWNED)

    # ----- small state surgery -------------------------------------------------------------

    def _label(self, action: str, actor: str, cpu: int | None = None, seamcall: str | None = None,
               result: str | None = None, injected: bool = False, detail: str = "") -> Step:
        """`Step(...)`, one shared object per distinct label: a run stores a label for every
        state, and most are repeats."""
        key = (action, actor, cpu, seamcall, result, injected, detail)
        label = self._labels.get(key)
        if label is None:
            label = self._labels[key] = Step(*key)
        return label

    def _with_cpu(self, state: State, index: int, cpu: Cpu) -> State:
        return _with_packages(state, self._packages_with_cpu(state, index, cpu))

    def _packages_with_cpu(self, state: State, index: int, cpu: Cpu) -> tuple[Package, ...]:
        """The state's (shared) `packages` with CPU `index` replaced by `cpu`, as the shared
        tuple (memoised per packages value)."""
        facts = self.cpu_facts(state)
        key = (index, cpu)
        packages = facts.derived.get(key)
        if packages is None:
            p, k = divmod(index, self.cpp)
            old = facts.packages
            package = old[p]
            package = Package(package.key_issues, package.keyed,
                              package.cpus[:k] + (cpu,) + package.cpus[k + 1:])
            packages = facts.derived[key] = self._share(
                old[:p] + (package,) + old[p + 1:]).packages
        return packages

    def _with_package(self, state: State, p: int, package: Package) -> State:
        packages = state.packages
        return _with_packages(state, self._share(
            packages[:p] + (package,) + packages[p + 1:]).packages)

    def _mapped_packages(self, state: State, update: tuple, fn) -> tuple[Package, ...]:
        """The state's `packages` with `fn` applied to every CPU (the same tuple when no CPU
        changes). `update` names what `fn` does, for the memo of derived `packages`."""
        facts = self.cpu_facts(state)
        packages = facts.derived.get(update)
        if packages is None:
            packages = tuple([_map_package(package, fn) for package in facts.packages])
            packages = facts.packages if packages == facts.packages else \
                self._share(packages).packages
            facts.derived[update] = packages
        return packages

    def _with_caller(self, state: State, actor: int, pc: int | None = None,
                     loads_left: int | None = None) -> State:
        """The state with this caller's `pc` and/or `loads_left` changed (None: unchanged)."""
        caller = state.callers[actor]
        caller = tuple.__new__(Caller, (caller.pc if pc is None else pc,
                                        caller.loads_left if loads_left is None else loads_left))
        return _with_callers(state, self._callers_with(state.callers, actor, caller))

    def _callers_with(self, callers: tuple[Caller, ...], actor: int, caller: Caller) \
            -> tuple[Caller, ...]:
        """`callers` with this actor's entry replaced, as the shared tuple (memoised)."""
        key = (callers, actor, caller)
        after = self._caller_updates.get(key)
        if after is None:
            after = self._caller_updates[key] = self._shared_callers(
                callers[:actor] + (caller,) + callers[actor + 1:])
        return after

    def _shared_callers(self, callers: tuple[Caller, ...]) -> tuple[Caller, ...]:
        """The one shared tuple equal to `callers`."""
        if type(callers) is not tuple:
            callers = tuple(callers)
        shared = self._callers.get(callers)
        if shared is None:
            shared = self._callers[callers] = tuple.__new__(Shared, callers)
        return shared

    def _update(self, state: State, cpu: tuple[int, Cpu] | None = None,
                caller: tuple[int, Caller] | None = None, **changes) -> State:
        """The state with fields, one CPU and/or one caller changed, built in one go (a step
        often changes all three, and states are built by the hundred thousand)."""
        values = list(state)
        for name, value in changes.items():
            values[_STATE_INDEX[name]] = value
        if cpu is not None:
            values[-1] = self._packages_with_cpu(state, *cpu)
        if caller is not None:
            values[-2] = self._callers_with(state.callers, *caller)
        return tuple.__new__(State, values)

    def _replayed(self, memo: dict, key: tuple, state: State, out: list, rule, *args) -> None:
        """Append the steps `rule(state, out, *args)` appends, replaying them from `memo`.

        `key` holds every part of the state the rule reads or writes, so the steps out of two
        states with one key differ only in the fields the steps leave alone: what the rule
        changes is recorded once, as (field index, new value) pairs, and replayed onto each
        state. (A field the rule writes must be in the key even when it does not read it:
        the recorded state may have held the value written already, which then is no change.)
        This is the model's hot path: most states repeat the key of an earlier one.
        """
        if not self.replay:
            rule(state, out, *args)
            return
        changes = memo.get(key)
        if changes is None:
            steps: list[tuple[Step, State]] = []
            rule(state, steps, *args)
            changes = memo[key] = tuple([(label, _changes(state, after))
                                         for label, after in steps])
        for label, fields in changes:
            if fields is None:
                out.append((label, state))
                continue
            values = list(state)
            for index, value in fields:
                values[index] = value
            out.append((label, tuple.__new__(State, values)))

    def _outcomes(self, state: State, cpus: list[int], leaf: str) -> list[tuple[str, bool]]:
        """(outcome, injected) choices for a SEAMCALL that may run on any CPU in `cpus`."""
        return self._outcomes_on(state, [self.cpu(state, i) for i in cpus], leaf)

    def _outcomes_on(self, state: State, cpu_objs: list[Cpu], leaf: str) \
            -> list[tuple[str, bool]]:
        """(outcome, injected) choices for a SEAMCALL that may run on any of these CPUs.

        A CPU outside VMX operation gives #UD; one without LP.INIT makes the module refuse
        anything but TDH.SYS.INIT and TDH.SYS.LP.INIT. Those follow from the state; the
        injected faults come from the budget.
        """
        forced: list[tuple[str, bool]] = []
        if any(not c.vmx for c in cpu_objs):
            forced.append((UD, False))
        if leaf not in (TDH_SYS_INIT, TDH_SYS_LP_INIT) and any(
                c.vmx and not c.lp_done for c in cpu_objs):
            forced.append((MODULE_ERROR, False))
        if len(cpu_objs) == 1 and forced:
            return forced[:1]
        return self._with_faults(state, [(SUCCESS, False)] + forced)

    def _with_faults(self, state: State, base: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
        if state.faults < self.config.fault_budget:
            seen = {o for o, _ in base}
            return base + [(o, True) for o in INJECTABLE if o not in seen]
        return base

    def _fault(self, state: State, injected: bool) -> State:
        return _set(state, faults=state.faults + 1) if injected else state

    # ----- boot ----------------------------------------------------------------------------

    def tdx_init(self, state: State) -> tuple[Step, State]:
        """`tdx_init`: too few KeyIDs or hibernation available leave TDX off; otherwise S3 is
        disabled, the notifier registered and the platform marked TDX-capable."""
        keyids = self.platform.private_keyids
        booted = _set(state, booted=True)
        if keyids < 2:
            result = "off: too few private KeyIDs available" if keyids else "off: no TDX KeyIDs"
            return self._label("tdx_init", "boot", result=result), booted
        if state.hibernation and self.profile.tdx_init_refuses_hibernation:
            return (self._label("tdx_init", "boot", result="off: Hibernation support is enabled"),
                    booted)
        s3_off = self.profile.tdx_init_disables_s3
        detail = "memory notifier registered" + (", ACPI S3 disabled" if s3_off else "")
        return (self._label("tdx_init", "boot", result="platform TDX-capable", detail=detail),
                _set(booted, tdx_on=True, s3_off=s3_off))

    # ----- callers -------------------------------------------------------------------------

    def _caller_steps(self, state: State, actor: int, out: list) -> None:
        if state.callers[actor].pc == ENABLING:
            targets = self._ipi_targets(state, actor)
            if not targets:
                self._tdx_enable(state, actor, out)
            else:
                key = (actor, self.cpu_facts(state), state.callers, state.tdx_on,
                       state.sysinit_done, state.sysinit_ret, state.sysinit_issues, state.faults)
                self._replayed(self._ipi_steps, key, state, out,
                               self._enable_ipis, actor, targets)
        else:  # the other steps read the callers, the CPUs and whether hotplug is busy
            key = (actor, self.cpu_facts(state), state.callers, state.hotplug_busy)
            self._replayed(self._load_steps, key, state, out, self._load_or_unload, actor)

    def _load_or_unload(self, state: State, out: list, actor: int) -> None:
        """A caller starts a load (taking cpus_read_lock) or unloads (VMXOFF)."""
        caller = state.callers[actor]
        name = self._actor_names[actor]
        if caller.pc == IDLE and caller.loads_left:
            # The package check, under cpus_read_lock (v6.8) or before taking it (the bug).
            if not self.profile.package_check_under_hotplug_lock:
                action, then, unlock = "check_packages", CHECKED, ""
            elif not state.hotplug_busy:
                action, then, unlock = "cpus_read_lock", ENABLING, "; cpus_read_unlock"
            else:
                return  # cpus_read_lock waits for the CPU coming online
            started = self._with_caller(state, actor, loads_left=caller.loads_left - 1)
            ok, why = self._packages_online(state)
            if ok:
                out.append((self._label(action, name, result="ok"),
                            self._with_caller(started, actor, pc=then)))
            else:
                out.append((self._label(action, name, result=f"{-EINVAL}", detail=why + unlock),
                            started))
        elif caller.pc == CHECKED and not state.hotplug_busy:
            out.append((self._label("cpus_read_lock", name, result="ok"),
                        self._with_caller(state, actor, pc=ENABLING)))
        elif caller.pc == LOADED and not state.hotplug_busy:
            out.append((self._label("hardware_disable_all", name, detail="unload: VMXOFF"),
                        self._release_vmx(state, actor, pc=IDLE)))
        elif caller.pc == FAILED:
            out.append((self._label("hardware_disable_all", name,
                                    detail="load failed: VMXOFF; cpus_read_unlock"),
                        self._release_vmx(state, actor, pc=IDLE)))

    def _packages_online(self, state: State) -> tuple[bool, str]:
        if not self.config.callers_check_packages:
            return True, ""
        p = self.cpu_facts(state).package_offline
        return (True, "") if p is None else (False, f"package {p} has no online CPU")

    def _ipi_targets(self, state: State, actor: int) -> tuple[int, ...]:
        """Online CPUs this caller has still to IPI (any order; see the module docstring)."""
        facts = self.cpu_facts(state)
        targets = facts.derived.get(actor)
        if targets is None:
            bit = _bit(actor)
            cpus = facts.cpus
            if not self.profile.callers_enable_all_cpus and any(c.visited & bit for _, c in cpus):
                targets = ()
            else:
                targets = tuple(i for i, c in cpus if c.online and not c.visited & bit)
            facts.derived[actor] = targets
        return targets

    def _ipi_deliverable(self, cpu: Cpu, actor: int) -> bool:
        """An IPI waits while the CPU runs KEY.CONFIG or, with interrupts off, another
        caller's tdx_cpu_enable."""
        if cpu.key == KEY_IN_FLIGHT or actor in cpu.frames:
            return False
        return not cpu.frames or not self.profile.cpu_enable_irqs_off

    def _enable_ipis(self, state: State, out: list, actor: int, targets: tuple[int, ...]) -> None:
        for index in targets:
            if self._ipi_deliverable(self.cpu(state, index), actor):
                self._enable_ipi(state, actor, index, out)

    def _enable_ipi(self, state: State, actor: int, index: int, out: list) -> None:
        """The IPI handler on `index`: VMXON, then tdx_cpu_enable up to its LP.INIT."""
        cpu = self.cpu(state, index)
        bit = _bit(actor)
        entered = Cpu(cpu.online, cpu.vmx | bit, cpu.lp_flag, cpu.lp_done, cpu.frames,
                      cpu.visited | bit, cpu.key)
        loads_left = state.callers[actor].loads_left
        for step, cpu, changes, ret in self._tdx_cpu_enable(state, actor, index, entered):
            caller = None
            if ret is None:
                caller = (actor, Caller(IN_IPI, loads_left))
            elif ret:
                caller = (actor, Caller(FAILED, loads_left))
            out.append((step, self._update(state, (index, cpu), caller, **changes)))

    def _tdx_cpu_enable(self, state: State, actor: int, index: int, cpu: Cpu):
        """`tdx_cpu_enable` up to LP.INIT on `index`, whose CPU is now `cpu`: the per-CPU flag
        test and `try_init_module_global`.

        Yields (step, CPU, state field changes, ret): ret None means a frame now waits for
        LP.INIT on `index`.
        """
        name = self.actor_name(actor)
        if not state.tdx_on:
            yield (self._label("tdx_cpu_enable", name, index, result=f"{-ENODEV}"), cpu, {},
                   -ENODEV)
            return
        if cpu.lp_flag:
            yield (self._label("tdx_cpu_enable", name, index, result="0", detail="already done"),
                   cpu, {}, 0)
            return
        if state.sysinit_done:
            choices = [(None, state.sysinit_ret, False, {})]
        else:
            choices = []
            for outcome, injected in self._outcomes_on(state, [cpu], TDH_SYS_INIT):
                ret = seamcall_errno(outcome)
                changes = {"sysinit_done": ret == 0 or self.profile.cache_sysinit_failure,
                           "sysinit_ret": ret, "sysinit_issues": _sat(state.sysinit_issues)}
                if injected:
                    changes["faults"] = state.faults + 1
                choices.append((outcome, ret, injected, changes))
        framed = _set(cpu, frames=cpu.frames + (actor,))
        for outcome, ret, injected, changes in choices:
            seamcall = TDH_SYS_INIT if outcome is not None else None
            detail = "try_init_module_global" + ("" if outcome else ": cached")
            if ret and self.profile.cpu_enable_checks_global_result:
                yield (self._label("tdx_cpu_enable", name, index, seamcall, outcome or f"{ret}",
                                   injected, detail), cpu, changes, ret)
                continue
            yield (self._label("tdx_cpu_enable", name, index, seamcall, outcome or f"{ret}",
                               injected, detail + "; LP.INIT next"), framed, changes, None)

    def _frame_steps(self, state: State, out: list) -> None:
        """TDH.SYS.LP.INIT for the innermost pending tdx_cpu_enable of each CPU."""
        for index in self.cpu_facts(state).framed:
            cpu = self.cpu(state, index)
            actor = cpu.frames[-1]
            name = self.actor_name(actor)
            for outcome, injected in self._outcomes(state, [index], TDH_SYS_LP_INIT):
                ok = outcome == SUCCESS
                done = Cpu(cpu.online, cpu.vmx, cpu.lp_flag or ok, cpu.lp_done or ok,
                           cpu.frames[:-1], cpu.visited, cpu.key)
                changes = {"faults": state.faults + 1} if injected else {}
                step = self._label("tdx_cpu_enable", name, index, TDH_SYS_LP_INIT, outcome,
                                   injected)
                caller = None
                if actor == self.hotplug_actor:
                    changes["hotplug_busy"] = False
                    if not ok:
                        done = _set(done, online=False, vmx=0)
                else:
                    loads_left = state.callers[actor].loads_left
                    caller = (actor, Caller(ENABLING if ok else FAILED, loads_left))
                out.append((step, self._update(state, (index, done), caller, **changes)))

    def _release_vmx(self, state: State, actor: int, pc: int) -> State:
        """VMXOFF for this actor on every CPU (all VMX users at once without refcounting)."""
        bit = _bit(actor)
        refcounted = self.profile.vmx_refcounted

        def leave(cpu: Cpu) -> Cpu:
            vmx = cpu.vmx & ~bit if refcounted or not cpu.vmx & bit else 0
            if vmx == cpu.vmx and not cpu.visited & bit:
                return cpu
            return _set(cpu, vmx=vmx, visited=cpu.visited & ~bit)

        values = list(state)
        values[-1] = self._mapped_packages(state, ("vmxoff", actor), leave)
        caller = tuple.__new__(Caller, (pc, state.callers[actor].loads_left))
        values[-2] = self._callers_with(state.callers, actor, caller)
        return tuple.__new__(State, values)

    def _caller_failed(self, state: State, actor: int) -> State:
        """A call returned an error to this caller; it unwinds its load in its next step."""
        return self._with_caller(state, actor, pc=FAILED)

    def _tdx_enable(self, state: State, actor: int, out: list) -> None:
        """`tdx_enable`: -ENODEV without TDX; then under the mutex, by module status."""
        name = self.actor_name(actor)
        if not state.tdx_on:
            out.append((self._label("tdx_enable", name, result=f"{-ENODEV}"),
                        self._caller_failed(state, actor)))
            return
        if state.mutex >= 0:
            return  # blocked on the mutex
        if state.status == INITIALIZED:
            out.append((self._label("tdx_enable", name, result="0", detail="already initialized"),
                        self._with_caller(state, actor, pc=LOADED)))
            return
        if state.status == ERROR and self.profile.error_is_final:
            out.append((self._label("tdx_enable", name, result=f"{-EINVAL}",
                             detail="module in ERROR state"),
                        self._caller_failed(state, actor)))
            return
        started = _set(
            self._with_caller(state, actor, pc=IN_TDX),
            status=UNINITIALIZED, mutex=actor, step=S_SYSINFO, init_runs=_sat(state.init_runs),
            snapshot=state.memblock, tdmr_cursor=0, init_err=0)
        out.append((self._label("tdx_enable", name, result="init_tdx_module",
                         detail="mutex_lock; get_online_mems; build_tdx_memlist"), started))

    # ----- init_tdx_module -----------------------------------------------------------------

    def _init_reads(self, state: State, facts: CpuFacts) -> tuple:
        """What the next init_tdx_module step reads or writes, besides the profile and the
        configuration: the key it is replayed on (see `_replayed`)."""
        step = state.step
        if step in (S_WBINVD, S_ERR_WBINVD, S_ERR_RESET, S_ERR_FREE_PAMTS):
            reads = (state.pamt,)
        elif step in (S_SYSINFO, S_CONFIG):
            reads = (facts, state.faults, state.init_err, state.config_issues, state.pamt)
        elif step == S_CONSTRUCT:
            reads = (state.snapshot, state.memblock, state.faults, state.init_err,
                     state.tdmr_list, state.tdmr_done, state.tdmr_cursor, state.pamt)
        elif step == S_KEYS:
            reads = (facts, state.init_err, state.faults, state.pamt, state.tdmr_cursor)
        elif step == S_TDMRS:
            reads = (facts, state.snapshot, state.memblock, state.tdmr_cursor, state.tdmr_done,
                     state.pamt, state.faults, state.init_err)
        elif step == S_DONE:
            reads = (state.snapshot, state.memblock, state.pamt, state.callers, state.status,
                     state.tdmr_list)
        else:
            reads = (state.init_err, state.callers, state.status, state.tdmr_list,
                     state.snapshot)
        return (state.mutex, step) + reads

    def _init_steps(self, state: State, out: list) -> None:
        actor = state.mutex
        name = self.actor_name(actor)
        step = state.step
        online = self.online_cpus(state)
        if step == S_SYSINFO:
            for outcome, injected in self._outcomes(state, online, TDH_SYS_RD):
                after = self._fault(state, injected)
                if outcome == SUCCESS:
                    after = _set(after, step=S_CONSTRUCT)
                else:
                    after = self._fail(after, seamcall_errno(outcome), S_ERR_FREE)
                out.append((self._label("get_tdx_tdmr_sysinfo", name, None, TDH_SYS_RD, outcome,
                                 injected), after))
        elif step == S_CONSTRUCT:
            self._construct_tdmrs(state, name, out)
        elif step == S_CONFIG:
            for outcome, injected in self._outcomes(state, online, TDH_SYS_CONFIG):
                after = _set(self._fault(state, injected),
                             config_issues=_sat(state.config_issues))
                if outcome == SUCCESS:
                    after = self._begin_key_config(
                        _set(after, pamt=_pamt_map(after.pamt, lambda c: c | PAMT_HANDED)))
                else:
                    unwind = S_ERR_FREE_PAMTS if self.profile.config_failure_frees_pamts \
                        else S_ERR_FREE
                    after = self._fail(after, seamcall_errno(outcome), unwind)
                out.append((self._label("config_tdx_module", name, None, TDH_SYS_CONFIG, outcome,
                                 injected), after))
        elif step == S_WBINVD:
            out.append((self._label("wbinvd_on_all_cpus", name, detail="config_global_keyid"),
                        _set(state, step=S_KEYS, pamt=_flushed(state.pamt))))
        elif step == S_KEYS:
            self._config_global_keyid(state, out, name)
        elif step == S_TDMRS:
            self._init_tdmr(state, name, online, out)
        elif step == S_DONE:
            self._init_succeeded(state, actor, name, out)
        elif step == S_ERR_WBINVD:
            out.append((self._label("wbinvd_on_all_cpus", name, detail="err_reset_pamts"),
                        _set(state, step=S_ERR_RESET, pamt=_flushed(state.pamt))))
        elif step == S_ERR_RESET:
            reset = _pamt_map(state.pamt, _reset_chunk)
            out.append((self._label("tdmrs_reset_pamt_all", name,
                                    detail="MOVDIR64B over every PAMT"),
                        _set(state, step=S_ERR_FREE_PAMTS, pamt=reset)))
        elif step == S_ERR_FREE_PAMTS:
            freed = tuple(_free_chunk(c) if c & (PAMT_ALLOCATED | PAMT_FREED) else c
                          for c in state.pamt)
            out.append((self._label("tdmrs_free_pamt_all", name),
                        _set(state, step=S_ERR_FREE, pamt=freed)))
        elif step == S_ERR_FREE:
            self._init_failed(state, actor, name, out)

    def _fail(self, state: State, errno: int, unwind: int) -> State:
        return _set(state, step=unwind, init_err=errno)

    def _construct_tdmrs(self, state: State, name: str, out: list) -> None:
        """`alloc_tdmr_list` + `construct_tdmrs`: the engine's answer for this snapshot, or an
        injected allocation failure at some TDMR's PAMT (earlier chunks are freed again)."""
        layout = self.layout(state)
        result = layout.result
        count = len(result.tdmrs)
        allocated = PAMT_ALLOCATED | PAMT_KERNEL_DIRTY
        base = _set(state, tdmr_list=True, tdmr_done=(0,) * count, tdmr_cursor=0)
        if result.ok:
            out.append((self._label("construct_tdmrs", name, result="0",
                             detail=f"{count} TDMRs, {result.pamt_kb} KB of PAMT"),
                        _set(base, step=S_CONFIG, pamt=(allocated,) * count)))
        else:
            freed = layout.chunks_allocated
            pamt = (PAMT_FREED,) * freed + (0,) * (count - freed)
            unwind = S_ERR_FREE
            if freed and not self.profile.construct_failure_skips_pamt_free:
                unwind = S_ERR_FREE_PAMTS
            detail = result.error.message or "PAMT allocation failed"
            out.append((self._label("construct_tdmrs", name, result=f"{result.error.errno}",
                             detail=detail),
                        self._fail(_set(base, pamt=pamt), result.error.errno, unwind)))
        if not (self.config.alloc_faults and state.faults < self.config.fault_budget):
            return
        limit = count if result.ok or result.failed_tdmr is not None else layout.chunks_allocated
        for failing in range(limit):
            pamt = (PAMT_FREED,) * failing + (0,) * (count - failing)
            after = self._fail(_set(self._fault(base, True), pamt=pamt), -ENOMEM, S_ERR_FREE)
            out.append((self._label("construct_tdmrs", name, result=f"{-ENOMEM}", injected=True,
                             detail=f"alloc_contig_pages failed for TDMR {failing}"), after))

    def _begin_key_config(self, state: State) -> State:
        """Start config_global_keyid, with WBINVD first unless the profile skips it."""
        step = S_WBINVD if self.profile.wbinvd_before_key_config else S_KEYS
        return _set(state, step=step)

    def _key_targets(self, state: State) -> list[int]:
        """CPUs config_global_keyid may issue KEY.CONFIG on next (online, not busy)."""
        targets = []
        for p, package in enumerate(state.packages):
            if self.profile.key_config_once_per_package and any(c.key for c in package.cpus):
                continue
            for k, cpu in enumerate(package.cpus):
                if cpu.online and not cpu.key and not cpu.frames:
                    targets.append(p * self.cpp + k)
        return targets

    def _config_global_keyid(self, state: State, out: list, name: str) -> None:
        in_flight = [i for i, c in self.cpus(state) if c.key == KEY_IN_FLIGHT]
        if in_flight:
            for index in in_flight:
                self._key_config_result(state, name, index, out)
            return
        if state.init_err:
            out.append((self._label("config_global_keyid", name, result=f"{state.init_err}"),
                        self._fail(_end_key_config(self, state), state.init_err,
                                   self._late_unwind())))
            return
        targets = self._key_targets(state)
        if not targets:
            out.append((self._label("config_global_keyid", name, result="0",
                             detail="every package with an online CPU configured"),
                        _set(_end_key_config(self, state), step=S_TDMRS, tdmr_cursor=0)))
            return
        if self.profile.key_config_serial:
            for index in targets:
                self._key_config_result(self._issue_key_config(state, [index]), name, index,
                                        out)
            return
        first_per_package: dict[int, int] = {}
        for index in targets:
            first_per_package.setdefault(index // self.cpp, index)
        issued = list(first_per_package.values())
        out.append((self._label("config_global_keyid", name, detail="KEY.CONFIG issued on CPUs "
                         + ",".join(map(str, issued)) + " at once"),
                    self._issue_key_config(state, issued)))

    def _issue_key_config(self, state: State, cpus: list[int]) -> State:
        """KEY.CONFIG issued: from now on the module may write PAMTs with the global KeyID."""
        for index in cpus:
            cpu = self.cpu(state, index)
            state = self._with_cpu(state, index, _set(cpu, key=KEY_IN_FLIGHT))
            p = index // self.cpp
            package = state.packages[p]
            state = self._with_package(state, p, _set(package,
                                                      key_issues=_sat(package.key_issues)))
        return _set(state, pamt=_pamt_map(state.pamt, _module_writes))

    def _key_config_result(self, state: State, name: str, index: int, out: list) -> None:
        """`do_global_key_config` on `index` completes; a package keyed twice is refused."""
        p = index // self.cpp
        package = state.packages[p]
        outcomes = self._outcomes(state, [index], TDH_SYS_KEY_CONFIG)
        if package.keyed:
            outcomes = [(MODULE_ERROR, False)]
        for outcome, injected in outcomes:
            after = self._fault(state, injected)
            cpu = self.cpu(after, index)
            after = self._with_cpu(after, index, _set(cpu, key=KEY_SENT))
            if outcome == SUCCESS:
                after = self._with_package(after, p, _set(after.packages[p], keyed=True))
            elif not after.init_err:
                after = _set(after, init_err=seamcall_errno(outcome))
            if self.profile.key_config_serial and after.init_err:
                after = self._fail(_end_key_config(self, after), after.init_err,
                                   self._late_unwind())
            out.append((self._label("do_global_key_config", name, index, TDH_SYS_KEY_CONFIG,
                                    outcome, injected, f"package {p}"), after))

    def _late_unwind(self) -> int:
        return S_ERR_WBINVD if self.profile.reset_pamts_on_late_failure else S_ERR_FREE_PAMTS

    def _init_tdmr(self, state: State, name: str, online: list[int], out: list) -> None:
        """`init_tdmrs`: TDH.SYS.TDMR.INIT on the current TDMR until it is done."""
        layout = self.layout(state)
        cursor = state.tdmr_cursor
        outcomes = self._outcomes(state, online, TDH_SYS_TDMR_INIT)
        if self.profile.unkeyed_package_fails_init and not all(
                p.keyed for p in state.packages):
            outcomes = [(MODULE_ERROR, False)]
        for outcome, injected in outcomes:
            after = self._fault(state, injected)
            if outcome == SUCCESS:
                done = after.tdmr_done[:cursor] + (after.tdmr_done[cursor] + 1,) \
                    + after.tdmr_done[cursor + 1:]
                pamt = after.pamt[:cursor] + (_module_writes(after.pamt[cursor]),) \
                    + after.pamt[cursor + 1:]
                after = _set(after, tdmr_done=done, pamt=pamt)
                finished = done[cursor] >= layout.tdmr_init_calls[cursor]
                if finished or not self.profile.init_tdmrs_until_done:
                    last = cursor + 1 == len(done)
                    after = _set(after, tdmr_cursor=cursor + 1,
                                           step=S_DONE if last else S_TDMRS)
            else:
                after = self._fail(after, seamcall_errno(outcome), self._late_unwind())
            out.append((self._label("init_tdmr", name, None, TDH_SYS_TDMR_INIT, outcome, injected,
                             f"TDMR {cursor}"), after))

    def _init_succeeded(self, state: State, actor: int, name: str, out: list) -> None:
        layout = self.layout(state)
        owned = _pamt_map(state.pamt, lambda c: c | PAMT_OWNED)
        after = _set(state, status=INITIALIZED, mutex=-1, step=S_NONE, pamt=owned,
                               tdmr_list=self.profile.keep_tdmr_list)
        after = self._with_caller(after, actor, pc=LOADED)
        out.append((self._label("init_tdx_module", name, result="0",
                         detail=f"{layout.result.pamt_kb} KB allocated for PAMT; "
                         "module initialized; put_online_mems; mutex_unlock"), after))

    def _init_failed(self, state: State, actor: int, name: str, out: list) -> None:
        """The end of the unwinding: free the TDMR list and snapshot, then the status."""
        err = state.init_err
        status = ERROR
        if err == -ENODEV and not self.profile.enodev_marks_error:
            status = UNINITIALIZED
        mutex = -1 if self.profile.release_mutex_on_failure else actor
        after = _set(state, status=status, mutex=mutex, step=S_NONE, tdmr_list=False,
                               snapshot=-1)
        after = self._caller_failed(after, actor)
        out.append((self._label("init_tdx_module", name, result=f"{err}",
                         detail=f"free_tdmr_list; free_tdx_memlist; put_online_mems; module "
                         f"initialization failed ({err})"), after))

    # ----- environment ---------------------------------------------------------------------

    def _environment_steps(self, state: State, out: list) -> None:
        config = self.config
        if config.cpu_hotplug and not state.hotplug_busy and not self.cpus_read_locked(state):
            key = (self.cpu_facts(state), self._loaded(state.callers), state.tdx_on,
                   state.sysinit_done, state.sysinit_ret, state.sysinit_issues, state.faults)
            self._replayed(self._hotplug_steps, key, state, out, self._cpu_hotplug)
        # Memory hotplug, sleep requests and machine checks read these fields only:
        key = (state.hot, state.snapshot, state.memblock, self.memory_locked(state),
               state.s3_off, state.s3_entered, state.hibernation, state.hibernated,
               state.tdx_on, state.status, state.tdmr_list, bool(state.pamt),
               self.cpu_facts(state).vmx_cpu)
        self._replayed(self._event_steps, key, state, out, self._other_events)

    def _other_events(self, state: State, out: list) -> None:
        config = self.config
        if config.memory_hotplug and not self.memory_locked(state):
            self._memory_hotplug(state, out)
        if config.sleep_requests:
            self._sleep_requests(state, out)
        if config.machine_checks:
            for page in (MC_PAMT_PAGE, MC_KERNEL_PAGE):
                out.append((self.machine_check(state, page), state))

    def _cpu_hotplug(self, state: State, out: list) -> None:
        online = self.online_cpus(state)
        loaded = self._loaded(state.callers)
        for index, cpu in self.cpus(state):
            if cpu.online and len(online) > 1 and not cpu.frames and cpu.key != KEY_IN_FLIGHT:
                down = Cpu(False, 0, cpu.lp_flag and self.profile.lp_flag_survives_offline,
                           cpu.lp_done, cpu.frames, 0, cpu.key)
                out.append((self._label("cpu_down", "environment", index, result="ok"),
                            self._with_cpu(state, index, down)))
            elif not cpu.online:
                self._cpu_up(state, index, cpu, loaded, out)

    def _cpu_up(self, state: State, index: int, cpu: Cpu, loaded: list[int], out: list) -> None:
        """A CPU comes online; loaded callers' online callbacks VMXON and tdx_cpu_enable it."""
        vmx = 0
        for actor in loaded:
            vmx |= _bit(actor)
        up = Cpu(True, vmx, cpu.lp_flag, cpu.lp_done, cpu.frames, cpu.visited, cpu.key)
        if not loaded:
            out.append((self._label("cpu_up", "environment", index, result="ok"),
                        self._with_cpu(state, index, up)))
            return
        for step, after, changes, ret in self._tdx_cpu_enable(state, self.hotplug_actor, index,
                                                              up):
            step = self._label("cpu_up", step.actor, step.cpu, step.seamcall, step.result,
                               step.injected, "online callback: " + step.detail)
            if ret is None:
                changes = {**changes, "hotplug_busy": True}
            elif ret:
                after = _set(after, online=False, vmx=0)
            out.append((step, self._update(state, (index, after), **changes)))

    def _memory_hotplug(self, state: State, out: list) -> None:
        for b, online in enumerate(state.hot):
            detail = f"block {b}"
            if online:
                hot = state.hot[:b] + (False,) + state.hot[b + 1:]
                out.append((self._label("memory_offline", "environment", detail=detail,
                                        result="ok"), _set(state, hot=hot)))
            elif self._notifier_allows(state.snapshot, b):
                hot = state.hot[:b] + (True,) + state.hot[b + 1:]
                out.append((self._label("memory_online", "environment", detail=detail,
                                        result="ok"),
                            _set(state, hot=hot, memblock=state.memblock | 1 << b)))
            else:
                out.append((self._label("memory_online", "environment", detail=detail,
                                        result="vetoed by tdx_memory_notifier"), state))

    def _notifier_allows(self, snapshot: int, block: int) -> bool:
        """`memory_notifier` for hot block `block` going online, given the snapshot (it
        depends on nothing else, so the answers are memoised)."""
        key = (snapshot, block)
        allowed = self._notifier_answers.get(key)
        if allowed is None:
            memlist = self.layout(None, snapshot).memlist if snapshot >= 0 else ()
            hot = self.platform.hot_blocks[block]
            allowed = memory_notifier(self.profile, memlist, True, hot.start, hot.end)
            self._notifier_answers[key] = allowed
        return allowed

    def _sleep_requests(self, state: State, out: list) -> None:
        if state.s3_off:
            out.append((_SUSPEND_REFUSED, state))
        elif not state.s3_entered:
            out.append((_SUSPEND, _set(state, s3_entered=True)))
        if not state.hibernation:
            out.append((_HIBERNATE_REFUSED, state))
        elif not state.hibernated:
            out.append((_HIBERNATE, _set(state, hibernated=True)))

    def machine_check(self, state: State, page: str) -> Step:
        """`tdx_dump_mce_info`: blame TDX private memory only on erratum parts, when RDMD (on a
        CPU in VMX operation) says the page is module-owned, or reserved and in a PAMT."""
        if not (self.platform.erratum and state.tdx_on):
            return self._label("machine_check", "environment", result="not reported",
                               detail=page)
        rdmd_cpu = self.cpu_facts(state).vmx_cpu
        if rdmd_cpu is None:
            return self._label("machine_check", "environment", result="not reported",
                               detail=f"{page}; RDMD faults (VMX off)")
        ready = state.status == INITIALIZED
        if not ready:
            return self._label("machine_check", "environment", rdmd_cpu, TDH_PHYMEM_PAGE_RDMD,
                               MODULE_ERROR, detail=f"{page}; module not ready: not reported")
        in_pamt = page == MC_PAMT_PAGE and state.tdmr_list and bool(state.pamt)
        verdict = "reported: TDX private memory error" if in_pamt else "not reported"
        page_type = "reserved" if page == MC_PAMT_PAGE else "not assigned"
        return self._label("machine_check", "environment", rdmd_cpu, TDH_PHYMEM_PAGE_RDMD,
                           SUCCESS, detail=f"{page}; RDMD: {page_type}; {verdict}")


def machine_check_reported(step: Step) -> bool:
    return "reported: TDX private memory error" in step.detail


def machine_check_page(step: Step) -> str:
    """Which page a `machine_check` step hit (the first item of its detail)."""
    return step.detail.split(";")[0]


def memory_notifier(profile: Profile, memlist, going_online: bool, start: int,
                    end: int) -> bool:
    """`tdx_memory_notifier` under the profile's rules (v6.8: `spec.memory`)."""
    if not going_online:
        return True
    if not memlist:
        return profile.notifier_allows_when_empty
    if not profile.notifier_checks_whole_range:
        return is_tdx_memory(memlist, start, start + 1)
    return tdx_memory_notifier(memlist, going_online, start, end)


def _changes(state: State, after: State) -> tuple[tuple[int, object], ...] | None:
    """The fields a step changes, as (index, new value); None for a step that changes
    nothing (it stays a self-loop when replayed)."""
    if after is state:
        return None
    moved = compress(_STATE_INDEXES, map(is_not, state, after))  # fields holding new objects
    return tuple([(index, after[index]) for index in moved if state[index] != after[index]])


def _map_package(package: Package, fn) -> Package:
    """`package` with `fn` applied to its CPUs (`package` itself when none changes)."""
    cpus = tuple([fn(c) for c in package.cpus])
    return package if cpus == package.cpus else Package(package.key_issues, package.keyed, cpus)


def _end_key_config(flow: TdxFlow, state: State) -> State:
    """config_global_keyid returns: its package mask (the per-CPU markers) goes away."""
    packages = flow._mapped_packages(state, ("key markers cleared",),
                                     lambda c: _set(c, key=KEY_NONE) if c.key else c)
    return state if packages is state.packages else _with_packages(state, packages)


def pamt_describe(chunk: int) -> str:
    return "+".join(name for bit, name in PAMT_BIT_NAMES if chunk & bit) or "none"


def _pamt_map(pamt: tuple[int, ...], fn) -> tuple[int, ...]:
    """Apply `fn` to every chunk that was allocated (PAMTs are handled all together)."""
    return tuple(fn(c) if c & PAMT_ALLOCATED else c for c in pamt)


def _flushed(pamt: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(c & ~(PAMT_KERNEL_DIRTY | PAMT_GLOBAL_DIRTY) for c in pamt)


def _module_writes(chunk: int) -> int:
    if chunk & PAMT_HANDED:
        return chunk | PAMT_WRITTEN | PAMT_GLOBAL_DIRTY
    return chunk


def _reset_chunk(chunk: int) -> int:
    """MOVDIR64B: memory is clean afterwards, unless dirty global-KeyID lines are still cached
    (their later write-back puts module data back)."""
    if chunk & PAMT_GLOBAL_DIRTY:
        return chunk
    return chunk & ~PAMT_WRITTEN


def _free_chunk(chunk: int) -> int:
    if chunk & PAMT_FREED:
        return chunk | PAMT_FREED_TWICE
    return (chunk & ~PAMT_ALLOCATED) | PAMT_FREED
