"""The first code the sandboxed interpreter runs (`python -I -S -c <this file> <json>`), before
the model's program: read the program from stdin, drop root (to `nobody`) when the sandbox
started as root, lower the resource limits for good, add the audit hook, then run the program.

It imports nothing from lemagen (the sandbox sees no site-packages) and is passed as text, not
imported, by `lemagen.cotnpot.sandbox`.
"""

import json
import os
import resource
import sys

READY = b"\x00lemagen-sandbox-ready\n"


def _limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def _hook_for(workdir: str, created: int | None):  # type: ignore[no-untyped-def]
    """An audit hook that refuses networking, new processes, signals to others, ctypes,
    writes outside `workdir` and, when `created` is a number, making more files or
    directories than that (where no tmpfs size bounds the disk). A second layer only: the
    namespaces and limits are the boundary."""
    refused = ("socket.", "subprocess.", "ctypes.", "os.exec", "os.spawn", "os.posix_spawn")
    refused_exact = {
        "os.fork", "os.forkpty", "os.system", "os.kill", "os.killpg", "pty.spawn",
        "signal.pthread_kill", "os.startfile", "os.chroot",
    }  # fmt: skip
    refused_imports = {"_socket", "_ctypes", "_posixsubprocess", "_multiprocessing", "mmap"}
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    root = workdir.rstrip("/") + "/"
    made = []  # what the program made, where `created` bounds it

    def make(full: str) -> None:
        if created is not None and not os.path.lexists(full):
            made.append(full)
            if len(made) > created:
                raise PermissionError(f"sandbox: more than {created} files made")

    def hook(event, args):  # type: ignore[no-untyped-def]
        if event.startswith(refused) or event in refused_exact:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args[0] in refused_imports:
            raise PermissionError(f"sandbox: import {args[0]} is not allowed")
        if event == "open":
            path, mode, flags = args
            writes = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & write_flags
            )
            if writes and isinstance(path, (str, bytes)):
                name = os.fsdecode(path)
                full = os.path.realpath(os.path.join(workdir, name))
                if not (full + "/").startswith(root):
                    raise PermissionError(f"sandbox: writing {name!r} is not allowed")
                make(full)
        if event == "os.mkdir" and isinstance(args[0], (str, bytes)):
            make(os.path.realpath(os.path.join(workdir, os.fsdecode(args[0]))))

    return hook


def main() -> None:
    config = json.loads(sys.argv[1])
    program = sys.stdin.buffer.read().decode("utf-8", "replace")
    os.close(0)  # the program reads no input
    if config["uid"] is not None:
        os.setgroups([])
        os.setgid(config["gid"])
        os.setuid(config["uid"])
        if os.getuid() == 0 or os.geteuid() == 0:
            sys.exit("sandbox: could not drop root")
    os.chdir(config["workdir"])  # after dropping root: it is nobody's, mode 0700
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NPROC, 1)  # this process only: no fork, no threads
    _limit(resource.RLIMIT_NOFILE, config["files"])
    _limit(resource.RLIMIT_FSIZE, config["file_size"])
    _limit(resource.RLIMIT_AS, config["memory"])
    cpu = config["cpu"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL
    code = compile(program, "program.py", "exec")
    if config["audit_hook"]:
        sys.addaudithook(_hook_for(os.getcwd(), config["created"]))
    del config, program
    os.write(2, READY)  # from here on, whatever happens is the program's doing
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})


main()
