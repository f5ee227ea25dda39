#!/usr/bin/python3
"""Atomic read-modify-write instructions executed, by function, from a callgrind profile.

    valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file=OUT smtpblast send ...
    bench/count_atomics.py OUT [-n MESSAGES] [--top 30]

Every x86 instruction with a LOCK prefix (and XCHG with memory, locked implicitly) is found
by objdump in each object the profile names; callgrind's per-instruction counts (Ir of an
instruction = times it ran) say how often each ran. Addresses are mapped from the run's to the
file's by the offset most functions agree on (callgrind's lowest address of a function vs
nm's). Mutex lock and unlock, condition variables, shared_ptr counts, malloc's arena lock and
std::atomic RMW all show up; plain atomic loads and stores (MOV on x86) do not, as they cost
no more than ordinary ones. Also prints the calls of the lock and wake functions of libc.
"""

import argparse
import collections
import re
import subprocess
import sys

SYNC_FUNCS = ("pthread_mutex_lock", "pthread_mutex_unlock", "pthread_cond_signal",
              "pthread_cond_broadcast", "pthread_cond_wait", "pthread_cond_timedwait",
              "pthread_cond_clockwait", "__lll_lock_wait", "__lll_lock_wake", "uv_async_send",
              "__futex_abstimed_wait_common", "futex_wake", "syscall")


def parse(path):
    """{(ob, addr): count}, {(ob, fn): min addr}, {ob_addr: fn}, {cfn: calls}"""
    names = {"ob": {}, "fn": {}, "fl": {}, "fi": {}, "fe": {}, "cob": {}, "cfn": {}, "cfi": {},
             "cfl": {}}
    counts = collections.Counter()
    fn_min = {}
    fn_of = {}
    calls = collections.Counter()
    ob = fn = None
    cfn = None
    last = 0
    skip_next = False
    positions_line = False
    for line in open(path, errors="replace"):
        if line.startswith("positions:"):
            positions_line = "line" in line
            continue
        c = line[0]
        if c.isdigit() or c in "+-*":
            parts = line.split()
            p = parts[0]
            if p == "*":
                addr = last
            elif p[0] in "+-":
                addr = last + int(p, 0) if not p[1:].startswith("0x") else last + int(p, 16)
            else:
                addr = int(p, 16) if p.startswith("0x") else int(p)
            last = addr
            if skip_next:  # the cost line of a call: inclusive, not this instruction's
                skip_next = False
                continue
            ir = int(parts[2] if positions_line else parts[1]) if len(parts) > 1 else 0
            counts[(ob, addr)] += ir
            key = (ob, fn)
            if key not in fn_min or addr < fn_min[key]:
                fn_min[key] = addr
            fn_of[(ob, addr)] = fn
            continue
        m = re.match(r"(ob|fn|fl|fi|fe|cob|cfn|cfi|cfl)=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
        if m:
            kind, idx, name = m.groups()
            table = names["ob" if kind in ("ob", "cob") else "fn" if kind in ("fn", "cfn")
                          else "fl"]
            if name is not None:
                table[idx] = name
            name = table.get(idx, idx)
            if kind == "ob":
                ob = name
            elif kind == "fn":
                fn = name
            elif kind == "cfn":
                cfn = name
            continue
        if line.startswith("calls="):
            calls[cfn] += int(line.split("=")[1].split()[0])
            skip_next = True
    return counts, fn_min, fn_of, calls


def locked_instructions(obj):
    """Addresses (file vaddr) of LOCK-prefixed or memory-XCHG instructions in obj."""
    out = set()
    p = subprocess.run(["objdump", "-d", "--no-show-raw-insn", obj], capture_output=True,
                       text=True)
    for line in p.stdout.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(.*)", line)
        if not m:
            continue
        ins = m.group(2)
        if ins.startswith("lock ") or (ins.startswith("xchg") and "(" in ins):
            out.add(int(m.group(1), 16))
    return out


def symbols(obj):
    syms = {}
    for args in (["nm", "-C", "--defined-only", obj], ["nm", "-C", "-D", "--defined-only", obj]):
        p = subprocess.run(args, capture_output=True, text=True)
        for line in p.stdout.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[1] in "tTwWiI":
                syms.setdefault(parts[2], int(parts[0], 16))
    return syms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("profile")
    ap.add_argument("-n", "--messages", type=int, default=1)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    counts, fn_min, fn_of, calls = parse(args.profile)
    objs = sorted({ob for ob, _ in counts if ob and ob.startswith("/")})
    by_fn = collections.Counter()
    total = 0
    for obj in objs:
        locked = locked_instructions(obj)
        if not locked:
            continue
        syms = symbols(obj)
        offs = collections.Counter()
        for (ob, fn), lo in fn_min.items():
            if ob == obj and fn in syms:
                offs[lo - syms[fn]] += 1
        if not offs:
            print(f"warning: no anchor for {obj}", file=sys.stderr)
            continue
        off = offs.most_common(1)[0][0]
        for (ob, addr), n in counts.items():
            if ob == obj and (addr - off) in locked and n:
                total += n
                by_fn[f"{fn_of[(ob, addr)]}  [{obj.rsplit('/', 1)[-1]}]"] += n
    per = args.messages
    print(f"atomic RMW instructions: {total:,} ({total / per:.2f} per message)")
    for name, n in by_fn.most_common(args.top):
        print(f"  {n / per:8.3f}/msg  {n:>10,}  {name}")
    print("calls:")
    for f in SYNC_FUNCS:
        if calls.get(f):
            print(f"  {calls[f] / per:8.3f}/msg  {calls[f]:>10,}  {f}")


if __name__ == "__main__":
    main()
