"""The diagnosis of boot logs: every shipped log gets its cause and what to do, by key, with the
exit status that goes with it; each kind of TDX line (v6.8's, later kernels', out-of-tree ones)
is explained with its stage, leaf, status and errno; the TDMR that ran out of reserved areas gets
its holes by e820 line; logs come from files, standard input and counterexample files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from checker.cli import main
from checker.views import glossary
from checker.views.diagnosis import ACTIONS, CAUSES, MESSAGES, decode_status
from spec import module, seamcall
from spec.seamcall import LEAF_NUMBERS, seamcall_failed_message

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / "checker" / "data" / "boot-logs"
SHARED_LOGS = REPO.parent / "shared" / "data" / "boot-logs"


def run_json(capsys, *args) -> tuple[int, dict]:
    code = main(["tdmr", *map(str, args), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def write(tmp_path: Path, lines: list[str], name: str = "dmesg.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


# --- every shipped log: outcome, line, causes and actions by key, exit status --------------------

SHIPPED = {
    "2s-512g.log": (0, "initialized", 8, ["tdx-initialized"], ["none"]),
    "4node-1t-6.5.log": (0, "initialized", 8, ["tdx-initialized"], ["none"]),
    "emr-fcp-6.8.0-1006-intel.log": (0, "initialized", 10, ["tdx-initialized"], ["none"]),
    "spr-8480c-256g.log": (0, "initialized", 8, ["tdx-initialized"], ["none"]),
    "emr-fcp-e820-first-2g.log": (1, "failed", 37, ["memblock-holes"],
                                  ["kernel-cmr-holes", "bios-fewer-holes", "collect-cmrs"]),
    "tdx-1.0-module-fail.log": (1, "failed", 6, ["module-1.0"], ["module-1.5"]),
    "spr-module-1.0-rd-fail.log": (1, "failed", 3, ["module-1.0"], ["module-1.5"]),
    "seamcall-0x21-fail.log": (1, "failed", 3, ["module-too-old-for-cpu"], ["update-bios"]),
    "r760-module-not-loaded.log": (1, "failed", 3, ["module-not-loaded"],
                                   ["bios-enable-seam-loader", "update-bios", "ask-vendor"]),
    "6.5-not-enabled-by-bios.log": (1, "failed", 2, ["seam-not-enabled"],
                                    ["bios-enable-tdx", "update-bios"]),
    "td-partitioning-firmware-bug.log": (1, "failed", 2,
                                         ["firmware-bug-seam", "seam-not-enabled"],
                                         ["update-bios", "bios-enable-tdx"]),
}


def test_every_shipped_log_is_in_the_table():
    assert sorted(p.name for p in LOGS.glob("*.log")) == sorted(SHIPPED)


@pytest.mark.parametrize("folder", [LOGS, SHARED_LOGS], ids=["package", "shared copy"])
@pytest.mark.parametrize("log", sorted(SHIPPED))
def test_each_shipped_log_names_a_cause_and_an_action(capsys, folder, log):
    if not (folder / log).exists():
        pytest.skip(f"no {folder / log} here")
    exit_code, outcome, line, causes, actions = SHIPPED[log]
    code, report = run_json(capsys, folder / log)
    assert code == exit_code
    found = report["log_outcome"]
    assert (found["outcome"], found["line"]) == (outcome, line)
    assert [c["key"] for c in found["causes"]] == causes
    assert [a["key"] for a in found["actions"]] == actions
    assert all(c["text"] == CAUSES[c["key"]] for c in found["causes"])
    assert all(a["text"] == ACTIONS[a["key"]] for a in found["actions"])


@pytest.mark.parametrize("log", ["r760-module-not-loaded.log", "seamcall-0x21-fail.log",
                                 "spr-module-1.0-rd-fail.log", "6.5-not-enabled-by-bios.log",
                                 "td-partitioning-firmware-bug.log"])
def test_logs_without_a_memory_map_are_diagnosed_not_refused(capsys, log):
    """The five logs that used to end in "no memory map" (exit 2)."""
    code, report = run_json(capsys, LOGS / log)
    assert code == 1 and report["modelled"] is False
    assert report["tdmrs"] == [] and report["error"] is None
    assert "no memory map in this log" in report["input"]["notes"][0]
    assert [e["line"] for e in report["diagnosis"]] == list(
        range(1, len((LOGS / log).read_text().splitlines()) + 1))


def test_a_report_without_a_map_has_the_keys_of_one_with_a_map(capsys):
    _, modelled = run_json(capsys, LOGS / "spr-8480c-256g.log")
    _, log_only = run_json(capsys, LOGS / "seamcall-0x21-fail.log")
    assert sorted(log_only) == sorted(modelled)
    assert modelled["modelled"] is True and modelled["failed_tdmr_holes"] is None


def test_the_readme_example_still_reproduces_the_logged_failure(capsys):
    code, report = run_json(capsys, LOGS / "emr-fcp-e820-first-2g.log")
    assert code == 1 and report["reproduces_log"] == {"pamt_kb": None, "error": True}
    assert report["error"]["errno"] == -28


# --- what each line says ------------------------------------------------------------------------

def entry(report: dict, line: int) -> dict:
    return next(e for e in report["diagnosis"] if e["line"] == line)


def _leaves() -> dict[str, str]:
    """Every leaf spec.seamcall names (its TDH_* and P_SEAMLDR_* constants), read from the
    module rather than from the number table under test."""
    return {attr: value for attr, value in vars(seamcall).items()
            if attr.startswith(("TDH_", "P_SEAMLDR_")) and isinstance(value, str)}


def test_every_leaf_the_model_names_is_named_back_from_the_kernel_s_message(tmp_path, capsys):
    """The line the kernel prints for a failed SEAMCALL carries only the leaf's number: the
    model writes it (`seamcall_failed_message`) and the diagnosis reads it back, so each leaf
    needs a number of its own, or a failure of one is reported as another's."""
    leaves = _leaves()
    assert len(leaves) >= 11 and set(leaves.values()) <= set(LEAF_NUMBERS)
    assert len(set(LEAF_NUMBERS.values())) == len(LEAF_NUMBERS)
    for number, leaf in enumerate(sorted(leaves.values())):
        line = f"[   19.{number:06d}] virt/tdx: {seamcall_failed_message(leaf, 0xC000010000000000)}"
        _, report = run_json(capsys, write(tmp_path, [line], f"{number}.log"))
        failed = entry(report, 1)
        assert failed["leaf"]["name"] == leaf and failed["leaf"]["number"] == LEAF_NUMBERS[leaf]


