"""Task families and their verifiers against known right and wrong answers, and the sandbox
that runs model-written code: no network, no writes outside its directory, no endless loops."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest

from hookforge_lm.sandbox import Limits, run_python
from hookforge_lm.tasks.arith import Arith, ArithOptions
from hookforge_lm.tasks.programs import Abduction, Deduction, ProgramOptions
from hookforge_lm.tasks.sat import Sat, SatOptions, parse_assignment, satisfied


def instances(task, n=30, seed=0):
    rng = np.random.default_rng(seed)
    return [task.generate(rng, float(d)) for d in np.linspace(0, 1, n)]


@pytest.mark.parametrize("task", [Arith(ArithOptions(ops=["+", "-", "*"], max_digits=3)),
                                  Sat(), Sat(SatOptions(method="solver")),
                                  Abduction(), Deduction(ProgramOptions(operations=["add", "mul", "mod",
                                                                                    "div", "sub"]))],
                         ids=["arith", "sat-planted", "sat-solver", "abd", "ded"])
def test_reference_answers_score_one_and_instances_are_json_and_seeded(task):
    made = instances(task, n=12)
    for instance in made:
        json.dumps(instance.data)  # written to the run's data files
        assert task.verify(instance.data, instance.answer) == 1.0, instance
    again = instances(task, n=12)
    assert [i.prompt for i in made] == [i.prompt for i in again]
    assert len({i.prompt for i in made}) > 6


def test_wrong_answers_score_zero():
    arith = Arith()
    case = arith.generate(np.random.default_rng(1), 0.5)
    assert arith.verify(case.data, str(case.data["result"] + 1)) == 0.0
    assert arith.verify(case.data, "banana") == 0.0
    assert arith.verify(case.data, f" {case.data['result']} is the sum") == 1.0

    abd = Abduction()
    case = abd.generate(np.random.default_rng(2), 1.0)
    assert abd.verify(case.data, "__import__('os').system('true')") == 0.0  # never evaluated
    assert abd.verify(case.data, "not a number") == 0.0
    wrong = next(str(x) for x in range(100) if x != int(case.answer))
    expected = abd.verify(case.data, wrong)
    assert expected in (0.0, 1.0)  # another input may produce the same output, and counts

    ded = Deduction()
    case = ded.generate(np.random.default_rng(3), 0.0)
    assert ded.verify(case.data, "def f(x):\n    return 'nope'\n") == 0.0
    assert ded.verify(case.data, "this is not python") == 0.0
    assert ded.verify(case.data, "def g(x):\n    return x\n") == 0.0  # no f


def test_a_program_passing_some_tests_gets_partial_credit():
    ded = Deduction()
    data = {"inputs": [1, 2, 3, 4], "outputs": [2, 4, 6, 9]}
    assert ded.verify(data, "def f(x):\n    return 2 * x\n") == 0.75
    assert ded.verify(data, "print('ab12cd', '[2, 4, 6, 9]')\ndef f(x):\n    return 0\n") == 0.0


def test_sat_checks_every_clause_and_partial_credit_counts_them():
    clauses = [[1, 2, -3], [-1, 3, 4], [-2, -3, -4]]
    data = {"n_vars": 4, "clauses": clauses}
    assert Sat().verify(data, "1 -2 3 -4") == 1.0
    assert Sat().verify(data, "-1 2 3 4") == 0.0  # the third clause fails
    assert Sat(SatOptions(partial_credit=True)).verify(data, "-1 2 3 4") == pytest.approx(2 / 3)
    assert Sat().verify(data, "1 -1 3 -4") == 0.0  # x1 both ways
    assert Sat().verify(data, "1 9") == 0.0  # no variable 9
    assert parse_assignment("1 -2", 4) == {1: True, 2: False}
    assert satisfied(clauses, {1: True, 3: True, 2: False, 4: False}) == 3


def test_sat_instances_sit_near_the_threshold_and_are_satisfiable():
    from pysat.solvers import Solver

    sat = Sat(SatOptions(min_vars=6, max_vars=6))
    for instance in instances(sat, n=5):
        assert len(instance.data["clauses"]) == round(4.26 * 6)
        with Solver(name="minisat22", bootstrap_with=instance.data["clauses"]) as solver:
            assert solver.solve()


def test_difficulty_sets_the_size():
    arith = Arith(ArithOptions(min_digits=1, max_digits=4))
    rng = np.random.default_rng(0)
    assert arith.generate(rng, 0.0).data["result"] < 19
    sat = Sat(SatOptions(min_vars=3, max_vars=9))
    assert sat.generate(rng, 0.0).data["n_vars"] == 3 and sat.generate(rng, 1.0).data["n_vars"] == 9


# -- the sandbox --------------------------------------------------------------------------------
def test_sandbox_runs_a_program_with_an_empty_environment(monkeypatch):
    monkeypatch.setenv("HOOKFORGE_SECRET_TOKEN", "s3cret")
    result = run_python("import os, sys\nprint(sorted(os.environ), sys.flags.isolated)")
    assert result.ok, result.stderr
    assert "HOOKFORGE_SECRET_TOKEN" not in result.stdout and "s3cret" not in result.stdout


def test_sandbox_refuses_the_network():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.settimeout(3)
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(_accept(server)), daemon=True)
    thread.start()
    result = run_python(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), "
                        f"timeout=2)\ns.sendall(b'leak')\nprint('connected')")
    thread.join(5)
    server.close()
    assert not result.ok and "connected" not in result.stdout
    assert "PermissionError" in result.stderr
    assert accepted == [None]  # nothing reached the server


def _accept(server):
    try:
        connection, _ = server.accept()
        connection.close()
        return "connection"
    except OSError:
        return None


def test_sandbox_refuses_writes_outside_its_directory(tmp_path):
    target = tmp_path / "escaped.txt"
    keep = tmp_path / "keep.txt"
    keep.write_text("mine")
    for program in (f"open({str(target)!r}, 'w').write('x')",
                    f"import os\nos.remove({str(keep)!r})",
                    f"import os\nos.rename({str(keep)!r}, 'stolen.txt')",
                    f"import pathlib\npathlib.Path({str(target)!r}).write_text('x')",
                    f"import os\nos.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)",
                    "import os\nos.chdir('/tmp')\nopen('x.txt', 'w')"):
        result = run_python(program)
        assert not result.ok and "PermissionError" in result.stderr, program
    assert not target.exists() and keep.read_text() == "mine"
    inside = run_python("open('notes.txt', 'w').write('ok')\nprint(open('notes.txt').read())")
    assert inside.ok and inside.stdout.strip() == "ok"  # its own directory is writable


def test_sandbox_refuses_processes_and_native_code():
    for program in ("import subprocess\nsubprocess.run(['true'])", "import os\nos.system('true')",
                    "import ctypes", "import os\nos.fork()"):
        result = run_python(program)
        assert not result.ok and "PermissionError" in result.stderr, program


def test_sandbox_stops_endless_loops_and_memory_hogs():
    started = time.perf_counter()
    looping = run_python("while True:\n    pass", limits=Limits(wall_s=1.0, cpu_s=1))
    assert looping.timed_out and not looping.ok
    assert time.perf_counter() - started < 5
    sleeping = run_python("import time\ntime.sleep(30)", limits=Limits(wall_s=0.5))
    assert sleeping.timed_out
    hog = run_python("x = bytearray(2 * 1024 ** 3)", limits=Limits(memory_mb=128))
    assert not hog.ok and "MemoryError" in hog.stderr


def test_a_verifier_that_loops_scores_zero_in_time():
    ded = Deduction(ProgramOptions(timeout_s=0.5))
    started = time.perf_counter()
    assert ded.verify({"inputs": [1], "outputs": [2]}, "def f(x):\n    while True:\n        pass\n") == 0.0
    assert time.perf_counter() - started < 4


def test_families_are_a_kind_of_the_core(hookforge_cli):
    shown = hookforge_cli("plugins", "show", "task", "sat")
    assert shown.returncode == 0 and "clause_ratio" in shown.stdout and "partial_credit" in shown.stdout
    listed = hookforge_cli("plugins")
    for name in ("arith", "sat", "abd", "ded"):
        assert any(line.split()[:2] == ["task", name] for line in listed.stdout.splitlines())
