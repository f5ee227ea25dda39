#!/usr/bin/python3
"""A scriptable SMTP server for smtpblast's tests (Debian's python3-aiosmtpd).

Run with /usr/bin/python3. Listens on a loopback address only and stores every
accepted message in --maildir as NNNNNN.eml (the DATA content exactly as received,
CRLF line endings, dot-unstuffed) plus NNNNNN.json (envelope: mail_from, rcpt_tos,
mail_options, rcpt_options, peer, helo, auth, tls). Stops cleanly on SIGTERM/SIGINT.

    /usr/bin/python3 tools/aiosmtpd_server.py --host 127.0.0.1 --port 2525 --maildir DIR
        [--tls-cert C --tls-key K [--starttls] [--require-starttls] [--implicit-tls]]
        [--auth-file F (lines user:password) [--auth-allow-plaintext]]
        [--hostname NAME] [--rcpt-reply ADDR=CODE TEXT ...]

Used through peers.AiosmtpdServer. Minimal for now; fault options come with later issues.
"""

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Store:
    def __init__(self, maildir, rcpt_replies):
        self.maildir = maildir
        self.rcpt_replies = rcpt_replies
        self.seq = 0
        os.makedirs(maildir, exist_ok=True)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.seq += 1
        base = os.path.join(self.maildir, f"{self.seq:06d}")
        content = envelope.original_content
        if content is None:
            content = envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        tmp = base + ".eml.tmp"
        with open(tmp, "wb") as f:
            f.write(content)
        os.rename(tmp, base + ".eml")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "rcpt_options": envelope.rcpt_options,
            "peer": list(session.peer) if session.peer else None,
            "helo": session.host_name,
            "auth": session.authenticated,
            "tls": session.ssl is not None,
        }
        # The .json appears last: its presence means the message is complete.
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 OK queued as %06d" % self.seq


def make_authenticator(users):
    def authenticator(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            ok = users.get(user) == auth_data.password.decode("utf-8", "replace")
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)
    return authenticator


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--hostname", default="aiosmtpd.example.test")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--starttls", action="store_true", help="offer STARTTLS")
    ap.add_argument("--require-starttls", action="store_true")
    ap.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte")
    ap.add_argument("--auth-file", help="lines user:password; enables AUTH PLAIN/LOGIN")
    ap.add_argument("--auth-allow-plaintext", action="store_true",
                    help="offer AUTH without TLS too")
    ap.add_argument("--rcpt-reply", action="append", default=[], metavar="ADDR=REPLY",
                    help='reply to RCPT TO:<ADDR> with REPLY, e.g. "x@example.test=550 5.1.1 no"')
    ap.add_argument("--data-size-limit", type=int, default=256 * 1024 * 1024)
    args = ap.parse_args()

    if not ipaddress.ip_address(args.host.strip("[]")).is_loopback:
        sys.exit(f"{args.host}: loopback addresses only")

    ctx = None
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)

    users = {}
    if args.auth_file:
        with open(args.auth_file) as f:
            for line in f:
                line = line.rstrip("\n")
                if line and ":" in line:
                    u, p = line.split(":", 1)
                    users[u] = p

    rcpt_replies = {}
    for spec in args.rcpt_reply:
        addr, reply = spec.split("=", 1)
        rcpt_replies[addr.lower()] = reply

    handler = Store(args.maildir, rcpt_replies)

    def factory():
        kw = dict(hostname=args.hostname, data_size_limit=args.data_size_limit,
                  enable_SMTPUTF8=True, decode_data=False)
        if ctx is not None and args.starttls and not args.implicit_tls:
            kw.update(tls_context=ctx, require_starttls=args.require_starttls)
        if users:
            kw.update(authenticator=make_authenticator(users),
                      auth_require_tls=not args.auth_allow_plaintext)
        return SMTP(handler, **kw)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        factory, host=args.host.strip("[]"), port=args.port,
        ssl=ctx if args.implicit_tls else None, reuse_address=True))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"aiosmtpd_server listening on {args.host}:{args.port}", flush=True)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
