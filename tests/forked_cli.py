"""Runs `connector` commands as forks of one interpreter that has already imported the CLI.

Each command is still a process of its own (its own environment, working directory, stdin, stdout,
stderr and exit code) running ``workers.cli.main`` as the ``connector`` script does, without paying a
second of imports per command: tests/test_startup_fails_closed.py runs well over a hundred of them.

Protocol: one JSON request per line on stdin (``argv``, ``env``, ``cwd``, ``timeout``), one JSON answer per
line on stdout (``returncode``, ``stdout``, ``stderr``); ``returncode`` is null when the command outlived
its timeout and was killed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
import traceback

# What the commands import anyway; none of it reads the environment when imported.
import workers.cli
import workers.cli_ops  # noqa: F401
import workers.deps  # noqa: F401
import workers.startup  # noqa: F401


def run_command(argv: list[str], env: dict[str, str], cwd: str, timeout: float) -> dict:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(argv, env, cwd, out.fileno(), err.fileno())
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                returncode = None
                break
            time.sleep(0.01)
        out.seek(0)
        err.seek(0)
        return {"returncode": returncode, "stdout": out.read().decode(errors="replace"),
                "stderr": err.read().decode(errors="replace")}


def _child(argv: list[str], env: dict[str, str], cwd: str, out: int, err: int) -> None:
    code = 1
    try:
        os.setsid()  # its own group, so a timeout kills whatever it started
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # never the launcher's requests
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.argv = ["connector", *argv]
        try:
            code = workers.cli.main(argv)
        except SystemExit as exc:
            code = exc.code
        if isinstance(code, str):  # as the interpreter treats SystemExit("message")
            print(code, file=sys.stderr)
            code = 1
        code = int(code or 0)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        answer = run_command(request["argv"], request["env"], request["cwd"], request.get("timeout", 60.0))
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
