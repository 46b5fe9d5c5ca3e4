"""Adversarial tests for augury.evals.sandbox: one attack per test, each must be contained AND the next
program must still run normally. Set AUGURY_SANDBOX_MODE=plain (or another mode) to test a fallback."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from augury.evals import sandbox
from augury.evals.sandbox import TOKEN_VAR, SandboxLimits, run_python, sandbox_mode

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox targets Linux")


def layers() -> tuple[str, ...]:
    return run_python("pass").layers


def sandbox_processes() -> list[int]:
    """Pids of live processes carrying a token of this test process's runs (none may outlive a run)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if f"{TOKEN_VAR}={os.getpid()}-".encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def processes_with_cmdline(fragment: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if fragment.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return [pid for pid in found if pid != os.getpid()]


def assert_next_program_runs() -> None:
    result = run_python("print(sum(range(10)))", SandboxLimits(timeout_s=10))
    assert result.passed and result.status == "passed" and result.stdout == "45\n", result
    assert sandbox_processes() == []


def run(program: str, **limits) -> object:
    return run_python(textwrap.dedent(program), SandboxLimits(**limits))


def test_ordinary_program_passes_and_failure_fails():
    ok = run("print('hello')")
    bad = run("raise SystemExit(3)")
    assert (ok.passed, ok.status, ok.stdout, ok.returncode) == (True, "passed", "hello\n", 0)
    assert (bad.passed, bad.status, bad.returncode, bad.reason) == (False, "failed", 3, "exit")


def test_infinite_loop_is_killed_at_the_timeout():
    result = run("while True:\n    pass", timeout_s=1.0)
    assert result.status == "timeout" and not result.passed
    assert 1.0 <= result.duration_s < 4.0
    assert sandbox_processes() == []
    assert_next_program_runs()


def test_cpu_time_limit_stops_a_busy_program_before_the_wall_clock():
    result = run("while True:\n    pass", timeout_s=20.0, cpu_seconds=1)
    assert (result.status, result.reason) == ("timeout", "cpu-time")
    assert result.duration_s < 10.0
    assert_next_program_runs()


@pytest.mark.integration
def test_fork_bomb_is_contained_and_machine_stays_responsive():
    bomb = """
    import os
    while True:
        try:
            os.fork()
        except OSError:
            pass
    """
    active = layers()
    bound = "namespace-user" in active or "cgroup" in active or any(x.startswith("uid-") for x in active)
    if os.geteuid() == 0 and not bound:
        pytest.skip(f"mode {sandbox_mode()} runs as root, which RLIMIT_NPROC does not bind: a real fork bomb")
    outcome = {}
    attacker = threading.Thread(target=lambda: outcome.update(result=run(bomb, timeout_s=4.0)))
    attacker.start()
    time.sleep(1.0)
    start = time.monotonic()  # the harness's machine must still start processes promptly mid-bomb
    subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=20)
    assert time.monotonic() - start < 10.0
    attacker.join()
    assert outcome["result"].status in ("timeout", "failed") and not outcome["result"].passed
    assert sandbox_processes() == []
    assert_next_program_runs()


def test_memory_hog_gets_memory_error():
    hog = """
    blocks = []
    while True:
        blocks.append(bytearray(64 * 1024 * 1024))
    """
    result = run(hog, memory_bytes=512 * 1024**2)
    assert (result.status, result.reason) == ("failed", "memory")
    assert "MemoryError" in result.stderr
    assert_next_program_runs()


def test_memory_spread_over_processes_is_capped_in_total():
    if "cgroup" not in layers():
        pytest.skip("without a cgroup, memory_bytes caps each process, not their sum")
    spread = """
    import os
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            block = b'x' * (300 * 1024 * 1024)  # within the per-process limit; 4 of them are not
            import time; time.sleep(1.5)
            os._exit(0)
        children.append(pid)
    codes = [os.waitpid(pid, 0)[1] for pid in children]
    raise SystemExit(0 if all(code == 0 for code in codes) else 1)
    """
    result = run(spread, memory_bytes=512 * 1024**2)
    assert (result.status, result.reason) == ("failed", "memory")
    assert_next_program_runs()


def test_file_size_limit_stops_a_huge_write():
    result = run("open('big', 'wb').write(b'x' * (4 * 1024 * 1024))", file_size_bytes=1024 * 1024)
    assert not result.passed and result.status == "failed"
    assert_next_program_runs()


