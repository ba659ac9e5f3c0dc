"""The v6.8 TDX host flow as a transition system (behaviour notes, sections 4-7).

`TdxFlow.successors` lists every step the kernel, its callers or the environment can take next,
each as a `Step` label naming the kernel function or event, the CPU, the SEAMCALL and its
result. Steps are atomic where another CPU or thread can interleave: a lock section, one
SEAMCALL, one IPI, one unwinding label of `init_tdx_module`. The state records are in
`spec.flow_state`; the machinery that makes the model fast is in `spec.statespace`, so what is
here reads beside tdx.c, function by function.

The kernel calls the TDX module (`spec.module`), which answers every SEAMCALL from its own state:
a call the module refuses comes back with the module's status, as on real hardware.

Modelling choices (each keeps the state space finite or the model symmetric):
- Callers are KVM-like users: take `cpus_read_lock`, check every package has an online CPU,
  IPI every online CPU (VMXON, then `tdx_cpu_enable`), call `tdx_enable`, unlock. They may IPI
  the CPUs in any order (the kernel's `on_each_cpu` runs them in parallel), and
  `config_global_keyid` may take the packages in any order and use any online CPU of a package.
  The kernel's id order is one of these runs; letting all of them happen makes CPU and package
  numbering irrelevant, so sorting CPUs and packages (`canonical`) is an exact reduction.
- SEAMCALLs issued from process context (TDH.SYS.RD, TDH.SYS.CONFIG, TDH.SYS.TDMR.INIT) may run
  on any online CPU, so their `Step.cpu` is None and each online CPU's answer is a choice.
- Faults, while the configuration's budget lasts: a SEAMCALL the module runs may fail (entropy
  exhausted, another module error), or the module may go away for good (VMfailInvalid, #GP);
  each allocation of `init_tdx_module` may fail (-ENOMEM). #UD is never a choice: it happens
  exactly when the CPU is outside VMX operation.
"""

from __future__ import annotations

from dataclasses import dataclass

from spec import module
from spec.errno import EBUSY, EINVAL, ENODEV, ENOMEM, EOPNOTSUPP
from spec.flow_state import (
    CALLER_PC_NAMES,
    CHECKED,
    ENABLING,
    ERROR,
    FAILED,
    HOLDING_CPUS_LOCK,
    IDLE,
    IN_IPI,
    IN_TDX,
    INITCALL,
    INITIALIZED,
    KEY_IN_FLIGHT,
    KEY_NONE,
    KEY_SENT,
    LOADED,
    MC_KERNEL_PAGE,
    MC_PAMT_PAGE,
    PAMT_ALLOCATED,
    PAMT_FREED,
    PAMT_FREED_TWICE,
    PAMT_GLOBAL_DIRTY,
    PAMT_HANDED,
    PAMT_KERNEL_DIRTY,
    PAMT_WRITTEN,
    RES_BAD_FREE,
    RES_CONFIG_BUF,
    RES_CPUMASK,
    RES_MEMLIST_PARTIAL,
    RES_MEMS_LOCK,
    RES_TDMR_LIST,
    S_CONFIG,
    S_CONSTRUCT,
    S_DONE,
    S_ERR_FREE_MEMLIST,
    S_ERR_FREE_PAMTS,
    S_ERR_FREE_TDMRS,
    S_ERR_RESET,
    S_ERR_WBINVD,
    S_FEATURES,
    S_KEYS,
    S_KEYS_BEGIN,
    S_MEMLIST,
    S_NONE,
    S_OUT,
    S_RETURN,
    S_SYSINFO,
    S_TDMR_LIST,
    S_TDMRS,
    STATUS_NAMES,
    STEP_NAMES,
    UNINITIALIZED,
    UPDATE_NAMES,
    UPDATE_NONE,
    UPDATE_RUNNING,
    Caller,
    Cpu,
    Package,
    State,
    Step,
    pamt_describe,
    resources_describe,
)
from spec.memory import SZ_1M, is_tdx_memory, tdx_memory_notifier
from spec.platform import Platform, TdmrLayout, tdx_layout
from spec.profiles import V6_8, Profile
from spec.seamcall import (
    CPU_FAULTS,
    GP,
    INJECTABLE,
    SUCCESS,
    TDH_PHYMEM_PAGE_RDMD,
    TDH_SYS_CONFIG,
    TDH_SYS_INIT,
    TDH_SYS_KEY_CONFIG,
    TDH_SYS_LP_INIT,
    TDH_SYS_RD,
    TDH_SYS_TDMR_INIT,
    UD,
    VMFAIL_INVALID,
    seamcall_errno,
)
from spec.seamldr import UPDATER, ModuleUpdate
from spec.statespace import StateSpace, set_fields


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
    alloc_faults: bool = True  # init_tdx_module's allocations may fail (count against the budget)
    callers_check_packages: bool = True  # callers refuse to start with a package offline
    module_update: bool = True  # userspace may ask once for a runtime update (v7.2)

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
_BLOCK = "block "  # a memory hotplug step's detail: this, then the hot block's number


def _bit(actor: int) -> int:
    return 1 << actor


def _sat(count: int) -> int:
    return min(count + 1, 2)


def step_errno(step: Step) -> int:
    """The errno a step's own operation came back with: its SEAMCALL's, or the value the
    kernel function it stands for returned (0 for steps that return nothing)."""
    if step.seamcall is not None:
        return seamcall_errno(step.result)
    try:
        return int(step.result) if step.result else 0
    except ValueError:
        return 0


