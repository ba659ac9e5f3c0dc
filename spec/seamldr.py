"""The runtime update of the TDX module (v7.2: seamldr.c, with tdx_module_shutdown and
tdx_module_run_update of tdx.c) as steps of the flow model, mixed into `spec.flow.TdxFlow`.

Userspace may ask for one update once the module is initialised (`seamldr_install_module`):
under cpus_read_lock, stop_machine runs every online CPU through SHUTDOWN, CPU_INSTALL,
CPU_INIT and RUN_UPDATE, and nothing else runs meanwhile. The one-CPU work (the shutdown, the
update) may run on any online CPU, as the model's CPUs are alike (the kernel takes CPU 0). The
every-CPU work (the P-SEAMLDR install, tdx_cpu_enable) runs CPU by CPU in any order; a CPU
whose work for the present state is done carries the update's bit in `Cpu.visited`, and the
last one moves every CPU on (`ack_state`). The first failure stops every CPU and is returned:
nothing is rolled back. A CPU still inside tdx_cpu_enable then is taken to stop before its
LP.INIT (it would do one on a module that is no longer used).
"""

from __future__ import annotations

from spec import module
from spec.flow_state import (
    INITIALIZED,
    UNINITIALIZED,
    UPDATE_CPU_INIT,
    UPDATE_CPU_INSTALL,
    UPDATE_DONE,
    UPDATE_FAILED,
    UPDATE_HUNG,
    UPDATE_NONE,
    UPDATE_RUN,
    UPDATE_SHUTDOWN,
    State,
)
from spec.seamcall import P_SEAMLDR_INSTALL, SUCCESS, TDH_SYS_SHUTDOWN, TDH_SYS_UPDATE
from spec.statespace import set_fields

UPDATER = "module update"
_ENDED = {UPDATE_DONE: "stop_machine returns 0; cpus_read_unlock",
          UPDATE_FAILED: "update failed: every CPU stops; cpus_read_unlock",
          UPDATE_HUNG: "update failed: the other CPUs wait for ever"}


