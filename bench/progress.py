"""Progress of a long command (bench/run, faults/run): what is running, how far the
whole run is, and an estimate of the time left. Standard library only.

On a terminal, a status line is redrawn in place once a second while a step runs; a step
whose child process draws its own progress bar (the Rust tools use indicatif) is announced
and left alone. Anywhere else (CI logs, files) every step is one plain line when it starts
and one when it ends, so a log reads as a history:

    [bench 00:04:10] step 7: tickets: POST /api/tickets (about 12 s); run 31% done, about 9 min left
    [bench 00:04:22] step 7 done in 12 s; run 33% done, about 8 min left

The run's share and time left come from the planned duration of what remains (each step's
estimate), scaled by how the finished steps compared with their estimates.
"""

import contextlib
import sys
import threading
import time


def clock(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def minutes(seconds):
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


class Progress:
    def __init__(self, who, planned_seconds, stream=None):
        self.who = who
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.planned = max(planned_seconds, 1.0)
        self.started = time.monotonic()
        self.estimated_done = 0.0  # the estimates of the finished steps
        self.steps = 0
        self.lock = threading.Lock()

    def elapsed(self):
        return time.monotonic() - self.started

    def left(self, current_estimate=0.0, current_elapsed=0.0):
        """Seconds left: the planned time not yet done, at the pace of the finished steps."""
        pace = self.elapsed() / self.estimated_done if self.estimated_done > 30 else 1.0
        pace = min(max(pace, 0.5), 3.0)
        remaining = max(self.planned - self.estimated_done - min(current_elapsed, current_estimate), 0.0)
        return remaining * pace

    def share(self, current_estimate=0.0, current_elapsed=0.0):
        done = self.estimated_done + min(current_elapsed, current_estimate)
        return min(done / self.planned, 1.0)

    def line(self, text):
        with self.lock:
            if self.terminal:
                self.stream.write("\r\x1b[K")
            self.stream.write(f"[{self.who} {clock(self.elapsed())}] {text}\n")
            self.stream.flush()

    def note(self, text):
        """A line of its own (a result, a warning), between the status lines."""
        self.line(text)

    def wrap(self, print_function):
        """`print_function` (a command's own logger), made to clear the status line first,
        so its lines are not drawn over."""
        def printed(*args, **kwargs):
            with self.lock:
                if self.terminal:
                    self.stream.write("\r\x1b[K")
                    self.stream.flush()
                return print_function(*args, **kwargs)
        return printed

    @contextlib.contextmanager
    def step(self, name, estimate, own_progress=False):
        """A step expected to take `estimate` seconds; with `own_progress`, its child
        process draws its own progress and this one stays quiet while it runs."""
        self.begin(name, estimate, own_progress)
        try:
            yield
        finally:
            self.end()

    def begin(self, name, estimate, own_progress=False):
        """The start of a step (see `step`); `end` closes it."""
        self.steps += 1
        self.current = (self.steps, name, estimate, time.monotonic())
        self.line(f"step {self.steps}: {name} (about {minutes(estimate)}); run {self.share():.0%} done, "
                  f"about {minutes(self.left())} left")
        self.stop = threading.Event()
        self.drawer = None
        if self.terminal and not own_progress:
            self.drawer = threading.Thread(target=self.draw, args=(self.current, self.stop), daemon=True)
            self.drawer.start()

    def draw(self, current, stop):
        number, name, estimate, began = current
        while not stop.wait(1.0):
            spent = time.monotonic() - began
            width = 20
            filled = int(width * min(spent / max(estimate, 1), 1.0))
            text = (f"[{self.who} {clock(self.elapsed())}] step {number}: {name} "
                    f"[{'#' * filled}{'.' * (width - filled)}] {spent:.0f}/{estimate:.0f} s; "
                    f"run {self.share(estimate, spent):.0%}, about {minutes(self.left(estimate, spent))} left")
            with self.lock:
                self.stream.write("\r\x1b[K" + text[:200])
                self.stream.flush()

    def end(self):
        number, _, estimate, began = self.current
        self.stop.set()
        if self.drawer:
            self.drawer.join()
        self.estimated_done += estimate
        self.line(f"step {number} done in {minutes(time.monotonic() - began)}; run {self.share():.0%} done, "
                  f"about {minutes(self.left())} left")