def test_every_status_the_module_model_answers_has_a_number_of_its_own():
    """The model answers statuses by name and the diagnosis names numbers from a boot log:
    every name the module model can answer needs a number, none shared (or a failure is
    reported as another's, or a refusal is not known to be one)."""
    answered = {value for attr, value in vars(module).items()
                if attr.startswith("TDX_") and isinstance(value, str)}
    assert answered == set(module.STATUS_CODES) == module.REFUSALS
    numbers = [*module.STATUS_CODES.values(), *module.OTHER_STATUS_CODES.values()]
    assert len(set(numbers)) == len(numbers)


def test_every_status_number_has_the_module_s_layout():
    """A completion status packs its fields: the error and non-recoverable bits, reserved bits
    61:48 clear, the class, details L1, and details L2, which only an operand error uses (it
    names the operand). A number one off from the published one breaks the layout (+1 lands
    in details L2, -1 borrows from details L1), and each number reads back as its name."""
    for name, code in {**module.STATUS_CODES, **module.OTHER_STATUS_CODES}.items():
        fields = decode_status(code)
        assert code >> 48 & 0x3FFF == 0, name
        assert fields["details_l2"] == 0 or fields["operand"] is not None, name
        assert fields["name"] == name


def test_a_seamcall_failure_is_decoded(capsys):
    _, report = run_json(capsys, LOGS / "seamcall-0x21-fail.log")
    failed = entry(report, 3)
    assert failed["message"] == "seamcall-failed" and failed["severity"] == "failure"
    assert failed["stage"].startswith("tdx_cpu_enable -> try_init_module_global: TDH.SYS.INIT")
    assert failed["leaf"] == {"number": 33, "hex": "0x21", "name": "TDH.SYS.INIT"}
    assert failed["status"] | {"meaning": None, "class_meaning": None} == {
        "code": "0xc000090000000000", "name": "TDX_INCORRECT_CPUID_VALUE", "meaning": None,
        "error": True, "non_recoverable": True, "class": 9, "class_meaning": None,
        "details_l1": 0, "details_l2": 0, "operand": None}
    assert "CPUID" in failed["status"]["class_meaning"]
    assert failed["errno"]["value"] == -5 and failed["errno"]["name"] == "EIO"
    assert not failed["out_of_tree"] and failed["kernels"] == "mainline v6.8 and later"
    keyids = entry(report, 1)
    assert keyids["severity"] == "info" and "32 to 63 (32)" in keyids["meaning"]


