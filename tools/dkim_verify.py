#!/usr/bin/python3
"""Verify the DKIM signatures of a message file with python3-dkim (dkimpy), offline.

The public key comes from the command line instead of DNS (dkim's dnsfunc hook), so a message
signed by smtpblast can be checked by an implementation we did not write, without publishing
anything:

  tools/dkim_verify.py message.eml --txt "v=DKIM1; k=ed25519; p=..."
  tools/dkim_verify.py message.eml --txt sel._domainkey.example.com="v=DKIM1; k=rsa; p=..."
  tools/dkim_verify.py message.eml --txt-file sel2024.txt

A --txt without NAME= answers every lookup. Every DKIM-Signature in the message must verify.
Exit status: 0 all verified, 1 a signature failed (or none present), 2 usage or setup error.
Needs Debian's python3-dkim (apt-get install python3-dkim; python3-nacl for ed25519).
"""

import argparse
import sys


def parse_records(txt=(), txt_files=()):
    """--txt / --txt-file values -> {dns name or None: record bytes}."""
    records = {}
    for t in txt:
        name, sep, rec = t.partition("=")
        if sep and "._domainkey." in name:
            records[name.strip().rstrip(".").lower()] = rec.strip().encode()
        else:
            records[None] = t.strip().encode()
    for path in txt_files:
        with open(path, "rb") as f:
            records[None] = f.read().strip()
    return records


def verify_bytes(msg, records, logger=None):
    """Verifies every DKIM-Signature of `msg` (bytes) against `records` (see parse_records).

    Returns a list of (ok, text) per signature, top first; empty when there is none.
    """
    import dkim  # noqa: PLC0415 (imported here so --help works without it)

    def dnsfunc(name, timeout=5):  # noqa: ARG001 (dkimpy's signature)
        if isinstance(name, bytes):
            name = name.decode()
        key = name.rstrip(".").lower()
        return records.get(key, records.get(None))

    d = dkim.DKIM(msg, logger=logger) if logger else dkim.DKIM(msg)
    nsig = sum(1 for name, _ in d.headers if name.lower() == b"dkim-signature")
    out = []
    for idx in range(nsig):
        try:
            ok = d.verify(idx=idx, dnsfunc=dnsfunc)
            why = "" if ok else "signature or body hash mismatch"
        except dkim.DKIMException as e:
            ok, why = False, str(e)
        sig = d.signature_fields or {}
        what = "{}/{}".format((sig.get(b"d") or b"?").decode(), (sig.get(b"s") or b"?").decode())
        out.append((bool(ok), what + ("" if ok else ": " + why)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("message", help="message file (CRLF or LF line ends), '-' for stdin")
    ap.add_argument("--txt", action="append", default=[],
                    help='TXT record, or NAME="record" for one DNS name (repeatable)')
    ap.add_argument("--txt-file", action="append", default=[],
                    help="file holding a TXT record (answers every lookup)")
    ap.add_argument("-v", "--verbose", action="store_true", help="dkimpy debug log on stderr")
    args = ap.parse_args(argv)

    try:
        import dkim  # noqa: F401,PLC0415
    except ImportError:
        print("dkim_verify: python3-dkim is not installed (apt-get install python3-dkim)",
              file=sys.stderr)
        return 2
    records = parse_records(args.txt, args.txt_file)
    if not records:
        print("dkim_verify: give the public key with --txt or --txt-file", file=sys.stderr)
        return 2
    if args.message == "-":
        msg = sys.stdin.buffer.read()
    else:
        with open(args.message, "rb") as f:
            msg = f.read()
    logger = None
    if args.verbose:
        import logging  # noqa: PLC0415
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        logger = logging.getLogger("dkim")
    results = verify_bytes(msg, records, logger)
    if not results:
        print("FAIL: no DKIM-Signature header")
        return 1
    for idx, (ok, text) in enumerate(results):
        print("signature {}: {} {}".format(idx, "PASS" if ok else "FAIL", text))
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