class TdxFlow(ModuleUpdate, StateSpace):
    """The transition system for one profile and configuration.

    The model surface the explorer uses: `initial_states`, `successors`, `canonical`,
    `state_fields`, `describe`.
    """

    def __init__(self, profile: Profile = V6_8, config: FlowConfig = FlowConfig(),
                 replay: bool = True) -> None:
        """`replay=False` computes every step afresh instead of replaying recorded ones
        (`StateSpace._replayed`): slower, for checking that replaying changes nothing."""
        super().__init__()
        self.profile = profile
        self.config = config
        self.replay = replay
        self.platform = config.platform
        self.ncallers = len(config.caller_loads)
        self.hotplug_actor = self.ncallers  # the CPU-online callback, an actor of its own
        self.update_actor = self.ncallers + 1  # the runtime update's stop_machine (v7.2)
        self.cpp = self.platform.cpus_per_package
        self.name = f"{profile.name}/{config.name}"
        self._actor_names = tuple(f"caller {a}" for a in range(self.ncallers)) + (
            "cpu hotplug", UPDATER)
        # Which CPU caches may hold TDX lines is followed only where something reads it.
        self.tracks_caches = profile.kexec_enabled or profile.marks_cache_incoherent
        self._cpus_locked: dict[tuple, bool] = {}  # callers -> some caller holds the lock
        self._loaded_callers: dict[tuple, tuple[int, ...]] = {}  # callers -> VMX holders
        self._layouts: dict[int, TdmrLayout] = {}  # memblock mask -> TDMR layout
        self._notifier_answers: dict[tuple[int, int], bool] = {}
        # Steps replayed by `_replayed`, keyed on everything their rules read or write:
        self._ipi_steps: dict[tuple, tuple] = {}  # a caller's enable IPIs
        self._load_steps: dict[tuple, tuple] = {}  # a caller's load start or unload
        self._lp_init_steps: dict[tuple, tuple] = {}  # pending TDH.SYS.LP.INITs
        self._hotplug_steps: dict[tuple, tuple] = {}  # CPUs going offline or online
        self._event_steps: dict[tuple, tuple] = {}  # memory, sleep and machine-check events
        self._init_module_steps: dict[tuple, tuple] = {}  # the next init_tdx_module step

    def memo_tables(self) -> list[dict]:
        return super().memo_tables() + [
            self._cpus_locked, self._loaded_callers, self._ipi_steps, self._load_steps,
            self._lp_init_steps, self._hotplug_steps, self._event_steps,
            self._init_module_steps]

    # ----- model surface -------------------------------------------------------------------

    def describe(self) -> dict:
        return {"model": "spec.flow.TdxFlow", "profile": self.profile.name,
                "config": self.config.name, "platform": self.platform.shape,
                "fault_budget": self.config.fault_budget}

    def initial_states(self) -> list[State]:
        """Before tdx_init: all CPUs online, nothing enabled; one state per boot choice."""
        cpu = Cpu(True, 0, False, False, (), 0, KEY_NONE, False, False)
        package = Package(False, (cpu,) * self.cpp)
        callers = self._shared_callers(tuple(Caller(IDLE, loads)
                                             for loads in self.config.caller_loads))
        hot = (False,) * len(self.platform.hot_blocks)
        packages = self._share((package,) * self.platform.packages).packages
        return [State(False, hib, False, False, False, False, False, 0, 0,
                      module.SYSINIT_PENDING, UNINITIALIZED, -1, S_NONE, 0, 0, 0, 0, -1, 0, 0,
                      (), (), 0, hot, False, False, 0, UPDATE_NONE, callers, packages)
                for hib in self.config.boot_hibernation]

    def successors(self, state: State) -> list[tuple[Step, State]]:
        if not state.booted:
            return [self.tdx_init(state)]
        if state.kexeced:
            return []  # the next kernel runs: nothing of this boot happens any more
        out: list[tuple[Step, State]] = []
        if state.update in UPDATE_RUNNING:  # stop_machine: only the update's work runs
            self._update_steps(state, out)
            if self.tracks_caches:
                self._note_cache_lines(out)
            return out
        booting = self.profile.init_at_boot and self._boot_init_running(state)
        for actor, caller in enumerate(state.callers):
            # callers waiting for their IPI or the module, or done, have no step; while the
            # initcall runs (v7.1), nothing else does
            if caller.pc not in (IN_IPI, IN_TDX) and (caller.pc != IDLE or caller.loads_left) \
                    and not (booting and actor != INITCALL):
                self._caller_steps(state, actor, out)
        facts = self.cpu_facts(state)
        if facts.framed:
            key = (facts, state.callers, state.faults, state.hotplug_busy, state.module)
            self._replayed(self._lp_init_steps, key, state, out, self._frame_steps)
        if state.mutex >= 0 and state.callers[state.mutex].pc == IN_TDX:
            start = len(out)
            self._replayed(self._init_module_steps, self._init_reads(state, facts), state, out,
                           self._init_steps)
            _note_first_error(out, start)
        if not booting:
            self._environment_steps(state, out)
            if self.profile.runtime_update and self.config.module_update:
                self._update_request(state, out)
        if self.tracks_caches:
            self._note_cache_lines(out)
        return out

    def state_fields(self, state: State) -> dict[str, str]:
        """A flat, readable view of a state, for trace diffs and graph labels."""
        fields = {
            "platform": "on" if state.tdx_on else ("off" if state.booted else "not booted"),
            "hibernation": str(state.hibernation), "s3": "off" if state.s3_off else "on",
            "slept": ",".join(n for n, f in (("S3", state.s3_entered),
                                             ("hibernate", state.hibernated)) if f) or "-",
            "sysinit": (f"done ({state.sysinit_ret})" if state.sysinit_done else "not done")
            + f", issued {state.sysinit_issues}",
            "module": module.STATE_NAMES[state.module],
            "status": STATUS_NAMES[state.status],
            "mutex": self.actor_name(state.mutex) if state.mutex >= 0 else "free",
            "init step": STEP_NAMES[state.step], "init runs": str(state.init_runs),
            "init error": str(state.init_err), "first error": str(state.first_err),
            "snapshot": "empty" if state.snapshot < 0 else f"memblock {state.snapshot:#x}",
            "allocated": resources_describe(state.resources),
            "tdmr init": ",".join(map(str, state.tdmr_done)) or "-",
            "faults": str(state.faults), "hotplug busy": str(state.hotplug_busy),
            "kexec": "done" if state.kexeced else "-",
            "guest keyids": str(state.guest_keyids),
        }
        if self.profile.runtime_update:
            fields["module update"] = UPDATE_NAMES[state.update]
        for i, chunk in enumerate(state.pamt):
            fields[f"pamt[{i}]"] = pamt_describe(chunk)
        for i, online in enumerate(state.hot):
            fields[f"hot block {i}"] = "online" if online else "offline"
        for i, caller in enumerate(state.callers):
            fields[self.actor_name(i)] = f"{CALLER_PC_NAMES[caller.pc]}, {caller.loads_left} " \
                                         "loads left"
        for p, package in enumerate(state.packages):
            fields[f"package {p} key"] = "keyed" if package.keyed else "unkeyed"
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
        if cpu.lines:
            words.append("tdx-lines")
        if cpu.incoherent:
            words.append("marked-incoherent")
        return " ".join(words)

    # ----- helpers over states -------------------------------------------------------------

    def layout(self, state: State | None, mask: int | None = None) -> TdmrLayout:
        """The TDMR layout of the snapshot (or of memblock mask `mask`)."""
        if mask is None:
            mask = state.snapshot if state.snapshot >= 0 else state.memblock
        layout = self._layouts.get(mask)
        if layout is None:
            layout = self._layouts[mask] = tdx_layout(self.platform, self.profile, mask)
        return layout

    def _vmx_holders(self, callers: tuple[Caller, ...]) -> tuple[int, ...]:
        """The callers whose load succeeded and who keep VMX on every CPU, so their online
        callbacks turn VMX on and run tdx_cpu_enable on a CPU coming online: every loaded
        caller in v6.8, the initcall's CPU-hotplug callbacks from v7.1 (memoised: few
        distinct callers values)."""
        loaded = self._loaded_callers.get(callers)
        if loaded is None:
            loaded = self._loaded_callers[callers] = tuple(
                a for a, c in enumerate(callers) if c.pc == LOADED
                and not (self.profile.init_at_boot and a != INITCALL))
        return loaded

    def _boot_init_running(self, state: State) -> bool:
        """The initcall (`INITCALL`, v7.1) has not finished."""
        initcall = state.callers[INITCALL]
        return initcall.pc not in (LOADED, IDLE) or (initcall.pc == IDLE
                                                     and initcall.loads_left > 0)

    def cpus_read_locked(self, state: State) -> bool:
        """A caller holds cpus_read_lock (so no CPU can come or go)."""
        locked = self._cpus_locked.get(state.callers)  # few distinct callers values
        if locked is None:
            locked = self._cpus_locked[state.callers] = self.profile.caller_holds_cpus_lock \
                and any(caller.pc in HOLDING_CPUS_LOCK for caller in state.callers)
        return locked

    def memory_locked(self, state: State) -> bool:
        """init_tdx_module holds get_online_mems()."""
        return bool(state.resources & RES_MEMS_LOCK)

    def snapshot_memlist(self, snapshot: int):
        """The TDX memory list kept for snapshot `snapshot` (a memblock mask; -1: none)."""
        return self.layout(None, snapshot).memlist if snapshot >= 0 else ()

    def online_memory(self, hot: tuple[bool, ...]):
        """Memory the page allocator may hand out: boot memory above 1 MiB and the hot blocks
        whose flag in `hot` is set."""
        ranges = [r for r in self.platform.regions if r.end > SZ_1M]
        ranges += [b for b, on in zip(self.platform.hot_blocks, hot, strict=True) if on]
        return [(max(r.start, SZ_1M), r.end) for r in ranges]

    # ----- SEAMCALLs -----------------------------------------------------------------------

    def _answer(self, state: State, cpu: Cpu, leaf: str, **facts) -> str:
        """What one SEAMCALL on this CPU gets before any fault: #UD outside VMX operation,
        the lost module's fault, the module's refusal, or success."""
        if not cpu.vmx:
            return UD
        lost = module.lost_outcome(state.module)
        if lost is not None:
            return lost
        refused = module.refusal(leaf, state.module, lp_done=cpu.lp_done,
                                 all_lps_done=self.cpu_facts(state).all_lps_done, **facts)
        return refused or SUCCESS

    def _outcomes(self, state: State, cpus, leaf: str, **facts) -> list[tuple[str, bool]]:
        """(outcome, injected) choices for a SEAMCALL that may run on any of these CPUs: each
        CPU's answer, and the faults the budget allows where the module runs the call."""
        answers: list[str] = []
        for cpu in cpus:
            answer = self._answer(state, cpu, leaf, **facts)
            if answer not in answers:
                answers.append(answer)
        return self._with_faults(state, answers)

    def _with_faults(self, state: State, answers: list[str]) -> list[tuple[str, bool]]:
        choices = [(a, False) for a in sorted(answers, key=lambda a: a != SUCCESS)]
        if SUCCESS in answers and state.faults < self.config.fault_budget:
            choices += [(fault, True) for fault in INJECTABLE]
        return choices

    def _seamcall_changes(self, state: State, leaf: str, outcome: str, injected: bool,
                          all_keyed: bool = False) -> dict:
        """The state fields a SEAMCALL changes besides its caller's own: the fault count, the
        module's global state (`spec.module.state_after`), a module that went away."""
        changes = {}
        if injected:
            changes["faults"] = state.faults + 1
            if outcome in (VMFAIL_INVALID, GP):
                changes["module"] = module.lose(outcome)
        elif outcome == SUCCESS:
            after = module.state_after(leaf, state.module, all_keyed=all_keyed)
            if after != state.module:
                changes["module"] = after
        return changes

    def _alloc_fault_allowed(self, state: State) -> bool:
        return self.config.alloc_faults and state.faults < self.config.fault_budget

    # ----- boot ----------------------------------------------------------------------------

    def tdx_init(self, state: State) -> tuple[Step, State]:
        """`tdx_init`: too few KeyIDs or hibernation available leave TDX off; otherwise S3 is
        disabled, the notifier registered and the platform marked TDX-capable."""
        keyids = self.platform.private_keyids
        booted = set_fields(state, booted=True)
        if keyids < 2:
            result = "off: too few private KeyIDs available" if keyids else "off: no TDX KeyIDs"
            return self._label("tdx_init", "boot", result=result), booted
        if state.hibernation and self.profile.tdx_init_refuses_hibernation:
            return (self._label("tdx_init", "boot", result="off: Hibernation support is enabled"),
                    booted)
        s3_off = self.profile.tdx_init_disables_s3
        detail = "memory notifier registered" + (", ACPI S3 disabled" if s3_off else "")
        return (self._label("tdx_init", "boot", result="platform TDX-capable", detail=detail),
                set_fields(booted, tdx_on=True, s3_off=s3_off))

    # ----- callers -------------------------------------------------------------------------

    def _caller_steps(self, state: State, actor: int, out: list) -> None:
        if state.callers[actor].pc == ENABLING:
            targets = self._ipi_targets(state, actor)
            if not targets:
                self._tdx_enable(state, actor, out)
            else:
                key = (actor, self.cpu_facts(state), state.callers, state.tdx_on,
                       state.sysinit_done, state.sysinit_ret, state.sysinit_issues, state.faults,
                       state.module)
                self._replayed(self._ipi_steps, key, state, out,
                               self._enable_ipis, actor, targets)
        else:  # the other steps read the callers, the CPUs and whether hotplug is busy
            key = (actor, self.cpu_facts(state), state.callers, state.hotplug_busy)
            if self.profile.init_at_boot:  # and what the initcall and KVM ask of TDX
                key += (state.tdx_on, state.status, state.guest_keyids, state.module)
            self._replayed(self._load_steps, key, state, out, self._load_or_unload, actor)

    def _load_or_unload(self, state: State, out: list, actor: int) -> None:
        """A caller starts a load (taking cpus_read_lock) or unloads (VMXOFF)."""
        if self.profile.init_at_boot:
            if actor == INITCALL:
                self._initcall(state, out)
            else:
                self._kvm_uses_tdx(state, out, actor)
            return
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

    def _initcall(self, state: State, out: list) -> None:
        """`tdx_enable` as an initcall (v7.1), run once at boot by `INITCALL`: it registers the
        CPU-hotplug callbacks, whose online callback (VMX on, tdx_cpu_enable) then runs on
        every online CPU (the IPIs), and initialises the module; if that fails, removing the
        callbacks runs the offline callback everywhere (cache flush, VMX off). It never
        unloads."""
        initcall = state.callers[INITCALL]
        name = self._actor_names[INITCALL]
        if initcall.pc == IDLE and initcall.loads_left:
            spent = self._with_caller(state, INITCALL, loads_left=0)
            if not state.tdx_on:
                out.append((self._label("tdx_enable", name, result=f"{-ENODEV}",
                                        detail="TDX not supported by the host platform"),
                            spent))
                return
            out.append((self._label("cpuhp_setup_state", name, result="ok",
                                    detail="online callback on every online CPU"),
                        self._with_caller(spent, INITCALL, pc=ENABLING)))
        elif initcall.pc == FAILED:
            out.append((self._label("cpuhp_remove_state", name,
                                    detail="offline callback on every CPU: VMX off"),
                        self._release_vmx(state, INITCALL, pc=IDLE)))

    def _kvm_uses_tdx(self, state: State, out: list, actor: int) -> None:
        """KVM (v7.1) initialises nothing: it asks `tdx_get_sysinfo` and, with an initialised
        module, creates and destroys TDs, each holding a guest KeyID; it unloads with none. A TD
        is created only with every package online, as its key is configured on each, and only
        while the module serves (its SEAMCALLs fail on one a runtime update shut down)."""
        caller = state.callers[actor]
        name = self._actor_names[actor]
        if caller.pc == IDLE and caller.loads_left:
            spent = self._with_caller(state, actor, loads_left=caller.loads_left - 1)
            if state.status == INITIALIZED:
                out.append((self._label("tdx_get_sysinfo", name, result="module"),
                            self._with_caller(spent, actor, pc=LOADED)))
            else:
                out.append((self._label("tdx_get_sysinfo", name, result="NULL",
                                        detail="TDX not available"), spent))
        elif caller.pc == LOADED and not state.guest_keyids:
            if state.module != module.SYS_READY:
                out.append((self._label("tdx_guest_keyid_alloc", name, result="TD not created",
                                        detail="TDH.MNG.CREATE fails: the module does not "
                                        "serve"), state))
            elif self.cpu_facts(state).package_offline is None:
                out.append((self._label("tdx_guest_keyid_alloc", name, detail="TD created"),
                            set_fields(state, guest_keyids=1)))
            else:  # the TD's key must be configured on every package (TDH.MNG.KEY.CONFIG)
                out.append((self._label("tdx_guest_keyid_alloc", name, result="TD not created",
                                        detail="a package has no online CPU"), state))
            out.append((self._label("kvm_exit", name, detail="unload"),
                        self._with_caller(state, actor, pc=IDLE)))
        elif caller.pc == LOADED:
            out.append((self._label("tdx_guest_keyid_free", name, detail="TD destroyed"),
                        set_fields(state, guest_keyids=0)))

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
                      cpu.visited | bit, cpu.key, cpu.lines, cpu.incoherent)
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
            for outcome, injected in self._outcomes(state, (cpu,), TDH_SYS_INIT):
                ret = seamcall_errno(outcome)
                changes = {"sysinit_done": ret == 0 or self.profile.cache_sysinit_failure,
                           "sysinit_ret": ret, "sysinit_issues": _sat(state.sysinit_issues),
                           **self._seamcall_changes(state, TDH_SYS_INIT, outcome, injected)}
                choices.append((outcome, ret, injected, changes))
        framed = set_fields(cpu, frames=cpu.frames + (actor,))
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
            for outcome, injected in self._outcomes(state, (cpu,), TDH_SYS_LP_INIT):
                ok = outcome == SUCCESS
                done = Cpu(cpu.online, cpu.vmx, cpu.lp_flag or ok, cpu.lp_done or ok,
                           cpu.frames[:-1], cpu.visited, cpu.key, cpu.lines, cpu.incoherent)
                changes = self._seamcall_changes(state, TDH_SYS_LP_INIT, outcome, injected)
                step = self._label("tdx_cpu_enable", name, index, TDH_SYS_LP_INIT, outcome,
                                   injected)
                caller = None
                if actor == self.update_actor:
                    out.append((step, self._lp_init_done(self._update(state, (index, done),
                                                                      **changes), ok)))
                    continue
                if actor == self.hotplug_actor:
                    changes["hotplug_busy"] = False
                    if not ok:
                        done = self._rolled_back(done)
                else:
                    loads_left = state.callers[actor].loads_left
                    caller = (actor, Caller(ENABLING if ok else FAILED, loads_left))
                out.append((step, self._update(state, (index, done), caller, **changes)))

    def _release_vmx(self, state: State, actor: int, pc: int) -> State:
        """VMXOFF for this actor on every CPU (all VMX users at once without refcounting)."""
        bit = _bit(actor)
        refcounted = self.profile.vmx_refcounted

        flush = self.profile.flushes_cache_on_vmx_off

        def leave(cpu: Cpu) -> Cpu:
            vmx = cpu.vmx & ~bit if refcounted or not cpu.vmx & bit else 0
            if vmx == cpu.vmx and not cpu.visited & bit:
                return cpu
            left = set_fields(cpu, vmx=vmx, visited=cpu.visited & ~bit)
            if flush and cpu.vmx & bit and cpu.incoherent:  # tdx_cpu_flush_cache_for_kexec
                left = set_fields(left, lines=False, incoherent=False)
            return left

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
        started = set_fields(
            self._with_caller(state, actor, pc=IN_TDX),
            status=UNINITIALIZED, mutex=actor, init_runs=_sat(state.init_runs),
            step=S_SYSINFO if self.profile.metadata_before_memory else S_MEMLIST,
            tdmr_cursor=0, init_err=0)
        out.append((self._label("tdx_enable", name, result="init_tdx_module",
                                detail="mutex_lock"), started))

    # ----- init_tdx_module -----------------------------------------------------------------

    def _init_reads(self, state: State, facts) -> tuple:
        """What the next init_tdx_module step reads or writes, besides the profile and the
        configuration: the key it is replayed on (see `_replayed`)."""
        step = state.step
        if step in (S_ERR_WBINVD, S_ERR_RESET, S_ERR_FREE_PAMTS):
            reads = (state.pamt, facts if self.tracks_caches else None)
        elif step in (S_ERR_FREE_TDMRS, S_ERR_FREE_MEMLIST):
            reads = (state.resources, state.snapshot)
        elif step == S_MEMLIST:
            reads = (state.memblock, state.snapshot, state.resources, state.faults,
                     state.init_err)
        elif step in (S_SYSINFO, S_CONFIG):
            reads = (facts, state.module, state.faults, state.init_err, state.pamt,
                     state.resources)
        elif step in (S_TDMR_LIST, S_KEYS_BEGIN, S_FEATURES):
            reads = (state.resources, state.faults, state.init_err, state.pamt,
                     facts if self.tracks_caches else None)
        elif step == S_CONSTRUCT:
            reads = (state.snapshot, state.memblock, state.faults, state.init_err,
                     state.tdmr_done, state.tdmr_cursor, state.pamt)
        elif step == S_KEYS:
            reads = (facts, state.module, state.init_err, state.faults, state.pamt,
                     state.tdmr_cursor, state.resources)
        elif step == S_TDMRS:
            reads = (facts, state.module, state.snapshot, state.memblock, state.tdmr_cursor,
                     state.tdmr_done, state.pamt, state.faults, state.init_err)
        elif step == S_DONE:
            reads = (state.snapshot, state.memblock, state.callers, state.status,
                     state.resources)
        else:  # S_OUT, S_RETURN
            reads = (state.init_err, state.callers, state.status, state.resources)
        return (state.mutex, step) + reads

    def _init_steps(self, state: State, out: list) -> None:
        """The next step of init_tdx_module, for the caller holding the tdx_enable mutex."""
        actor = state.mutex
        name = self.actor_name(actor)
        step = state.step
        if step == S_MEMLIST:
            self._build_tdx_memlist(state, name, out)
        elif step == S_SYSINFO:
            self._get_tdx_tdmr_sysinfo(state, name, out)
        elif step == S_FEATURES:
            self._check_features(state, name, out)
        elif step == S_TDMR_LIST:
            self._alloc_tdmr_list(state, name, out)
        elif step == S_CONSTRUCT:
            self._construct_tdmrs(state, name, out)
        elif step == S_CONFIG:
            self._config_tdx_module(state, name, out)
        elif step == S_KEYS_BEGIN:
            self._config_global_keyid_begin(state, name, out)
        elif step == S_KEYS:
            self._config_global_keyid(state, name, out)
        elif step == S_TDMRS:
            self._init_tdmr(state, name, out)
        elif step == S_DONE:
            self._init_succeeded(state, actor, name, out)
        elif step == S_ERR_WBINVD:
            out.append((self._label("err_reset_pamts", name, detail="wbinvd_on_all_cpus"),
                        self._update(self._wbinvd_on_all_cpus(state), step=S_ERR_RESET,
                                     pamt=_flushed(state.pamt))))
        elif step == S_ERR_RESET:
            reset = state.pamt
            if self.platform.erratum or not self.profile.reset_pamts_only_on_erratum:
                reset = _pamt_map(state.pamt, _reset_chunk)
            out.append((self._label("tdmrs_reset_pamt_all", name,
                                    detail="MOVDIR64B over every PAMT"),
                        set_fields(state, step=S_ERR_FREE_PAMTS, pamt=reset)))
        elif step == S_ERR_FREE_PAMTS:
            out.append((self._label("err_free_pamts", name, detail="tdmrs_free_pamt_all"),
                        set_fields(state, step=S_ERR_FREE_TDMRS,
                                   pamt=tdmrs_free_pamt_all(state.pamt))))
        elif step == S_ERR_FREE_TDMRS:
            out.append((self._label("err_free_tdmrs", name, detail="free_tdmr_list"),
                        set_fields(state, step=S_ERR_FREE_MEMLIST,
                                   resources=_freed(state.resources, RES_TDMR_LIST))))
        elif step == S_ERR_FREE_MEMLIST:
            out.append((self._label("err_free_tdxmem", name, detail="free_tdx_memlist"),
                        set_fields(state, step=S_OUT, snapshot=-1)))
        elif step in (S_OUT, S_RETURN):
            self._init_failed(state, actor, name, out)

    def _fail(self, state: State, errno: int, unwind: int) -> State:
        """A step failed with `errno`: init_tdx_module goes to the unwinding label `unwind`."""
        return set_fields(state, step=unwind, init_err=errno)

    def _build_tdx_memlist(self, state: State, name: str, out: list) -> None:
        """`get_online_mems` and `build_tdx_memlist`: one entry per memblock region. A failed
        allocation frees the entries added so far and returns straight to out_put_tdxmem."""
        then = S_TDMR_LIST if self.profile.metadata_before_memory else S_SYSINFO
        locked = set_fields(state, resources=state.resources | RES_MEMS_LOCK)
        out.append((self._label("build_tdx_memlist", name, result="0",
                                detail="get_online_mems"),
                    set_fields(locked, step=then, snapshot=state.memblock)))
        if self._alloc_fault_allowed(state):
            resources = locked.resources
            if not self.profile.memlist_failure_frees_partial:
                resources |= RES_MEMLIST_PARTIAL
            failed = set_fields(state, faults=state.faults + 1, resources=resources)
            out.append((self._label("build_tdx_memlist", name, result=f"{-ENOMEM}",
                                    injected=True, detail="add_tdx_memblock: kmalloc failed"),
                        self._fail(failed, -ENOMEM, S_OUT)))

    def _get_tdx_tdmr_sysinfo(self, state: State, name: str, out: list) -> None:
        """`get_tdx_tdmr_sysinfo`: read the TDMR limits with TDH.SYS.RD (on any online CPU).
        Kernels that read the metadata first (v6.14) check the module's features next and
        have nothing to unwind on failure; v6.8 has built the memory list already."""
        first = self.profile.metadata_before_memory
        for outcome, injected in self._outcomes(state, self.cpu_facts(state).online_cpus,
                                                TDH_SYS_RD):
            after = self._update(state, **self._seamcall_changes(state, TDH_SYS_RD, outcome,
                                                                 injected))
            if outcome == SUCCESS:
                then = S_TDMR_LIST
                if self.profile.checks_features:
                    then = S_FEATURES
                elif first:
                    then = S_MEMLIST
                after = set_fields(after, step=then)
            else:
                after = self._fail(after, seamcall_errno(outcome), self._early_unwind())
            out.append((self._label("get_tdx_tdmr_sysinfo", name, None, TDH_SYS_RD, outcome,
                                    injected), after))

    def _check_features(self, state: State, name: str, out: list) -> None:
        """`check_features` (v6.14): a module without NO_RBP_MOD clobbers the frame pointer;
        refuse it (-EINVAL) before any memory work."""
        first = self.profile.metadata_before_memory
        if self.platform.module_no_rbp_mod:
            out.append((self._label("check_features", name, result="0"),
                        set_fields(state, step=S_MEMLIST if first else S_TDMR_LIST)))
            return
        out.append((self._label("check_features", name, result=f"{-EINVAL}",
                                detail="frame pointer (RBP) clobber bug present, upgrade the "
                                "TDX module"),
                    self._fail(state, -EINVAL, self._early_unwind())))

    def _early_unwind(self) -> int:
        """Where a failed metadata read or feature check goes: before get_online_mems (v6.14)
        straight back with nothing to undo, else to err_free_tdxmem."""
        if self.profile.metadata_before_memory and self.profile.early_failures_return:
            return S_RETURN
        return S_ERR_FREE_MEMLIST

    def _alloc_tdmr_list(self, state: State, name: str, out: list) -> None:
        """`alloc_tdmr_list`: room for max_tdmrs TDMRs."""
        out.append((self._label("alloc_tdmr_list", name, result="0"),
                    set_fields(state, step=S_CONSTRUCT,
                               resources=state.resources | RES_TDMR_LIST)))
        if self._alloc_fault_allowed(state):
            out.append((self._label("alloc_tdmr_list", name, result=f"{-ENOMEM}", injected=True),
                        self._fail(set_fields(state, faults=state.faults + 1), -ENOMEM,
                                   S_ERR_FREE_MEMLIST)))

    def _construct_tdmrs(self, state: State, name: str, out: list) -> None:
        """`construct_tdmrs`: the engine's answer for this snapshot, or an injected allocation
        failure at some TDMR's PAMT."""
        layout = self.layout(state)
        result = layout.result
        count = len(result.tdmrs)
        base = set_fields(state, tdmr_done=(0,) * count, tdmr_cursor=0)
        if result.ok:
            allocated = (PAMT_ALLOCATED | PAMT_KERNEL_DIRTY,) * count
            out.append((self._label("construct_tdmrs", name, result="0",
                                    detail=f"{count} TDMRs, {result.pamt_kb} KB of PAMT"),
                        set_fields(base, step=S_CONFIG, pamt=allocated)))
        else:
            # Reserved areas exhausted: every chunk was allocated, construct_tdmrs frees them.
            # PAMT allocation failed: tdmrs_set_up_pamt_all frees the chunks it got so far.
            frees = self.profile.rsvd_failure_frees_pamts if result.failed_tdmr is not None \
                else self.profile.pamt_alloc_failure_frees_pamts
            detail = result.error.message or "PAMT allocation failed"
            out.append((self._label("construct_tdmrs", name, result=f"{result.error.errno}",
                                    detail=detail),
                        self._construct_failed(base, result.error.errno, count,
                                               layout.chunks_allocated, frees)))
        if not self._alloc_fault_allowed(state):
            return
        limit = count if result.ok or result.failed_tdmr is not None else layout.chunks_allocated
        frees = self.profile.pamt_alloc_failure_frees_pamts
        for failing in range(limit):
            after = self._construct_failed(set_fields(base, faults=state.faults + 1), -ENOMEM,
                                           count, failing, frees)
            out.append((self._label("construct_tdmrs", name, result=f"{-ENOMEM}", injected=True,
                                    detail=f"alloc_contig_pages failed for TDMR {failing}"),
                        after))

    def _construct_failed(self, state: State, errno: int, count: int, allocated: int,
                          freed: bool) -> State:
        """construct_tdmrs failed after allocating the first `allocated` PAMT chunks, which it
        freed again (`freed`); init_tdx_module then frees the TDMR list (v6.8), or the PAMTs
        too (`construct_failure_skips_pamt_free` off)."""
        chunk = PAMT_FREED if freed else PAMT_ALLOCATED | PAMT_KERNEL_DIRTY
        pamt = (chunk,) * allocated + (0,) * (count - allocated)
        unwind = S_ERR_FREE_TDMRS
        if allocated and not self.profile.construct_failure_skips_pamt_free:
            unwind = S_ERR_FREE_PAMTS
        return self._fail(set_fields(state, pamt=pamt), errno, unwind)

    def _config_tdx_module(self, state: State, name: str, out: list) -> None:
        """`config_tdx_module`: an array of the TDMR addresses, TDH.SYS.CONFIG with it and the
        global KeyID, the array freed again. Any failure frees the PAMTs without a reset: the
        module never saw them."""
        unwind = S_ERR_FREE_PAMTS if self.profile.config_failure_frees_pamts \
            else S_ERR_FREE_TDMRS
        if self._alloc_fault_allowed(state):
            out.append((self._label("config_tdx_module", name, result=f"{-ENOMEM}",
                                    injected=True, detail="kzalloc failed"),
                        self._fail(set_fields(state, faults=state.faults + 1), -ENOMEM,
                                   unwind)))
        holding = state.resources | RES_CONFIG_BUF
        for outcome, injected in self._outcomes(state, self.cpu_facts(state).online_cpus,
                                                TDH_SYS_CONFIG):
            resources = holding
            resources &= ~RES_CONFIG_BUF  # kfree(tdmr_pa_array)
            after = self._update(state, resources=resources,
                                 **self._seamcall_changes(state, TDH_SYS_CONFIG, outcome,
                                                          injected))
            if outcome == SUCCESS:
                after = set_fields(after, step=S_KEYS_BEGIN,
                                   pamt=_pamt_map(after.pamt, lambda c: c | PAMT_HANDED))
            else:
                after = self._fail(after, seamcall_errno(outcome), unwind)
            out.append((self._label("config_tdx_module", name, None, TDH_SYS_CONFIG, outcome,
                                    injected), after))

    def _config_global_keyid_begin(self, state: State, name: str, out: list) -> None:
        """`config_global_keyid`, first part: the mask of packages done, then WBINVD on every
        CPU (kernel cache lines of the PAMTs must not meet the module's global-KeyID ones)."""
        if self._alloc_fault_allowed(state):
            out.append((self._label("config_global_keyid", name, result=f"{-ENOMEM}",
                                    injected=True, detail="zalloc_cpumask_var failed"),
                        self._fail(set_fields(state, faults=state.faults + 1), -ENOMEM,
                                   self._late_unwind())))
        resources = state.resources | RES_CPUMASK
        pamt = state.pamt
        detail = "zalloc_cpumask_var"
        if self.profile.wbinvd_before_key_config:
            pamt = _flushed(pamt)
            detail += "; wbinvd_on_all_cpus"
        flushed = self._wbinvd_on_all_cpus(state) if pamt is not state.pamt else state
        out.append((self._label("config_global_keyid", name, detail=detail),
                    self._update(flushed, step=S_KEYS, resources=resources, pamt=pamt)))

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

    def _config_global_keyid(self, state: State, name: str, out: list) -> None:
        """`config_global_keyid`: TDH.SYS.KEY.CONFIG on one online CPU of each package, one at
        a time; the first error ends it."""
        in_flight = self.cpu_facts(state).key_in_flight
        if in_flight:
            for index in in_flight:
                self._key_config_result(state, name, index, out)
            return
        if state.init_err:
            out.append((self._label("config_global_keyid", name, result=f"{state.init_err}"),
                        self._fail(self._end_key_config(state), state.init_err,
                                   self._late_unwind())))
            return
        targets = self._key_targets(state)
        if not targets:
            out.append((self._label("config_global_keyid", name, result="0",
                                    detail="every package with an online CPU configured"),
                        set_fields(self._end_key_config(state), step=S_TDMRS, tdmr_cursor=0)))
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
            state = self._with_cpu(state, index, set_fields(self.cpu(state, index),
                                                            key=KEY_IN_FLIGHT))
        return set_fields(state, pamt=_pamt_map(state.pamt, _module_writes))

    def _key_config_result(self, state: State, name: str, index: int, out: list) -> None:
        """`do_global_key_config` on `index` completes."""
        p = index // self.cpp
        others = [i for i in self.cpu_facts(state).key_in_flight if i != index]
        outcomes = self._outcomes(state, (self.cpu(state, index),), TDH_SYS_KEY_CONFIG,
                                  package_keyed=state.packages[p].keyed, key_busy=bool(others))
        for outcome, injected in outcomes:
            after = self._with_cpu(state, index, set_fields(self.cpu(state, index), key=KEY_SENT))
            if outcome == SUCCESS:
                after = self._with_package(after, p, set_fields(after.packages[p], keyed=True))
            all_keyed = all(package.keyed for package in after.packages)
            after = self._update(after, **self._seamcall_changes(
                state, TDH_SYS_KEY_CONFIG, outcome, injected, all_keyed))
            if outcome != SUCCESS and not after.init_err:
                after = set_fields(after, init_err=seamcall_errno(outcome))
            if self.profile.key_config_serial and after.init_err:
                after = self._fail(self._end_key_config(after), after.init_err,
                                   self._late_unwind())
            out.append((self._label("do_global_key_config", name, index, TDH_SYS_KEY_CONFIG,
                                    outcome, injected, f"package {p}"), after))

    def _end_key_config(self, state: State) -> State:
        """config_global_keyid returns: its mask of packages done is freed."""
        packages = self._mapped_packages(state, ("key markers cleared",),
                                         lambda c: set_fields(c, key=KEY_NONE) if c.key else c)
        return self._update(state, resources=_freed(state.resources, RES_CPUMASK),
                            packages=packages)

    def _late_unwind(self) -> int:
        """Where a failure after TDH.SYS.CONFIG unwinds to: err_reset_pamts (v6.8)."""
        return S_ERR_WBINVD if self.profile.reset_pamts_on_late_failure else S_ERR_FREE_PAMTS

    def _init_tdmr(self, state: State, name: str, out: list) -> None:
        """`init_tdmrs`: TDH.SYS.TDMR.INIT on the current TDMR until it is done."""
        layout = self.layout(state)
        cursor = state.tdmr_cursor
        finished = state.tdmr_done[cursor] >= layout.tdmr_init_calls[cursor]
        for outcome, injected in self._outcomes(state, self.cpu_facts(state).online_cpus,
                                                TDH_SYS_TDMR_INIT, tdmr_finished=finished):
            after = self._update(state, **self._seamcall_changes(state, TDH_SYS_TDMR_INIT,
                                                                 outcome, injected))
            if outcome == SUCCESS:
                done = after.tdmr_done[:cursor] + (after.tdmr_done[cursor] + 1,) \
                    + after.tdmr_done[cursor + 1:]
                pamt = after.pamt[:cursor] + (_module_writes(after.pamt[cursor]),) \
                    + after.pamt[cursor + 1:]
                after = set_fields(after, tdmr_done=done, pamt=pamt)
                finished = done[cursor] >= layout.tdmr_init_calls[cursor]
                if finished or not self.profile.init_tdmrs_until_done:
                    last = cursor + 1 == len(done)
                    after = set_fields(after, tdmr_cursor=cursor + 1,
                                       step=S_DONE if last else S_TDMRS)
            else:
                after = self._fail(after, seamcall_errno(outcome), self._late_unwind())
            out.append((self._label("init_tdmr", name, None, TDH_SYS_TDMR_INIT, outcome, injected,
                                    f"TDMR {cursor}"), after))

    def _init_succeeded(self, state: State, actor: int, name: str, out: list) -> None:
        """init_tdx_module returns 0: the PAMT line, put_online_mems; __tdx_enable marks the
        module INITIALIZED and unlocks. The snapshot, TDMR list and PAMTs are kept."""
        layout = self.layout(state)
        resources = _freed(state.resources, RES_MEMS_LOCK)
        if not self.profile.keep_tdmr_list:
            resources = _freed(resources, RES_TDMR_LIST)
        after = set_fields(state, status=INITIALIZED, mutex=-1, step=S_NONE,
                           resources=resources)
        after = self._with_caller(after, actor, pc=LOADED)
        out.append((self._label("init_tdx_module", name, result="0",
                                detail=f"{layout.result.pamt_kb} KB allocated for PAMT; "
                                "module initialized; put_online_mems; mutex_unlock"), after))

    def _init_failed(self, state: State, actor: int, name: str, out: list) -> None:
        """out_put_tdxmem: put_online_mems and return the error (S_RETURN: return it, nothing
        taken yet); __tdx_enable marks the module ERROR and unlocks."""
        err = state.init_err
        status = ERROR
        if err == -ENODEV and not self.profile.enodev_marks_error:
            status = UNINITIALIZED
        mutex = -1 if self.profile.release_mutex_on_failure else actor
        put = state.step == S_OUT
        resources = _freed(state.resources, RES_MEMS_LOCK) if put else state.resources
        after = set_fields(state, status=status, mutex=mutex, step=S_NONE, resources=resources)
        after = self._caller_failed(after, actor)
        detail = f"module initialization failed ({err})"
        out.append((self._label("init_tdx_module", name, result=f"{err}",
                                detail=f"put_online_mems; {detail}" if put else detail),
                    after))

    def _pamts_unwound(self, state: State) -> State:
        """The PAMTs as err_reset_pamts and err_free_pamts leave them: written back, reset and
        freed (what a failed update must not do: `update_keeps_pamts`)."""
        return set_fields(self._wbinvd_on_all_cpus(state),
                          pamt=tdmrs_free_pamt_all(_pamt_map(_flushed(state.pamt),
                                                             _reset_chunk)))

    def _wbinvd_on_all_cpus(self, state: State) -> State:
        """`wbinvd_on_all_cpus`: every online CPU writes its cache back (its per-CPU mark, if
        the kernel keeps one, stays)."""
        if not self.tracks_caches:
            return state
        return self._update(state, packages=self._mapped_packages(
            state, ("wbinvd",), lambda c: set_fields(c, lines=False) if c.online and c.lines
            else c))

    def _note_cache_lines(self, out: list) -> None:
        """Each SEAMCALL's CPU: the kernel marks it incoherent first where its rules say so
        (v6.18's sc_retry), and the observer notes its cache may now hold TDX lines (unless
        the CPU faulted before entering SEAM). A process-context call may have run on any
        online CPU, so all of them. The #MC handler's RDMD is left out: the machine is
        going down; so is a CPU the step took offline (`_rolled_back`): its cache was written
        back then."""
        mark = self.profile.marks_cache_incoherent
        for i, (label, after) in enumerate(out):
            if label.seamcall is None or label.seamcall == TDH_PHYMEM_PAGE_RDMD:
                continue
            entered = label.result not in CPU_FAULTS
            facts = self.cpu_facts(after)
            for index in (label.cpu,) if label.cpu is not None else facts.online:
                cpu = self.cpu(after, index)
                if not cpu.online:  # its bring-up failed and was rolled back
                    continue
                noted = set_fields(cpu, lines=cpu.lines or entered,
                                   incoherent=cpu.incoherent or mark)
                if noted != cpu:
                    after = self._with_cpu(after, index, noted)
            out[i] = (label, after)

    def _kexec(self, state: State, out: list) -> None:
        """kexec into the next kernel, at any time: `machine_kexec_prepare` refuses on parts
        with the erratum (v6.18); otherwise every other CPU stops in `stop_this_cpu`, which
        writes its cache back where the CPU is marked incoherent."""
        if self.platform.erratum and self.profile.kexec_refused_on_erratum:
            out.append((self._label("kexec", "environment", result=f"{-EOPNOTSUPP}",
                                    detail="machine_kexec_prepare: tdx_pw_mce erratum"), state))
            return
        stopped = self._mapped_packages(
            state, ("stop_this_cpu",),
            lambda c: set_fields(c, lines=False) if c.online and c.incoherent else c)
        out.append((self._label("kexec", "environment", result="next kernel",
                                detail="stop_this_cpu on every CPU"),
                    self._update(state, packages=stopped, kexeced=True)))

    # ----- environment ---------------------------------------------------------------------

    def _environment_steps(self, state: State, out: list) -> None:
        config = self.config
        facts = self.cpu_facts(state)
        if config.cpu_hotplug and not state.hotplug_busy and not self.cpus_read_locked(state):
            key = (facts, self._vmx_holders(state.callers), state.tdx_on, state.sysinit_done,
                   state.sysinit_ret, state.sysinit_issues, state.faults, state.module,
                   state.guest_keyids)
            self._replayed(self._hotplug_steps, key, state, out, self._cpu_hotplug)
        # Memory hotplug, sleep requests and machine checks read these fields only:
        key = (state.hot, state.snapshot, state.memblock, self.memory_locked(state),
               state.s3_off, state.s3_entered, state.hibernation, state.hibernated,
               state.tdx_on, state.module, state.status, state.resources, state.tdmr_done,
               state.pamt, facts if self.profile.kexec_enabled else facts.mc_key)
        self._replayed(self._event_steps, key, state, out, self._other_events)

    def _other_events(self, state: State, out: list) -> None:
        config = self.config
        if config.memory_hotplug and not self.memory_locked(state):
            self._memory_hotplug(state, out)
        if config.sleep_requests:
            self._sleep_requests(state, out)
        if config.machine_checks:
            for page in (MC_PAMT_PAGE, MC_KERNEL_PAGE):
                for step in self.machine_checks(state, page):
                    out.append((step, state))
        if self.profile.kexec_enabled:
            self._kexec(state, out)

    def _cpu_hotplug(self, state: State, out: list) -> None:
        online = self.online_cpus(state)
        loaded = self._vmx_holders(state.callers)
        for index, cpu in self.cpus(state):
            if cpu.online and len(online) > 1 and not cpu.frames and cpu.key != KEY_IN_FLIGHT \
                    and self._offline_refused(state, index):
                out.append((self._label("cpu_down", "environment", index, result=f"{-EBUSY}",
                                        detail="TDX requires all packages to have an online "
                                        "CPU"), state))
            elif cpu.online and len(online) > 1 and not cpu.frames \
                    and cpu.key != KEY_IN_FLIGHT:
                down = Cpu(False, 0, cpu.lp_flag and self.profile.lp_flag_survives_offline,
                           cpu.lp_done, cpu.frames, 0, cpu.key,
                           **self._cache_on_going_down(cpu))
                out.append((self._label("cpu_down", "environment", index, result="ok"),
                            self._with_cpu(state, index, down)))
            elif not cpu.online:
                self._cpu_up(state, index, cpu, loaded, out)

    def _cache_on_going_down(self, cpu: Cpu) -> dict:
        """A CPU's cache fields once it goes offline: KVM's offline callback turns VMX off,
        flushing the cache and clearing its mark where the kernel does that; play_dead
        writes the cache back."""
        return {"lines": False, "incoherent": cpu.incoherent and not (
            self.profile.flushes_cache_on_vmx_off and cpu.vmx)}

    def _rolled_back(self, cpu: Cpu) -> Cpu:
        """A CPU whose bring-up failed in the TDX online callback: the callbacks before it
        are undone (VMX off) and the CPU goes down again; the TDX callback's own teardown is
        not run, so its per-CPU flags stay as they are."""
        return set_fields(cpu, online=False, vmx=0, **self._cache_on_going_down(cpu))

    def _offline_refused(self, state: State, index: int) -> bool:
        """`tdx_offline_cpu` (v7.1): while a guest KeyID is allocated, the last online CPU of a
        package stays (reclaiming a KeyID needs a CPU in every package)."""
        if not (self.profile.offline_veto_with_keyids and state.guest_keyids):
            return False
        p = index // self.cpp
        return not any(c.online for k, c in enumerate(state.packages[p].cpus)
                       if p * self.cpp + k != index)

    def _cpu_up(self, state: State, index: int, cpu: Cpu, loaded: list[int], out: list) -> None:
        """A CPU comes online; loaded callers' online callbacks VMXON and tdx_cpu_enable it."""
        vmx = 0
        for actor in loaded:
            vmx |= _bit(actor)
        up = Cpu(True, vmx, cpu.lp_flag, cpu.lp_done, cpu.frames, cpu.visited, cpu.key,
                 cpu.lines, cpu.incoherent)
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
                after = self._rolled_back(after)
            out.append((step, self._update(state, (index, after), **changes)))

    def _memory_hotplug(self, state: State, out: list) -> None:
        for b, online in enumerate(state.hot):
            detail = f"{_BLOCK}{b}"
            if online:
                hot = state.hot[:b] + (False,) + state.hot[b + 1:]
                out.append((self._label("memory_offline", "environment", detail=detail,
                                        result="ok"), set_fields(state, hot=hot)))
            elif self._notifier_allows(state.snapshot, b):
                hot = state.hot[:b] + (True,) + state.hot[b + 1:]
                out.append((self._label("memory_online", "environment", detail=detail,
                                        result="ok"),
                            set_fields(state, hot=hot, memblock=state.memblock | 1 << b)))
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
            out.append((_SUSPEND, set_fields(state, s3_entered=True)))
        if not state.hibernation:
            out.append((_HIBERNATE_REFUSED, state))
        elif not state.hibernated:
            out.append((_HIBERNATE, set_fields(state, hibernated=True)))

    def machine_checks(self, state: State, page: str) -> list[Step]:
        """`tdx_dump_mce_info` on each CPU that may take a machine check on `page`: only on
        erratum parts, a raw RDMD on that CPU (no retry; any failure means "not private");
        a PAMT page comes back reserved and is private when the module is INITIALIZED and the
        kernel's TDMR list has a PAMT holding it (`is_pamt_page`, which reads no list while init
        may still change it); a kernel page comes back as not assigned."""
        if not (self.platform.erratum and state.tdx_on):
            return [self._label("machine_check", "environment", result="not reported",
                                detail=page)]
        steps = []
        for index in self.cpu_facts(state).mc_cpus:
            outcome = self._answer(state, self.cpu(state, index), TDH_PHYMEM_PAGE_RDMD,
                                   block_initialised=self._mc_block_initialised(state, page))
            if outcome != SUCCESS:
                steps.append(self._label("machine_check", "environment", index,
                                         TDH_PHYMEM_PAGE_RDMD, outcome,
                                         detail=f"{page}; not reported"))
                continue
            # is_pamt_page trusts the TDMR list only once the module is INITIALIZED
            in_pamt = page == MC_PAMT_PAGE and state.status == INITIALIZED \
                and bool(state.resources & RES_TDMR_LIST) and bool(state.pamt)
            verdict = "reported: TDX private memory error" if in_pamt else "not reported"
            page_type = "reserved" if page == MC_PAMT_PAGE else "not assigned"
            steps.append(self._label("machine_check", "environment", index,
                                     TDH_PHYMEM_PAGE_RDMD, SUCCESS,
                                     detail=f"{page}; RDMD: {page_type}; {verdict}"))
        return steps

    def _mc_block_initialised(self, state: State, page: str) -> bool:
        """The module has initialised the part of its TDMR that holds the page (a kernel page
        is taken from an initialised part)."""
        if page != MC_PAMT_PAGE:
            return True
        where = self.layout(state).first_pamt_page
        return where is not None and len(state.tdmr_done) > where[0] \
            and state.tdmr_done[where[0]] >= where[1]