def test_the_register_dump_names_the_metadata_field_asked_for(capsys):
    _, report = run_json(capsys, LOGS / "spr-module-1.0-rd-fail.log")
    assert "MAX_TDMRS, the first v6.8 reads" in entry(report, 4)["meaning"]
    assert entry(report, 4)["leaf"]["name"] == "TDH.SYS.RD"
    assert entry(report, 6)["errno"]["value"] == -5
    assert "the failure on line 3" in entry(report, 6)["meaning"]
    assert entry(report, 6)["causes"] == []  # the cause is line 3's
    assert "line 3" in entry(report, 7)["meaning"]  # KVM gives up because of line 3


def test_the_module_version_line_warns_of_a_1_0_module(capsys):
    _, report = run_json(capsys, LOGS / "tdx-1.0-module-fail.log")
    first = entry(report, 1)
    assert first["severity"] == "warning" and [c["key"] for c in first["causes"]] == [
        "module-1.0"]
    assert first["out_of_tree"]  # mainline v6.8 prints no module line


def test_out_of_tree_wordings_are_marked(capsys):
    _, report = run_json(capsys, LOGS / "td-partitioning-firmware-bug.log")
    assert all(e["out_of_tree"] for e in report["diagnosis"])
    assert "td-partitioning" in entry(report, 2)["kernels"]
    assert entry(report, 2)["status"]["name"] == "TDX_SEAMCALL_GP"
    assert entry(report, 3)["errno"] == {"value": -19, "name": "ENODEV",
                                         "meaning": entry(report, 3)["errno"]["meaning"]}
    _, report = run_json(capsys, LOGS / "4node-1t-6.5.log")
    assert all(e["out_of_tree"] for e in report["diagnosis"])


@pytest.mark.parametrize("line, key, severity, causes, errno", [
    ("virt/tdx: frame pointer (RBP) clobber bug present, upgrade TDX module", "no-rbp-mod",
     "failure", ["module-without-no-rbp-mod"], -22),
    ("virt/tdx: Module version: 1.0.03", "module-info", "warning", ["module-1.0"], None),
    ("virt/tdx: Module version: 1.5.06", "module-info", "info", [], None),
    ("virt/tdx: TDX module 2.0.08.00, build number 882, build date 0134fed5", "module-info",
     "info", [], None),
    ("virt/tdx: TDX-Module initialization failed (-12)", "init-failed", "failure",
     ["pamt-alloc-failed"], -12),
    ("virt/tdx: module initialization failed (-5)", "init-failed", "failure",
     ["failure-line-missing"], -5),
    ("virt/tdx: TDX requires all packages to have an online CPU. Delete all TDs in order to "
     "offline all CPUs of a package.", "offline-refused", "warning",
     ["offline-last-cpu-of-package"], -16),
    ("kexec: Not allowed on platform with tdx_pw_mce bug", "kexec-refused", "warning",
     ["kexec-erratum"], -95),
    ("mce: [Hardware Error]: Machine check: TDX private memory error. Possible kernel bug.",
     "machine-check", "failure", ["machine-check-tdx-memory"], None),
    ("virt/tdx: initialization failed: Hibernation support is enabled", "hibernation",
     "failure", ["hibernation-enabled"], None),
    ("virt/tdx: initialization failed: too few private KeyIDs available (1).",
     "too-few-keyids", "failure", ["too-few-keyids"], None),
    ("virt/tdx: initialization failed: TDMRs exhausted.", "tdmrs-exhausted", "failure",
     ["too-many-tdmrs"], -28),
    ("virt/tdx: consumed TDMRs reaching limit: 62 used out of 64", "tdmrs-near-limit",
     "warning", ["tdmrs-near-limit"], None),
    ("virt/tdx: SEAMCALL (0x000000000000002d) failed: 0xc000050c00000000", "seamcall-failed",
     "failure", ["cpus-offline-at-init"], -5),
    ("virt/tdx: SEAMCALL (0x000000000000002d) failed: 0xc0000a0200000003", "seamcall-failed",
     "failure", ["tdmr-list-rejected"], -5),
    ("tdx: SEAMCALL failed: CPU 94: leaf 33, error 0xc000092100000122.", "seamcall-failed",
     "failure", ["platform-config-rejected"], -5),
    ("tdx: Guest detected", "guest-log", "info", [], None),
    ("virt/tdx: something new", "unknown", "info", ["unknown-line"], None),
])
def test_each_kind_of_line(tmp_path, capsys, line, key, severity, causes, errno):
    path = write(tmp_path, ["[    1.0] " + line])
    _, report = run_json(capsys, path)
    [found] = report["diagnosis"]
    assert (found["message"], found["severity"]) == (key, severity)
    assert [c["key"] for c in found["causes"]] == causes
    assert (found["errno"] or {}).get("value") == errno
    assert found["text"] == line


