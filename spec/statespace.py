"""The speed machinery of the flow model, kept apart from the kernel's rules in `spec.flow`.

The explorer asks for the steps out of every reachable state, hundreds of thousands of times per
run, so the model shares what states have in common and remembers what it worked out:
- `packages` and `callers` values are shared objects (`Shared`): one object per distinct value,
  hashing by identity, so a state's hash skips what is inside;
- `CpuFacts` holds what the rules ask about one distinct `packages` value, worked out once;
- `StateSpace._replayed` replays the steps a rule took from an earlier state with the same key
  (everything the rule reads or writes) instead of running the rule again;
- labels are interned, and states are built field by field without NamedTuple's machinery.
None of this changes a result: `TdxFlow(replay=False)` computes every step afresh, and the
tests compare the two. The tables grow with the states met; `forget` empties them, so that an
explorer keeping only fingerprints can hold the model's memory to what its frontier needs.
"""

from __future__ import annotations

import sys
from itertools import compress, permutations
from operator import is_not

from spec.flow_state import INITCALL, KEY_IN_FLIGHT, Caller, Cpu, Package, State, Step

_FIELD_INDEX = {cls: {name: i for i, name in enumerate(cls._fields)}
                for cls in (Cpu, Package, Caller, State, Step)}
_STATE_INDEX = _FIELD_INDEX[State]
_STATE_INDEXES = range(len(State._fields))
_MUTEX = _STATE_INDEX["mutex"]
_AS_NAMED = "as named"  # `StateSpace._caller_plan`: the callers keep their names


def set_fields(record, **changes):
    """`record._replace(**changes)` without NamedTuple's generic machinery: the explorer builds
    states by the hundred thousand, and this is about twice as fast."""
    values = list(record)
    index = _FIELD_INDEX[type(record)]
    for name, value in changes.items():
        values[index[name]] = value
    return tuple.__new__(type(record), values)


def with_packages(state: State, packages: tuple[Package, ...]) -> State:
    """`set_fields(state, packages=packages)` for the most frequent update (`packages` is the
    last field)."""
    return tuple.__new__(State, state[:-1] + (packages,))


def with_callers(state: State, callers: tuple[Caller, ...]) -> State:
    """`set_fields(state, callers=callers)` for the next most frequent one (the last but one)."""
    return tuple.__new__(State, state[:-2] + (callers, state[-1]))


def changed_fields(state: State, after: State) -> tuple[tuple[int, object], ...] | None:
    """The fields a step changes, as (index, new value); None for a step that changes
    nothing (it stays a self-loop when replayed)."""
    if after is state:
        return None
    moved = compress(_STATE_INDEXES, map(is_not, state, after))  # fields holding new objects
    return tuple([(index, after[index]) for index in moved if state[index] != after[index]])


def _share_of(part: int, whole: int) -> int:
    """0 for none, 1 for some, 2 for all."""
    return 0 if not part else 2 if part == whole else 1


def map_package(package: Package, fn) -> Package:
    """`package` with `fn` applied to its CPUs (`package` itself when none changes)."""
    cpus = tuple([fn(c) for c in package.cpus])
    return package if cpus == package.cpus else Package(package.keyed, cpus)


class Shared(tuple):
    """A `packages` or `callers` value as the model hands it out: one object per distinct
    value (see `StateSpace._share`, `StateSpace._callers_with`), so it hashes by identity and
    a state's hash skips what is inside. The explorer hashes a state for every step, and the
    CPUs and callers are most of what there is to hash. Equality stays by value."""

    __slots__ = ()
    __hash__ = object.__hash__


class CpuFacts:
    """One distinct `packages` value and what the rules ask about its CPUs, worked out once.

    The model hash-conses `packages`: every value it builds is swapped for one shared tuple
    (`StateSpace._share`), which this record keeps alive. States number in the tens of
    thousands but their distinct `packages` values in the thousands, so the facts, the sorted
    form and the CPU updates (`derived`) are computed once per value and then found by the
    tuple's id.
    """

    __slots__ = ("packages", "cpus", "online", "online_cpus", "framed", "mc_cpus", "mc_key",
                 "package_offline", "all_lps_done", "all_keyed", "key_in_flight",
                 "canonical", "derived")

    def __init__(self, packages: tuple[Package, ...]) -> None:
        cpus = tuple(enumerate([cpu for package in packages for cpu in package.cpus]))
        self.packages = packages
        self.cpus = cpus  # (flat index, Cpu) for every CPU, in order
        self.online = tuple(i for i, c in cpus if c.online)
        self.online_cpus = tuple(c for _, c in cpus if c.online)
        self.framed = tuple(i for i, c in cpus if c.frames)  # tdx_cpu_enable awaits LP.INIT
        # A machine check may be taken on any online CPU; one of each kind is enough: the
        # first online CPU in VMX operation and the first outside it.
        first_of_kind: dict[bool, int] = {}
        for i, c in cpus:
            if c.online:
                first_of_kind.setdefault(bool(c.vmx), i)
        self.mc_cpus = tuple(sorted(first_of_kind.values()))
        self.mc_key = tuple(sorted(first_of_kind.items()))  # what those CPUs' RDMDs depend on
        self.package_offline = next((p for p, package in enumerate(packages)  # first one
                                     if not any(c.online for c in package.cpus)), None)
        self.all_lps_done = all(c.lp_done for _, c in cpus)
        self.all_keyed = all(p.keyed for p in packages)
        self.key_in_flight = tuple(i for i, c in cpus if c.key == KEY_IN_FLIGHT)
        self.canonical: tuple[Package, ...] | None = None  # the shared sorted form
        # per actor, its IPI targets; per CPU update, the shared packages after it; the
        # per-package summary of `StateSpace.abstract`:
        self.derived: dict[object, tuple] = {}