class ModuleUpdate:
    """The update's rules; `TdxFlow` supplies the SEAMCALL, state and label machinery and
    `update_actor`, the actor whose bit marks a CPU's finished work."""

    def _update_request(self, state: State, out: list) -> None:
        """`seamldr_install_module`, asked by userspace (the tdx-host firmware upload): it takes
        cpus_read_lock (so it waits for a CPU coming online), then stops every online CPU."""
        if state.update == UPDATE_NONE and state.status == INITIALIZED \
                and not state.hotplug_busy and not self.cpus_read_locked(state):
            out.append((self._label("seamldr_install_module", UPDATER,
                                    detail="cpus_read_lock; stop_machine on every online CPU"),
                        set_fields(state, update=UPDATE_SHUTDOWN)))

    def _update_steps(self, state: State, out: list) -> None:
        """The work of the state stop_machine's CPUs are in (none once they hang)."""
        phase = state.update
        start = len(out)
        if phase == UPDATE_SHUTDOWN:
            self._tdx_module_shutdown(state, out)
        elif phase == UPDATE_CPU_INSTALL:
            self._seamldr_install(state, out)
        elif phase == UPDATE_CPU_INIT:
            self._cpu_init(state, out)
            self._frame_steps(state, out)
        elif phase == UPDATE_RUN:
            self._tdx_module_run_update(state, out)
        for i in range(start, len(out)):
            label, after = out[i]
            ended = _ENDED.get(after.update)
            if ended:
                detail = f"{label.detail}; {ended}" if label.detail else ended
                out[i] = (self._label(label.action, label.actor, label.cpu, label.seamcall,
                                      label.result, label.injected, detail), after)

    def _tdx_module_shutdown(self, state: State, out: list) -> None:
        """SHUTDOWN: `tdx_module_shutdown` issues TDH.SYS.SHUTDOWN (the handoff read before it
        is folded in: its failure also changes nothing). Once it succeeded the module is no
        longer initialised, TDH.SYS.INIT no longer cached and every CPU's LP flag cleared, so
        the new module is initialised afresh; a failure leaves the old module in use. The
        observer's count of TDH.SYS.INIT starts again: the shutdown ends what that count is
        about, one module's initialisation."""
        online = self.cpu_facts(state).online_cpus
        for outcome, injected in self._outcomes(state, online, TDH_SYS_SHUTDOWN):
            after = self._update(state, **self._seamcall_changes(state, TDH_SYS_SHUTDOWN,
                                                                 outcome, injected))
            if outcome != SUCCESS:
                after = self._update_failed(after)
            else:
                if self.profile.shutdown_resets_module_state:
                    after = set_fields(after, status=UNINITIALIZED, sysinit_done=False,
                                       sysinit_ret=0)
                if self.profile.shutdown_clears_lp_flags:
                    after = self._update(after, packages=self._mapped_packages(
                        after, ("lp flags cleared",),
                        lambda c: set_fields(c, lp_flag=False) if c.lp_flag else c))
                after = set_fields(after, update=UPDATE_CPU_INSTALL, sysinit_issues=0)
            out.append((self._label("tdx_module_shutdown", UPDATER, None, TDH_SYS_SHUTDOWN,
                                    outcome, injected), after))

    def _seamldr_install(self, state: State, out: list) -> None:
        """CPU_INSTALL: every online CPU asks the P-SEAMLDR to install the new module. The
        loader has installed it once every CPU the firmware enumerated did so; one offline
        now (v7.2 does not check) never does."""
        bit = 1 << self.update_actor
        for index, cpu in self.cpus(state):
            if not cpu.online or cpu.visited & bit:
                continue
            for outcome, injected in self._outcomes(state, (cpu,), P_SEAMLDR_INSTALL):
                after = self._update(state, (index, set_fields(cpu, visited=cpu.visited | bit)),
                                     **self._seamcall_changes(state, P_SEAMLDR_INSTALL,
                                                              outcome, injected))
                if outcome == SUCCESS:
                    after = self._update_acked(self._installed(after))
                else:
                    after = self._update_failed(after)
                out.append((self._label("seamldr_install", UPDATER, index, P_SEAMLDR_INSTALL,
                                        outcome, injected), after))

    def _installed(self, state: State) -> State:
        """The new module, once installed on every CPU: waiting for TDH.SYS.INIT, with no CPU
        initialised."""
        bit = 1 << self.update_actor
        if not all(cpu.visited & bit for _, cpu in self.cpus(state)):
            return state
        fresh = self._mapped_packages(state, ("new module",),
                                      lambda c: set_fields(c, lp_done=False) if c.lp_done else c)
        return self._update(state, module=module.SYSINIT_PENDING, packages=fresh)

    def _cpu_init(self, state: State, out: list) -> None:
        """CPU_INIT: every online CPU runs tdx_cpu_enable again (TDH.SYS.INIT by the first,
        LP.INIT by each, the latter in `_frame_steps`)."""
        bit = 1 << self.update_actor
        for index, cpu in self.cpus(state):
            if not cpu.online or cpu.visited & bit:
                continue
            entered = set_fields(cpu, visited=cpu.visited | bit)
            for step, after_cpu, changes, ret in self._tdx_cpu_enable(state, self.update_actor,
                                                                      index, entered):
                after = self._update(state, (index, after_cpu), **changes)
                if ret is not None:
                    after = self._update_failed(after) if ret else self._update_acked(after)
                out.append((step, after))

    def _lp_init_done(self, state: State, ok: bool) -> State:
        """The update's LP.INIT on a CPU returned."""
        return self._update_acked(state) if ok else self._update_failed(state)

    def _tdx_module_run_update(self, state: State, out: list) -> None:
        """RUN_UPDATE: `tdx_module_run_update` issues TDH.SYS.UPDATE, and once it succeeded
        marks the module initialised (the version read again is not modelled)."""
        online = self.cpu_facts(state).online_cpus
        for outcome, injected in self._outcomes(state, online, TDH_SYS_UPDATE):
            after = self._update(state, **self._seamcall_changes(state, TDH_SYS_UPDATE, outcome,
                                                                 injected))
            if outcome == SUCCESS:
                after = set_fields(after, status=INITIALIZED, update=UPDATE_DONE)
            else:
                after = self._update_failed(after)
            out.append((self._label("tdx_module_run_update", UPDATER, None, TDH_SYS_UPDATE,
                                    outcome, injected), after))

    def _update_acked(self, state: State) -> State:
        """`ack_state`: once every online CPU finished this state's work, all move on."""
        actor = self.update_actor
        bit = 1 << actor
        for _, cpu in self.cpus(state):
            if cpu.online and (not cpu.visited & bit or actor in cpu.frames):
                return state
        acked = self._mapped_packages(state, ("update acked",),
                                      lambda c: set_fields(c, visited=c.visited & ~bit)
                                      if c.visited & bit else c)
        return self._update(state, update=state.update + 1, packages=acked)

    def _update_failed(self, state: State) -> State:
        """A step failed: every CPU stops and the update returns the error, or, where failures
        do not stop the CPUs, the others wait for ever for the next state."""
        if not self.profile.update_aborts_on_failure:
            return set_fields(state, update=UPDATE_HUNG)
        actor = self.update_actor
        bit = 1 << actor

        def stop(c):
            if not (c.visited & bit or actor in c.frames):
                return c
            return set_fields(c, visited=c.visited & ~bit,
                              frames=tuple(a for a in c.frames if a != actor))

        stopped = self._update(state, update=UPDATE_FAILED,
                               packages=self._mapped_packages(state, ("update stopped",), stop))
        if state.update > UPDATE_SHUTDOWN and not self.profile.update_keeps_pamts:
            return self._pamts_unwound(stopped)
        return stopped