def test_every_message_has_known_causes_and_actions():
    for message in MESSAGES:
        assert set(message.causes) <= set(CAUSES) and set(message.actions) <= set(ACTIONS)


def test_status_decoding():
    operand = decode_status(0xC000010000000001)
    assert (operand["name"], operand["operand"], operand["class"]) == (
        "TDX_OPERAND_INVALID", "RCX", 1)
    assert decode_status(0x0000081500000000) | {"meaning": "", "class_meaning": ""} == {
        "code": "0x0000081500000000", "name": "TDX_KEY_CONFIGURED", "meaning": "",
        "error": False, "non_recoverable": False, "class": 8, "class_meaning": "",
        "details_l1": 0x15, "details_l2": 0, "operand": None}
    assert decode_status(0x8000FF00FFFF0000)["name"] == "TDX_SEAMCALL_VMFAILINVALID"
    assert decode_status(0xC000050500000000)["name"] == "TDX_SYS_NOT_READY"  # from spec.module
    unknown = decode_status(0xC0007F0000000000)
    assert unknown["name"] is None and unknown["class_meaning"].startswith("a class this")


def test_a_log_that_stops_after_the_bios_lines(tmp_path, capsys):
    lines = ["virt/tdx: BIOS enabled: private KeyID range [32, 64)",
             "virt/tdx: Disable ACPI S3. Turn off TDX in the BIOS to use ACPI S3."]
    code, report = run_json(capsys, write(tmp_path, lines))
    assert code == 0 and report["log_outcome"]["outcome"] == "no-result"
    assert [c["key"] for c in report["log_outcome"]["causes"]] == [
        "init-not-requested", "silent-gp", "log-incomplete"]
    asked = ["Command line: BOOT_IMAGE=/vmlinuz ro kvm_intel.tdx=1 nohibernate", *lines]
    _, report = run_json(capsys, write(tmp_path, asked))
    assert [c["key"] for c in report["log_outcome"]["causes"]] == ["silent-gp", "log-incomplete"]


def test_a_file_with_no_tdx_line_and_no_map_is_still_an_input_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "checker", "tdmr",
                           str(write(tmp_path, ["hello", "world"]))],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and "no memory map in this log" in proc.stderr


def test_a_what_if_run_is_judged_by_the_model_alone(tmp_path, capsys):
    """With --holes cmr the question is what another kernel would do: the v6.8 failure in the
    log no longer sets the exit status, the model's success does."""
    path = tmp_path / "with-cmr.log"
    path.write_text((REPO / "checker" / "data" / "maps" / "emr-fcp-e820-first-2g-with-cmr.log")
                    .read_text() + (LOGS / "emr-fcp-e820-first-2g.log").read_text()
                    .split("\n", 36)[36])
    assert run_json(capsys, path)[0] == 1
    code, report = run_json(capsys, path, "--holes", "cmr")
    assert code == 0 and report["log_outcome"]["outcome"] == "failed"


