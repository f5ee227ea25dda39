#!/usr/bin/python3
"""Generate the inputs of the end-to-end benchmarks into a directory:

    recipients.csv   header `email,first_name`, N rows (user000001@example.test, …)
    template.eml     a ~SIZE-byte message template with {{first_name}} and {{email}}
    rendered.eml     the template rendered for the first recipient (what smtp-source -F
                     sends, so both senders put the same number of bytes on the wire)

    /usr/bin/python3 bench/make_list.py --count 100000 --size 2048 --out DIR

Deterministic: the same arguments give the same files.
"""

import argparse
import os
import sys

FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
               "Dennis", "Margaret", "Radia", "Leslie", "Niklaus", "Hedy", "Claude", "Sophie"]

WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
         "incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud "
         "exercitation ullamco laboris nisi aliquip ex ea commodo consequat").split()

DOMAIN = "example.test"


def recipient(i: int) -> tuple[str, str]:
    return f"user{i:07d}@{DOMAIN}", FIRST_NAMES[i % len(FIRST_NAMES)]


def template_text(size: int) -> str:
    head = ("From: Bench Sender <sender@example.test>\n"
            "To: {{first_name}} <{{email}}>\n"
            "Subject: smtpblast benchmark newsletter for {{first_name}}\n"
            "Date: Sat, 01 Mar 2025 10:00:00 +0000\n"
            "Message-ID: <bench-newsletter@example.test>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n"
            "Content-Transfer-Encoding: 7bit\n"
            "\n"
            "Hello {{first_name}},\n"
            "\n")
    tail = ("\n"
            "You receive this because {{email}} subscribed.\n"
            "-- \n"
            "The benchmark team\n")
    # Pad with 72-column text lines until the rendered size is about `size` bytes.
    # Sizes count CRLF line ends, as on the wire.
    fixed = render(head + tail, "user0000001@example.test", "Margaret")
    rendered_overhead = len(fixed) + fixed.count("\n")
    lines, cur, n, k = [], [], 0, 0
    budget = max(0, size - rendered_overhead)
    while n < budget:
        w = WORDS[(k * 7) % len(WORDS)]
        k += 1
        if sum(len(x) + 1 for x in cur) + len(w) > 72:
            line = " ".join(cur) + "\n"
            lines.append(line)
            n += len(line) + 1
            cur = []
        cur.append(w)
    return head + "".join(lines) + tail


def render(text: str, email: str, first_name: str) -> str:
    return text.replace("{{first_name}}", first_name).replace("{{email}}", email)


def generate(out_dir: str, count: int, size: int = 2048) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f) for k, f in
             (("recipients", "recipients.csv"), ("template", "template.eml"),
              ("rendered", "rendered.eml"))}
    with open(paths["recipients"], "w", newline="") as f:
        f.write("email,first_name\n")
        chunk = []
        for i in range(1, count + 1):
            email, name = recipient(i)
            chunk.append(f"{email},{name}\n")
            if len(chunk) >= 10000:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))
    tpl = template_text(size)
    with open(paths["template"], "w", newline="") as f:
        f.write(tpl)
    email, name = recipient(1)
    rendered = render(tpl, email, name)
    with open(paths["rendered"], "w", newline="") as f:
        f.write(rendered)
    paths["rendered_bytes"] = len(rendered.replace("\n", "\r\n").encode())
    return paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--size", type=int, default=2048, help="rendered message size (bytes)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    p = generate(a.out, a.count, a.size)
    print(f"{p['recipients']}: {a.count} recipients; {p['template']}; {p['rendered']}: "
          f"{p['rendered_bytes']} bytes with CRLF")
    return 0


if __name__ == "__main__":
    sys.exit(main())
