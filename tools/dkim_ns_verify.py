#!/usr/bin/python3
"""Verify DKIM signatures with opendkim-testmsg AND dkimverify, keys served by a test DNS.

Both verifiers look the key up in DNS through /etc/resolv.conf and neither takes a key
override, so this runs them in a private network + mount namespace (unshare -m -n, as root):
the namespace's own loopback comes up, /etc/resolv.conf is bind-mounted to "nameserver
127.0.0.1", and dnsmasq answers the TXT records given here on 127.0.0.1:53 inside it. No packet
leaves the namespace, and the host's resolver is untouched.

  tools/dkim_ns_verify.py --txt r1._domainkey.example.com="v=DKIM1; k=rsa; p=..." \\
      --out results.json a.eml b.eml

Each DKIM-Signature of each message is checked on its own (a copy of the message with only
that signature), by both tools, since either tool's exit status alone does not say which of
several signatures passed. results.json: {file: [{"sig": "a=...; d=...; s=...",
"opendkim": [rc, text], "dkimverify": [rc, text]}, ...]}. rc 0 = verified.
Exit status: 0 when it ran (whatever the verdicts), 2 on a setup error (printed).
Needs opendkim-tools, python3-dkim, dnsmasq-base, iproute2, util-linux unshare.
"""

import argparse
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time


def signature_variants(msg: bytes):
    """[(tags summary, message with only that DKIM-Signature)] top first."""
    sep = msg.find(b"\r\n\r\n")
    head, body = (msg, b"") if sep < 0 else (msg[:sep], msg[sep:])
    fields = re.split(rb"\r\n(?![ \t])", head)
    sigs = [f for f in fields if f[:15].lower() == b"dkim-signature:"]
    rest = [f for f in fields if f[:15].lower() != b"dkim-signature:"]
    out = []
    for s in sigs:
        flat = re.sub(rb"\s+", b"", s[15:]).decode("ascii", "replace")
        tags = dict(t.split("=", 1) for t in flat.split(";") if "=" in t)
        what = "a=%s; c=%s; d=%s; s=%s" % (tags.get("a"), tags.get("c", "simple/simple"),
                                           tags.get("d"), tags.get("s"))
        out.append((what, b"\r\n".join([s] + rest) + body))
    return out


def dns_query(name: str) -> bytes:
    q = struct.pack(">HHHHHH", 0x5342, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 16, 1)


def wait_dns(name: str, proc, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("dnsmasq exited with %s" % proc.returncode)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(dns_query(name), ("127.0.0.1", 53))
            if s.recv(4096)[:2] == b"\x53\x42":
                return
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    raise RuntimeError("dnsmasq did not answer on 127.0.0.1:53")


def run_tool(args, data):
    try:
        p = subprocess.run(args, input=data, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return [124, "timed out"]
    return [p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace").strip()]


def inside(args):
    tmp = tempfile.mkdtemp(prefix="sb-dkim-ns-")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = os.path.join(tmp, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
    cmd = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
           "--listen-address=127.0.0.1", "--port=53", "--pid-file=", "--user=root",
           "--log-facility=" + os.path.join(tmp, "dnsmasq.log")]
    names = []
    for t in args.txt:
        name, _, rec = t.partition("=")
        name = name.strip().rstrip(".")
        names.append(name)
        # A TXT string holds at most 255 octets; DKIM records have no commas to escape.
        chunks = [rec[i:i + 250] for i in range(0, len(rec), 250)] or [""]
        cmd.append("--txt-record=" + ",".join([name] + chunks))
    dns = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = {}
    try:
        wait_dns(names[0], dns)
        for path in args.files:
            with open(path, "rb") as f:
                msg = f.read()
            results[path] = []
            for what, data in signature_variants(msg):
                results[path].append({
                    "sig": what,
                    "opendkim": run_tool(["opendkim-testmsg"], data),
                    "dkimverify": run_tool(["dkimverify"], data),
                })
    finally:
        dns.terminate()  # by its PID; the namespace goes with this process
        try:
            dns.wait(5)
        except subprocess.TimeoutExpired:
            dns.kill()
            dns.wait(5)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--txt", action="append", default=[], required=True,
                    help='NAME="TXT record" (repeatable)')
    ap.add_argument("--out", required=True, help="where to write the JSON results")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.files = [os.path.abspath(f) for f in args.files]
    args.out = os.path.abspath(args.out)
    if args.inside:
        return inside(args)
    for tool in ("unshare", "ip", "mount", "dnsmasq", "opendkim-testmsg", "dkimverify"):
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in os.environ.get("PATH", "/usr/sbin:/usr/bin").split(":") +
                   ["/usr/sbin", "/sbin"]):
            print("dkim_ns_verify: %s is not installed" % tool, file=sys.stderr)
            return 2
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    p = subprocess.run(["unshare", "-m", "-n", "--", "/usr/bin/python3", os.path.abspath(__file__),
                        "--inside", "--out", args.out, *("--txt=" + t for t in args.txt),
                        *args.files], env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        print("dkim_ns_verify: %s" % (p.stderr.strip() or p.stdout.strip()), file=sys.stderr)
        return 2
    return 0


def can_run() -> str:
    """'' when this machine can run it (root, unshare works); otherwise why not."""
    try:
        p = subprocess.run(["unshare", "-m", "-n", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unshare: %s" % e
    if p.returncode != 0:
        return "unshare -m -n failed: %s" % p.stderr.decode(errors="replace").strip()
    return ""


if __name__ == "__main__":
    sys.exit(main())