def _require_fs_protection() -> None:
    active = layers()
    if "readonly-root" not in active and not any(layer.startswith("uid-") for layer in active):
        pytest.skip(f"mode {sandbox_mode()} has no file-system protection here (see docs/sandbox.md)")


def assert_write_blocked(directory, mode: int) -> None:
    directory.chmod(mode)
    target = directory / "planted.txt"
    result = run(f"open({str(target)!r}, 'w').write('owned')")
    assert not target.exists() and not result.passed
    assert_next_program_runs()


def test_cannot_write_outside_its_directory(tmp_path):
    _require_fs_protection()
    assert_write_blocked(tmp_path, 0o755)


def test_cannot_write_into_world_writable_directory(tmp_path):
    if "readonly-root" not in layers():
        pytest.skip("needs the read-only mount layer (mount namespace); file permissions allow this")
    assert_write_blocked(tmp_path, 0o777)


def test_cannot_delete_outside_its_directory(tmp_path):
    _require_fs_protection()
    tmp_path.chmod(0o755)
    victim_dir = tmp_path / "precious"
    victim_dir.mkdir()
    victim = victim_dir / "data.txt"
    victim.write_text("keep me")
    attack = f"""
    import os, shutil
    for attempt in (lambda: os.remove({str(victim)!r}), lambda: shutil.rmtree({str(victim_dir)!r})):
        try:
            attempt()
        except OSError as exc:
            print(exc)
    """
    run(attack)
    assert victim.read_text() == "keep me"
    assert_next_program_runs()


def test_work_directory_is_private_and_removed_afterwards():
    result = run("import os; open('scratch', 'w').write('x'); print(os.getcwd())")
    workdir = result.stdout.strip()
    assert result.passed and "augury-sandbox-" in workdir
    assert not os.path.exists(workdir)


def test_environment_secrets_are_scrubbed(monkeypatch):
    monkeypatch.setenv("AUGURY_TEST_API_KEY", "sk-very-secret-value")
    result = run("import os; print(dict(os.environ)); print(open('/proc/self/environ', 'rb').read())")
    assert result.passed
    assert "sk-very-secret-value" not in result.stdout and "AUGURY_TEST_API_KEY" not in result.stdout
    assert_next_program_runs()


def test_cannot_read_the_harness_environment_through_proc(monkeypatch):
    active = layers()
    if "namespace-pid" not in active and not any(layer.startswith("uid-") for layer in active):
        pytest.skip(f"mode {sandbox_mode()} runs as the harness's user without a pid namespace")
    monkeypatch.setenv("AUGURY_TEST_API_KEY", "sk-very-secret-value")
    snoop = """
    import os
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            print(open(f'/proc/{pid}/environ', 'rb').read())
        except OSError:
            pass
    """
    result = run(snoop)
    assert "sk-very-secret-value" not in result.stdout
    assert_next_program_runs()


def assert_connection_blocked(listener: socket.socket, address, make_socket: str) -> None:
    """The program builds socket `s` with `make_socket` and tries `address`; nothing may get through."""
    listener.listen(1)
    attack = "try:\n" + textwrap.indent(make_socket + f"s.connect({address!r})\nprint('CONNECTED')\n", "    ")
    attack += "except OSError as exc:\n    print('blocked', exc)\n"
    result = run_python(attack)
    listener.settimeout(0.2)
    with pytest.raises(OSError):  # nothing ever reached the listener
        listener.accept()
    assert "blocked" in result.stdout and "CONNECTED" not in result.stdout
    assert_next_program_runs()


def test_network_connection_to_local_listener_fails():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        assert_connection_blocked(listener, listener.getsockname(),
                                  "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n")


def test_raw_socket_module_cannot_reach_the_network():
    if "namespace-net" not in layers():
        pytest.skip("without a network namespace only the Python-level guard applies, which _socket bypasses")
    bypass = ("import importlib, sys\nsys.modules.pop('_socket', None)\nraw = importlib.import_module('_socket')\n"
              "s = raw.socket(raw.AF_INET, raw.SOCK_STREAM)\n")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        assert_connection_blocked(listener, listener.getsockname(), bypass)


def test_allow_network_lets_a_trusted_program_connect():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        result = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)\n",
                            SandboxLimits(allow_network=True))
    assert result.passed, result.stderr
    assert "namespace-net" not in result.layers and "python-net-guard" not in result.layers


