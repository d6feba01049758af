#!/usr/bin/env python3
"""The house rules the compiler cannot check, checked on every CI run.

tidy.py SOURCE_DIR BUILD_DIR

1. The seam is sacred: a file in actors/ includes only actors/, net/seam/,
   net/wire/, CAF's core and standard headers that neither start threads nor
   read clocks, and uses no threads, no global randomness, no wall clock, no
   blocking actors. So does control/ (which may also include control/ and
   nlohmann/json), except the SQLite store, which blocks on its file, and
   drtp-control's main. net/seam/ and net/wire/ include neither Asio, OpenSSL,
   the real network nor the simulator. Break one and the simulator stops
   being deterministic (or the actors stop running there at all).
2. No function over 100 lines, except those in tests/tidy_long_functions.txt,
   a list that may only shrink: an entry that is no longer too long must be
   removed. Lengths come from clang-tidy's readability-function-size, run on
   every production source with the build's compile_commands.json.

Exits 1 with one line per finding, 0 when the tree is tidy.
"""

import concurrent.futures
import json
import os
import re
import subprocess
import sys

LINES_MAX = 100

# Standard headers an actor may not include: threads, locks, global
# randomness and the C time functions.
FORBIDDEN_STD = {
    "thread", "mutex", "shared_mutex", "condition_variable", "future",
    "atomic", "random", "ctime", "time.h", "unistd.h", "pthread.h",
    "sys/socket.h", "netinet/in.h", "arpa/inet.h", "fstream", "iostream",
}

# What an actor may not write, whatever it includes.
FORBIDDEN_CODE = [
    (r"\bstd::thread\b|\bstd::jthread\b|\bstd::async\b", "starts a thread"),
    (r"\bstd::mutex\b|\bstd::lock_guard\b|\bstd::unique_lock\b", "takes a lock"),
    (r"\brandom_device\b|\bstd::rand\b|\bsrand\s*\(|[^_\w.>]rand\s*\(",
     "uses global randomness (use env.rng)"),
    (r"\bsteady_clock\b|\bsystem_clock\b|\bhigh_resolution_clock\b"
     r"|\bclock_gettime\b|\bgettimeofday\b|\btime\s*\(\s*(nullptr|NULL|0)\s*\)",
     "reads a clock directly (use env.clock)"),
    (r"\bsleep_for\b|\bsleep_until\b|\busleep\s*\(", "blocks"),
    (r"\bdetached\b|\bscoped_actor\b|\bblocking_actor\b",
     "spawns a detached or blocking actor"),
]

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def strip_comments(text):
    """Source without comments and string literals, newlines kept."""
    out = re.sub(r"//[^\n]*", "", text)
    out = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), out,
                 flags=re.S)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', out)


def sources(root, folders, exts=(".cpp", ".hpp")):
    for folder in folders:
        base = os.path.join(root, folder)
        for dirpath, _, files in os.walk(base):
            for f in sorted(files):
                if f.endswith(exts):
                    yield os.path.relpath(os.path.join(dirpath, f), root)


# control/ files that are not actors over the seam: the SQLite store blocks
# on its file, main() builds the real runtime.
CONTROL_EXEMPT = ("control/sqlite_store.hpp", "control/sqlite_store.cpp",
                  "control/main.cpp")


def check_actor_file(root, rel, layer="actors/"):
    findings = []
    own = ("actors/", "net/seam/", "net/wire/")
    if layer == "control/":
        own = own + ("control/",)
    text = open(os.path.join(root, rel), encoding="utf-8").read()
    for n, line in enumerate(text.split("\n"), 1):
        m = INCLUDE.match(line)
        if not m:
            continue
        kind, path = m.groups()
        if kind == '"':
            ok = path.startswith(own)
            ok = ok or (path.startswith("caf/") and not path.startswith(
                ("caf/io/", "caf/openssl/", "caf/net/")))
            if not ok:
                findings.append(f"{rel}:{n}: includes \"{path}\": {layer} sees "
                                f"only {', '.join(own)} and CAF core")
        elif path.split("/")[0] in ("asio", "asio.hpp", "openssl", "boost") \
                or path in FORBIDDEN_STD:
            findings.append(f"{rel}:{n}: includes <{path}>: not in {layer}")
    code = strip_comments(text)
    for n, line in enumerate(code.split("\n"), 1):
        for pattern, what in FORBIDDEN_CODE:
            if re.search(pattern, line):
                findings.append(f"{rel}:{n}: {what}: not in {layer}")
    return findings