def _note_first_error(out: list, start: int) -> None:
    """An observer's note on init_tdx_module's steps from `out[start:]`: the errno of the
    first step of this run that failed (`State.first_err`), forgotten when the run returns.
    It reads the labels only, so the kernel's own error handling cannot change it."""
    for i in range(start, len(out)):
        label, after = out[i]
        if label.action == "init_tdx_module":
            if after.first_err:
                out[i] = (label, set_fields(after, first_err=0))
        elif not after.first_err and (errno := step_errno(label)):
            out[i] = (label, set_fields(after, first_err=errno))


def machine_check_reported(step: Step) -> bool:
    return "reported: TDX private memory error" in step.detail


def memory_block(step: Step) -> int:
    """Which hot block a `memory_online` or `memory_offline` step concerns."""
    return int(step.detail.removeprefix(_BLOCK))


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


def tdmrs_free_pamt_all(pamt: tuple[int, ...]) -> tuple[int, ...]:
    """`tdmrs_free_pamt_all`: free every TDMR's PAMT chunk; a TDMR whose PAMT was never
    allocated (size 0) is skipped, one freed before is freed again."""
    return tuple(_free_chunk(c) if c & (PAMT_ALLOCATED | PAMT_FREED) else c for c in pamt)


def _free_chunk(chunk: int) -> int:
    if chunk & PAMT_FREED:
        return chunk | PAMT_FREED_TWICE
    return (chunk & ~PAMT_ALLOCATED) | PAMT_FREED


def _freed(resources: int, bit: int) -> int:
    """`resources` after freeing `bit`; freeing what is not held is a bad free."""
    return resources & ~bit if resources & bit else resources | RES_BAD_FREE