def test_unix_socket_of_the_host_is_unreachable(tmp_path):
    if "hidden-dirs" not in layers():
        pytest.skip("needs the mount namespace that hides /tmp; a world-connectable socket is reachable")
    tmp_path.chmod(0o755)
    path = tmp_path / "agent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        path.chmod(0o777)
        assert_connection_blocked(listener, str(path),
                                  "import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n")


def test_hidden_data_directory_cannot_be_read(monkeypatch):
    if "hidden-dirs" not in layers():
        pytest.skip("needs a mount namespace; plain modes cannot hide directories (see docs/sandbox.md)")
    # A folder that only hidden_dirs covers: /tmp is left visible for this test (the work dirs go elsewhere), and
    # it is not the cwd.
    monkeypatch.setattr(sandbox, "HIDDEN_ALWAYS", tuple(d for d in sandbox.HIDDEN_ALWAYS if d != "/tmp"))
    data = Path(tempfile.mkdtemp(prefix="augury-test-data-", dir="/tmp"))
    work = Path(tempfile.mkdtemp(prefix="augury-test-tmpdir-", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    try:
        work.chmod(0o755)
        data.chmod(0o755)
        answers = data / "answers.jsonl"
        answers.write_text('{"canonical_solution": "    return 42"}\n')
        answers.chmod(0o644)
        read = f"print(open({str(answers)!r}).read())"
        seen = run_python(read)
        assert seen.passed and "return 42" in seen.stdout, seen  # readable when not hidden
        hidden = run_python(read, SandboxLimits(hidden_dirs=(str(data),)))
        assert not hidden.passed and "return 42" not in hidden.stdout and "FileNotFoundError" in hidden.stderr
        assert_next_program_runs()
    finally:
        shutil.rmtree(data)
        shutil.rmtree(work)


def test_work_directory_cannot_fill_the_disk():
    if "tmpfs-workdir" not in layers():
        pytest.skip("plain modes use a disk directory, limited per file by RLIMIT_FSIZE only")
    fill = """
    for i in range(100):
        with open(f'chunk{i}', 'wb') as f:
            f.write(b'x' * (1024 * 1024))
    """
    result = run(fill, workdir_bytes=8 * 1024 * 1024)
    assert not result.passed and "No space left on device" in result.stderr
    assert_next_program_runs()


def test_output_flood_is_capped_and_killed():
    result = run("while True:\n    print('x' * 10000)", max_output_bytes=100_000, timeout_s=20.0)
    assert (result.status, result.reason) == ("failed", "output-limit")
    assert len(result.stdout) <= 100_000
    assert result.duration_s < 10.0
    assert_next_program_runs()


def test_signalling_the_parent_and_its_group_cannot_hurt_the_harness():
    attack = """
    import os, signal
    for target in (lambda: os.kill(os.getppid(), signal.SIGKILL),
                   lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL),
                   lambda: os.killpg(os.getpgid(0), signal.SIGTERM)):
        try:
            target()
        except OSError as exc:
            print(exc)
    """
    result = run(attack)
    assert result.status in ("passed", "failed")  # reaching this line means the test process survived
    assert_next_program_runs()


def test_supervisor_file_descriptors_are_out_of_reach():
    # Its status pipe is how the program's result is reported; the program must not be able to forge it.
    attack = """
    import os
    fd_dir = f'/proc/{os.getppid()}/fd'
    try:
        fds = os.listdir(fd_dir)
    except OSError as exc:
        fds = []
        print('no listing', exc)
    for fd in fds:
        try:
            with open(f'{fd_dir}/{fd}', 'wb') as f:
                f.write(b'{"layers": [], "returncode": 0, "signal": null, "fatal": null}')
            print('OPENED', fd)
        except OSError as exc:
            print('denied', fd, exc)
    raise SystemExit(3)
    """
    result = run(attack)
    assert "OPENED" not in result.stdout
    assert (result.status, result.returncode) == ("failed", 3)
    assert_next_program_runs()


def test_kill_everything_cannot_reach_the_harness():
    active = layers()
    if "namespace-pid" not in active and not any(layer.startswith("uid-") for layer in active):
        pytest.skip(f"mode {sandbox_mode()}: kill(-1) as the harness's own user would kill the test runner")
    run("import os, signal\nos.kill(-1, signal.SIGKILL)")
    assert_next_program_runs()


def test_setsid_double_fork_escapee_is_killed():
    marker = "987.654321"
    escape = f"""
    import os
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            for fd in (0, 1, 2):
                os.close(fd)
            os.execve('/bin/sleep', ['sleep', '{marker}'], {{}})  # no token in its environment
        os._exit(0)
    os.wait()
    print('parent done')
    """
    result = run(escape)
    assert result.passed and result.duration_s < 5.0
    deadline = time.monotonic() + 2.0
    while processes_with_cmdline(f"sleep\0{marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with_cmdline(f"sleep\0{marker}") == []
    assert_next_program_runs()


def test_timeout_kills_setsid_escapees_too():
    escape = """
    import os, time
    if os.fork() == 0:
        os.setsid()
        while True:
            time.sleep(1)
    while True:
        pass
    """
    result = run(escape, timeout_s=1.0)
    assert result.status == "timeout"
    assert sandbox_processes() == []
    assert_next_program_runs()


def test_forced_unknown_mode_is_one_clear_error(monkeypatch):
    import augury.evals.sandbox as sandbox

    monkeypatch.setattr(sandbox, "_mode", None)
    monkeypatch.setenv(sandbox.MODE_VAR, "nonsense")
    with pytest.raises(ValueError, match="AUGURY_SANDBOX_MODE"):
        sandbox.sandbox_mode()


def test_signal_numbers_are_reported_negative():
    result = run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
    assert (result.status, result.returncode, result.reason) == ("failed", -signal.SIGSEGV, "killed")
    assert_next_program_runs()


@pytest.mark.parametrize("mode", ["plain", "plain-as-root"])
def test_swapping_the_work_directory_for_a_link_cannot_make_the_cleanup_change_its_target(mode, monkeypatch):
    # Without a mount namespace the program sees its real work dir; renamed away and replaced by a link, the
    # harness's cleanup (root, in the plain modes as root) must neither follow the link nor change the temp dir.
    if mode == "plain-as-root" and os.geteuid() != 0:
        pytest.skip("plain-as-root needs a root harness")
    base = Path(tempfile.mkdtemp(prefix="augury-test-"))
    try:
        base.chmod(0o755)
        temp, victim = base / "tmp", base / "victim"
        temp.mkdir()
        temp.chmod(0o1777)  # like /tmp
        victim.write_text("keep")
        victim.chmod(0o644)
        monkeypatch.setattr(tempfile, "tempdir", str(temp))
        attack = f"""
        import os
        here = os.getcwd()
        for d in (os.path.dirname(here), here):
            if os.path.basename(d).startswith("augury-sandbox-") or d == here:
                try:
                    os.rename(d, d + "-moved")
                    os.symlink({str(victim)!r}, d)
                    print("swapped", d)
                    break
                except OSError as exc:
                    print(exc)
        """
        result = sandbox._execute(mode, textwrap.dedent(attack), SandboxLimits(timeout_s=10))
        if result.status == "error":
            pytest.skip(f"mode {mode} does not run here: {result.stderr.strip()[-200:]}")
        assert (oct(victim.stat().st_mode & 0o7777), victim.read_text()) == (oct(0o644), "keep")
        assert oct(temp.stat().st_mode & 0o7777) == oct(0o1777)
    finally:
        shutil.rmtree(base)


def test_the_harness_temp_dir_is_hidden_wherever_it_is(monkeypatch):
    # TMPDIR is often not /tmp (a cluster's scratch space): it holds other runs' work dirs and other users' files.
    if "hidden-dirs" not in layers():
        pytest.skip("needs a mount namespace; plain modes cannot hide directories (see docs/sandbox.md)")
    monkeypatch.setattr(sandbox, "HIDDEN_ALWAYS", tuple(d for d in sandbox.HIDDEN_ALWAYS if d != "/tmp"))
    temp = Path(tempfile.mkdtemp(prefix="augury-test-tmpdir-", dir="/tmp"))
    try:
        temp.chmod(0o1777)
        other = temp / "other-run.txt"
        other.write_text("not yours")
        other.chmod(0o644)
        monkeypatch.setattr(tempfile, "tempdir", str(temp))
        result = run(f"import os\nprint(os.listdir({str(temp)!r}))\nprint(open({str(other)!r}).read())")
        assert "not yours" not in result.stdout and "other-run" not in result.stdout, result
        assert_next_program_runs()
    finally:
        shutil.rmtree(temp)