def check_seam_file(root, rel):
    findings = []
    for n, line in enumerate(open(os.path.join(root, rel), encoding="utf-8"), 1):
        m = INCLUDE.match(line)
        if not m:
            continue
        kind, path = m.groups()
        if kind == '"' and not path.startswith(("net/seam/", "net/wire/", "caf/")):
            findings.append(f"{rel}:{n}: includes \"{path}\": the seam and the "
                            "wire format depend on nothing of the project above them")
        if kind == '"' and path.startswith(("caf/io/", "caf/openssl/")):
            findings.append(f"{rel}:{n}: includes \"{path}\": CAF core only")
        if kind == "<" and path.split("/")[0] in ("asio", "asio.hpp", "openssl"):
            findings.append(f"{rel}:{n}: includes <{path}>: the real network "
                            "belongs in net/, not in the seam or the wire format")
    return findings


def function_sizes(root, build, files):
    """{(file, function): lines} for every function over LINES_MAX lines."""
    config = ("{CheckOptions: [{key: readability-function-size.LineThreshold, "
              f"value: {LINES_MAX}}}]}}")
    warn = re.compile(r"^(/[^:]+):(\d+):\d+: warning: function '([^']+)' exceeds")
    note = re.compile(r"note: (\d+) lines including whitespace and comments")

    def run(rel):
        p = subprocess.run(
            ["clang-tidy", "-p", build, "--quiet",
             "-checks=-*,readability-function-size", f"-config={config}",
             os.path.join(root, rel)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        found, current = {}, None
        for line in p.stdout.split("\n"):
            m = warn.match(line)
            if m:
                path = os.path.relpath(m.group(1), root)
                current = (path, m.group(3))
                continue
            m = note.search(line)
            if m and current:
                found[current] = int(m.group(1))
                current = None
        return found

    sizes = {}
    jobs = max(1, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for found in pool.map(run, files):
            sizes.update(found)
    return sizes


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().split("\n")[2], file=sys.stderr)
        return 2
    root, build = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    findings = []

    actor_files = list(sources(root, ["actors"]))
    for rel in actor_files:
        findings += check_actor_file(root, rel)
    control_files = [rel for rel in sources(root, ["control"]) if rel not in CONTROL_EXEMPT]
    for rel in control_files:
        findings += check_actor_file(root, rel, "control/")
    for rel in sources(root, ["net/seam", "net/wire"]):
        findings += check_seam_file(root, rel)
    print(f"tidy: the seam: {len(actor_files)} files in actors/, "
          f"{len(control_files)} in control/, "
          f"{len(list(sources(root, ['net/seam', 'net/wire'])))} in net/seam/ "
          "and net/wire/ checked")

    with open(os.path.join(build, "compile_commands.json")) as f:
        compiled = {os.path.relpath(e["file"], root) for e in json.load(f)}
    production = ["actors", "net", "sim", "pop", "agent", "cli", "bench", "control", "ctl"]
    files = [rel for rel in sources(root, production, (".cpp",)) if rel in compiled]
    sizes = function_sizes(root, build, files)

    allow_path = os.path.join(root, "tests", "tidy_long_functions.txt")
    allowed = set()
    for line in open(allow_path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if line:
            path, name = line.split(None, 1)
            allowed.add((path, name.strip()))
    for (path, name), lines in sorted(sizes.items()):
        mark = "allowed for now" if (path, name) in allowed else "TOO LONG"
        print(f"tidy: {path}: {name}: {lines} lines ({mark})")
        if (path, name) not in allowed:
            findings.append(f"{path}: function '{name}' has {lines} lines, over "
                            f"{LINES_MAX}: split it along its phases")
    for path, name in sorted(allowed - set(sizes)):
        findings.append(f"tests/tidy_long_functions.txt: '{path} {name}' is no "
                        f"longer over {LINES_MAX} lines (or gone): remove the entry")
    print(f"tidy: {len(files)} sources measured, {len(sizes)} functions over "
          f"{LINES_MAX} lines, {len(allowed)} allowed")

    for f in findings:
        print(f"tidy: {f}")
    print("tidy: FAILED" if findings else "tidy: passed")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