class StateSpace:
    """The shared-value and replay machinery a flow model builds its states with.

    A subclass sets `cpp` (CPUs per package), `replay`, `profile` and `config` and calls
    `__init__`; its rules build states with `_update`, `_with_cpu`, `_with_package`,
    `_with_caller`, `_mapped_packages` and label steps with `_label`.
    """

    cpp: int
    replay: bool

    def __init__(self) -> None:
        # Memo tables (values depend only on their keys, so they never change a result):
        self._shared: dict[tuple, CpuFacts] = {}  # packages value -> its shared tuple's facts
        self._facts: dict[int, CpuFacts] = {}  # id of a shared packages tuple -> its facts
        self._last_facts = CpuFacts(())  # the facts asked for last
        self._last_canonical: tuple = ()  # the sorted packages `canonical` gave last
        self._caller_plans: dict[tuple, object] = {}  # callers value -> its renaming
        self._caller_symmetry = True  # `canonical` renames alike callers (`alike_callers`)
        self._callers: dict[tuple, tuple] = {}  # callers value -> its shared tuple
        self._caller_updates: dict[tuple, tuple] = {}  # (callers, actor, entry) -> shared
        self._labels: dict[tuple, Step] = {}
        self.label_sites: dict[Step, tuple[str, int, str]] = {}  # see `_label`
        self._memoised: list = []  # `functools.cache` wrappers over its values (`memoised`)

    def canonical(self, state: State) -> State:
        """The representative of the state's class under renumbering CPUs within a package,
        packages, and the callers the rules treat alike (`alike_callers`).

        CPUs are sorted within each package and packages among themselves. Callers are then
        renamed so that their records (`Caller`) come in the greatest order, which keeps the
        caller furthest along as caller 0 (the model lists caller 0's steps first, so the
        traces found are those found without renaming callers); where that leaves a choice
        (two callers in the same record, say both idle), the renaming that gives the least
        `mutex` and then the least sorted `packages` wins. A renaming moves everything
        that names a caller: its record, the mutex, and on every CPU its VMX and `visited`
        bits and its `frames` entries. The sorted form is worked out once per distinct
        `packages` value and renaming (see `CpuFacts`), the renaming once per distinct
        `callers` value; a state that already holds its representative is returned as it is.
        """
        plan = self._caller_plans.get(state.callers)
        if plan is None:
            plan = self._caller_plan(state.callers)
        if plan is _AS_NAMED:
            if state.packages is self._last_canonical:  # most steps leave the CPUs alone
                return state
            facts = self.packages_facts(state.packages)
            packages = facts.canonical
            if packages is None:
                packages = self._sorted_packages(facts)
            self._last_canonical = packages
            return state if packages is state.packages else with_packages(state, packages)
        callers, renamings, choices = plan
        key = (state.packages, state.mutex)
        chosen = choices.get(key)
        if chosen is None:
            facts = self.packages_facts(state.packages)
            mutex = state.mutex
            chosen = choices[key] = min(
                (renaming[mutex] if 0 <= mutex < len(renaming) else mutex,
                 self._sorted_packages(self._renamed_packages(facts, renaming)))
                for renaming in renamings)
        mutex, packages = chosen
        if callers is state.callers and mutex == state.mutex and packages is state.packages:
            return state
        values = list(state)
        values[_MUTEX] = mutex
        values[-2] = callers
        values[-1] = packages
        return tuple.__new__(State, values)

    @property
    def kvm_callers(self) -> tuple[int, ...]:
        """The callers that are KVM: every caller, but the initcall (`INITCALL`) where the
        profile runs `tdx_enable` at boot (`init_at_boot`, v7.1 on: it registers the
        CPU-hotplug callbacks and initialises the module)."""
        boot = getattr(self.profile, "init_at_boot", False)
        return tuple(a for a in range(len(self.config.caller_loads))
                     if not (boot and a == INITCALL))

    def alike_callers(self) -> tuple[int, ...]:
        """The callers whose steps the rules take alike, so that renaming them among
        themselves maps steps to steps: the KVM callers (`kvm_callers`). With
        `caller_symmetry` off, none (the reduction is then by CPU and package numbering
        only)."""
        return self.kvm_callers if self._caller_symmetry else ()

    @property
    def caller_symmetry(self) -> bool:
        return self._caller_symmetry

    @caller_symmetry.setter
    def caller_symmetry(self, on: bool) -> None:
        self._caller_symmetry = bool(on)
        self._caller_plans.clear()

    def _caller_plan(self, callers: tuple[Caller, ...]):
        """How `canonical` renames the callers of this `callers` value: `_AS_NAMED` when the
        names stay (no other renaming orders the records as high), else the shared renamed
        `callers`, every renaming that gives it (tuples: new name of each caller), and the
        memo of the choice among them per (`packages`, `mutex`)."""
        if type(callers) is not Shared:
            callers = self._shared_callers(callers)
        alike = self.alike_callers()
        count = len(callers)
        least, renamings = tuple(callers), [tuple(range(count))]
        for order in permutations(alike):
            if list(order) == list(alike):
                continue
            renaming = list(range(count))
            for old, new in zip(alike, order, strict=True):
                renaming[old] = new
            renamed = [None] * count
            for old, new in enumerate(renaming):
                renamed[new] = callers[old]
            renamed = tuple(renamed)
            if renamed > least:
                least, renamings = renamed, [tuple(renaming)]
            elif renamed == least:
                renamings.append(tuple(renaming))
        if renamings == [tuple(range(count))]:
            plan = _AS_NAMED
        else:
            plan = (self._shared_callers(least), tuple(renamings), {})
        self._caller_plans[callers] = plan
        return plan

    def _sorted_packages(self, facts: CpuFacts) -> tuple[Package, ...]:
        """The shared `packages` with CPUs sorted within packages and packages sorted."""
        packages = facts.canonical
        if packages is None:
            packages = self._share(tuple(sorted(
                Package(p.keyed, tuple(sorted(p.cpus))) for p in facts.packages))).packages
            facts.canonical = self._facts[id(packages)].canonical = packages
        return packages

    def _renamed_packages(self, facts: CpuFacts, renaming: tuple[int, ...]) -> CpuFacts:
        """The facts of `packages` with callers renamed (`renaming[old]` is the new name) in
        every CPU's VMX and `visited` bits and `frames` (other actors, such as the CPU-hotplug
        callback, keep their names)."""
        key = ("callers renamed", renaming)
        renamed = facts.derived.get(key)
        if renamed is None:
            count = len(renaming)

            def rename_bits(bits: int) -> int:
                out = bits >> count << count
                for old, new in enumerate(renaming):
                    if bits >> old & 1:
                        out |= 1 << new
                return out

            def rename(cpu: Cpu) -> Cpu:
                if not (cpu.vmx or cpu.visited or cpu.frames):
                    return cpu
                return set_fields(cpu, vmx=rename_bits(cpu.vmx),
                                  visited=rename_bits(cpu.visited),
                                  frames=tuple(renaming[a] if a < count else a
                                               for a in cpu.frames))

            packages = tuple(map_package(p, rename) for p in facts.packages)
            # the shared tuple, not its facts: facts never refer to one another, so emptying
            # the memo tables frees them without a garbage collection
            renamed = facts.derived[key] = self._share(packages).packages
        return self.packages_facts(renamed)

    # ----- facts of the CPUs ---------------------------------------------------------------

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
        """The facts of the one shared tuple equal to `packages` (made now if it is new; a
        shared tuple made before a `forget` is adopted again)."""
        key = packages if type(packages) is tuple else tuple(packages)  # keyed by value
        facts = self._shared.get(key)
        if facts is None:
            shared = packages if type(packages) is Shared else tuple.__new__(Shared, key)
            facts = self._shared[key] = self._facts[id(shared)] = CpuFacts(shared)
        return facts

    def cpu(self, state: State, index: int) -> Cpu:
        return state.packages[index // self.cpp].cpus[index % self.cpp]

    def cpus(self, state: State) -> tuple[tuple[int, Cpu], ...]:
        """(flat index, Cpu) for every CPU, in the state's order."""
        return self.cpu_facts(state).cpus

    def online_cpus(self, state: State) -> tuple[int, ...]:
        return self.cpu_facts(state).online

    # ----- building states and labels ------------------------------------------------------

    def _label(self, action: str, actor: str, cpu: int | None = None, seamcall: str | None = None,
               result: str | None = None, injected: bool = False, detail: str = "") -> Step:
        """`Step(...)`, one shared object per distinct label: a run stores a label for every
        state, and most are repeats. Where a label is first made is kept in `label_sites`
        (file, line, function of the rule that took the step), so a report can point at it."""
        key = (action, actor, cpu, seamcall, result, injected, detail)
        label = self._labels.get(key)
        if label is None:
            label = self._labels[key] = Step(*key)
            code = sys._getframe(1)
            self.label_sites[label] = (code.f_code.co_filename, code.f_lineno,
                                       code.f_code.co_name)
        return label

    def _with_cpu(self, state: State, index: int, cpu: Cpu) -> State:
        return with_packages(state, self._packages_with_cpu(state, index, cpu))

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
            package = Package(package.keyed, package.cpus[:k] + (cpu,) + package.cpus[k + 1:])
            packages = facts.derived[key] = self._share(
                old[:p] + (package,) + old[p + 1:]).packages
        return packages

    def _with_package(self, state: State, p: int, package: Package) -> State:
        packages = state.packages
        return with_packages(state, self._share(
            packages[:p] + (package,) + packages[p + 1:]).packages)

    def _mapped_packages(self, state: State, update: tuple, fn) -> tuple[Package, ...]:
        """The state's `packages` with `fn` applied to every CPU (the same tuple when no CPU
        changes). `update` names what `fn` does, for the memo of derived `packages`."""
        facts = self.cpu_facts(state)
        packages = facts.derived.get(update)
        if packages is None:
            packages = tuple([map_package(package, fn) for package in facts.packages])
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
        return with_callers(state, self._callers_with(state.callers, actor, caller))

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
        """The one shared tuple equal to `callers` (one made before a `forget` is adopted)."""
        key = callers if type(callers) is tuple else tuple(callers)
        shared = self._callers.get(key)
        if shared is None:
            shared = callers if type(callers) is Shared else tuple.__new__(Shared, key)
            self._callers[key] = shared
        return shared

    def abstract(self, state: State) -> tuple:
        """A coarse view of a state, for the restarts of random walks
        (`checker.engines.simulate`): where each caller is, the module's and the kernel's
        status, who holds the mutex (not the init step it is at, which would multiply the
        cells), the faults injected, the runtime update, and per
        package (in sorted order) whether it is keyed and how many of its CPUs are online and
        have done LP.INIT. What a CPU holds beyond that is left out: a cell stands for the
        many states that differ only there."""
        facts = self.cpu_facts(state)
        summary = facts.derived.get("abstract")
        if summary is None:
            summary = facts.derived["abstract"] = tuple(sorted(
                (p.keyed, _share_of(sum(c.online for c in p.cpus), len(p.cpus)),
                 all(c.lp_done for c in p.cpus if c.online),
                 all(c.lp_done for c in p.cpus if not c.online))
                for p in facts.packages))
        return (tuple([c.pc for c in state.callers]), state.status, state.module,
                state.mutex, state.faults, state.update, summary)

    def adopt(self, value):
        """The model's own shared object equal to `value`, a `packages` or `callers` value
        another process sent (`checker.engines.workers`): a copy hashes apart from the
        model's object, so every look-up by identity would miss it."""
        if type(value) is not Shared or not value:
            return value
        if type(value[0]) is Package:
            return self._share(value).packages
        return self._shared_callers(value)

    def memo_tables(self) -> list[dict]:
        """The tables that only remember what was worked out (`forget` empties them)."""
        return [self._shared, self._facts, self._caller_plans, self._callers,
                self._caller_updates]

    def memoised(self, cached):
        """Register a `functools.cache` wrapper whose keys are this model's values (a
        property's check, say), so that `forget` empties it with the model's own tables."""
        self._memoised.append(cached)
        return cached

    def memo_entries(self) -> int:
        return sum(len(table) for table in self.memo_tables()) \
            + sum(cached.cache_info().currsize for cached in self._memoised)

    def forget(self) -> None:
        """Empty the memo tables. States made before stay valid and equal to those made
        after (their shared tuples are adopted again when met), but two equal `packages` or
        `callers` may now be two objects, which hash apart: only an explorer that compares
        states by value (by fingerprint) may call this."""
        for table in self.memo_tables():
            table.clear()
        for cached in self._memoised:
            cached.cache_clear()
        self._last_facts = CpuFacts(())
        self._last_canonical = ()

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
            changes = memo[key] = tuple([(label, changed_fields(state, after))
                                         for label, after in steps])
        for label, fields in changes:
            if fields is None:
                out.append((label, state))
                continue
            values = list(state)
            for index, value in fields:
                values[index] = value
            out.append((label, tuple.__new__(State, values)))
