"""Passes `cargo test` output through unchanged and counts the results of every test binary.

Run by dev/test as `cargo test ... 2>&1 | python3 dev/test_totals.py TOTALS_FILE`. Every
test binary (`Running ...` in cargo's output) ends with libtest's line
`test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 3 filtered out; ...`; the
sums go to TOTALS_FILE as shell assignments (passed, failed, ignored, filtered,
binaries, results, failures), for dev/test's closing line. A binary that dies before its
result line (a crash, a failed harness) counts in `binaries` but not in `results`.

Standard library only.
"""

import re
import sys

ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
RESULT = re.compile(
    rb"^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored; (\d+) measured; (\d+) filtered out"
)
RUNNING = re.compile(rb"^\s+(Running|Doc-tests) ")
FAILED_NAME = re.compile(rb"^    (\S+)$")


def main(totals_path: str) -> int:
    passed = failed = ignored = filtered = binaries = results = 0
    failures: list[str] = []
    in_failure_list = False
    names: list[str] = []
    out = sys.stdout.buffer
    for raw in sys.stdin.buffer:
        out.write(raw)
        out.flush()
        line = ANSI.sub(b"", raw).rstrip(b"\r\n")
        if RUNNING.match(line):
            binaries += 1
        elif line == b"failures:":
            # libtest lists the failing tests' names in its last `failures:` block.
            in_failure_list, names = True, []
        elif (match := RESULT.match(line)) is not None:
            p, f, i, _, x = (int(n) for n in match.groups())
            passed, failed, ignored, filtered, results = passed + p, failed + f, ignored + i, filtered + x, results + 1
            failures.extend(names)
            in_failure_list, names = False, []
        elif in_failure_list and (match := FAILED_NAME.match(line)) is not None:
            names.append(match.group(1).decode(errors="replace"))
    with open(totals_path, "w") as totals:
        totals.write(
            f"passed={passed} failed={failed} ignored={ignored} filtered={filtered} "
            f"binaries={binaries} results={results} failures='{' '.join(failures[:20])}'\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