# --- the holes of the failing TDMR ------------------------------------------------------------

def test_the_failing_tdmr_s_holes_by_e820_line(capsys):
    _, report = run_json(capsys, LOGS / "emr-fcp-e820-first-2g.log")
    holes = report["failed_tdmr_holes"]
    assert (holes["tdmr"], holes["base"], holes["end"], holes["limit"]) == (0, 0, 2 << 30, 16)
    assert holes["reserved_needed"] == 18 and len(holes["holes"]) == 17
    assert holes["source"] == "e820"
    first, *_, last = holes["holes"]
    assert [(p["line"], p["type"], p["why"]) for p in first["made_of"]] == [
        (1, "usable", "below 1 MiB, never TDX memory"), (2, "reserved", None)]
    assert [(p["line"], p["type"]) for p in holes["holes"][-2]["made_of"]] == [
        (32, "reserved"), (33, "ACPI NVS"), (34, "ACPI data")]
    assert (last["start"], last["end"], last["made_of"][0]["line"]) == (0x6F800000, 2 << 30, 36)
    assert holes["cmr"] == {"known": False, "reserved_needed": None, "collect": "collect-cmrs"}


def test_with_the_cmrs_known_the_holes_say_what_cmr_holes_would_need(capsys):
    _, report = run_json(capsys, REPO / "checker" / "data" / "maps" /
                         "emr-fcp-e820-first-2g-with-cmr.log")
    assert report["failed_tdmr_holes"]["cmr"] == {"known": True, "reserved_needed": 3,
                                                  "collect": None}
    assert report["log_outcome"]["outcome"] == "none"


def test_the_text_names_the_holes_the_diagnosis_and_the_glossary(capsys):
    main(["tdmr", str(LOGS / "emr-fcp-e820-first-2g.log")], prog="tdx-checker")
    text = capsys.readouterr().out.splitlines()
    start = text.index("holes of TDMR 0 [0x0, 0x80000000) by e820 entry: 17 of the 18 reserved "
                       "areas it needs (limit 16)")
    assert text[start + 16].split() == ["[0x6e9cf000,", "0x6f7ff000)", "line", "32", "reserved,",
                                        "line", "33", "ACPI", "NVS,", "line", "34", "ACPI",
                                        "data"]
    assert "diagnosis: TDX init failed (line 37); 2 TDX lines" in text
    assert text[-1].startswith("words used above (TDX, TDX module, errno, TDMR, PAMT, reserved "
                               "area and ")
    assert text[-1].endswith("`tdx-checker glossary TERM` explains each")
    assert all(len(line) <= 100 for line in text[start:-1])


# --- inputs: standard input, counterexample files ----------------------------------------------

def test_standard_input():
    log = (LOGS / "r760-module-not-loaded.log").read_text()
    proc = subprocess.run([sys.executable, "-m", "checker", "tdmr", "-", "--format", "json"],
                          input=log, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["input"]["file"] == "<stdin>"
    assert report["log_outcome"]["causes"][0]["key"] == "module-not-loaded"


def test_a_counterexample_file_is_a_map_for_tdmr(capsys):
    path = next((REPO / "counterexamples").glob("rsvd-exhausted-*.json"))
    code, report = run_json(capsys, path)
    assert code == 1 and report["input"]["kind"] == "counterexample"
    assert report["error"]["errno"] == -28
    assert report["diagnosis"] == [] and report["log_outcome"]["outcome"] == "none"
    assert report["failed_tdmr_holes"]["source"] == "counterexample"


# --- the glossary -------------------------------------------------------------------------------

def test_glossary_command(capsys):
    assert main(["glossary"]) == 0
    everything = capsys.readouterr().out
    assert all(term.name in everything for term in glossary.TERMS)
    assert main(["glossary", "reserved areas"]) == 0
    assert capsys.readouterr().out.startswith("reserved area (also: ")
    assert main(["glossary", "hkid"]) == 0
    assert capsys.readouterr().out.startswith("KeyID")
    assert main(["glossary", "nonsense"]) == 2
    assert "no glossary entry for 'nonsense'" in capsys.readouterr().err


def test_the_glossary_document_is_the_glossary():
    assert (REPO / "docs" / "glossary.md").read_text() == glossary.render_markdown()
