# gdb script used by trace-hot-functions.sh: puts a one-shot breakpoint on
# every function of the binary, runs one launch, and writes the functions the
# launching process entered, in the order it first entered them.
import os
import subprocess

import gdb

binary = os.environ["HUTCH_TRACE_BINARY"]
output = os.environ["HUTCH_TRACE_OUTPUT"]

for setting in ("pagination off", "confirm off", "detach-on-fork on",
                "follow-fork-mode parent", "startup-with-shell off"):
    gdb.execute("set " + setting)

functions = {}
nm = subprocess.run(["nm", "--defined-only", binary], capture_output=True,
                    text=True, check=True).stdout
for line in nm.splitlines():
    fields = line.split(" ", 2)
    if len(fields) == 3 and fields[1] in "tTwW":
        functions.setdefault(int(fields[0], 16), fields[2])

gdb.execute("starti")
pid = gdb.selected_inferior().pid
real_path = os.path.realpath(binary)
with open(f"/proc/{pid}/maps") as maps:
    base = next(int(line.split("-")[0], 16) for line in maps
                if line.rstrip().endswith(real_path))

entered = []


class FirstEntry(gdb.Breakpoint):
    def __init__(self, address, name):
        super().__init__(f"*{address:#x}", internal=True)
        self.function = name
        self.silent = True

    def stop(self):
        entered.append(self.function)
        # One hit is all the ordering needs; later calls run untrapped.
        self.enabled = False
        return False


for address, name in functions.items():
    FirstEntry(base + address, name)

gdb.execute("continue")
with open(output, "w") as out:
    out.write("\n".join(entered) + "\n")
gdb.execute("quit")
