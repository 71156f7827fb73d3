#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/: valid inputs made up from the grammars (RFC 8461 §3.1 TXT
records, §3.2 policies, §4.1 MX patterns and hosts, Postfix lookup keys), so the fuzzers and
the corpus replay start from inputs that reach the round-trip and oracle checks, not only the
first rejection. Deterministic; rerun after changing it and commit the result.
Real domains' policies stay in ../shared/realworld (the replay reads them from there)."""
import os, random, shutil

rng = random.Random(8461)
HERE = os.path.dirname(os.path.abspath(__file__))
LDH = "abcdefghijklmnopqrstuvwxyz0123456789"
N = 300

def label():
    n = rng.randint(1, 12)
    s = rng.choice("abcdefghijklmnopqrstuvwxyz") + "".join(rng.choice(LDH + "-") for _ in range(n - 1))
    s = s.rstrip("-") or "a"
    if s[2:4] == "--":
        s = s[:2] + "x" + s[4:]
    if rng.random() < 0.15:
        s = s.upper() if rng.random() < 0.5 else s.capitalize()
    return s

def host(min_labels=1, unicode=True):
    labels = [label() for _ in range(rng.randint(min_labels, 3))]
    tlds = ["com", "net", "example", "test", "org", "co.uk", "xn--bcher-kva.example"]
    # Hosts may be written with U-labels; policy patterns must use A-labels (§3.2).
    tld = rng.choice(tlds + (["bücher.example"] if unicode else []))
    return ".".join(labels + [tld])

def pattern():
    h = host(unicode=False)
    return "*." + h if rng.random() < 0.35 else h

def policy():
    eol = rng.choice(["\n", "\r\n"])
    sep = lambda: rng.choice([": ", ":", ":  ", ":\t"])
    mode = rng.choice(["enforce", "testing", "none"])
    lines = [f"version{sep()}STSv1", f"mode{sep()}{mode}"]
    lines += [f"mx{sep()}{pattern()}" for _ in range(rng.randint(0 if mode == "none" else 1, 8))]
    age = rng.choice([0, 1, 60, 86400, 604800, 1209600, 31557600, rng.randint(0, 31557600)])
    lines.append(f"max_age{sep()}{age}")
    for _ in range(rng.randint(0, 2)):
        key = rng.choice(["x-report", "ext", "comment_1", "a.b-c"])
        val = "".join(rng.choice("abc XYZ019!~/=") for _ in range(rng.randint(1, 12))).strip() or "v"
        lines.append(f"{key}{sep()}{val}")
    head, rest = lines[:1], lines[1:]
    rng.shuffle(rest)
    text = eol.join(head + rest)
    return text + (eol if rng.random() < 0.8 else "")

def txt():
    ident = "".join(rng.choice(LDH + "ABCDEFXYZ") for _ in range(rng.randint(1, 32)))
    parts = ["v=STSv1", f"id={ident}"]
    for _ in range(rng.randint(0, 2)):
        parts.append(f"{rng.choice(['ext', 'x-a', 'k.1', 'report_uri'])}={rng.choice(['1', 'abc', 'a/b', 'x~y'])}")
    join = rng.choice([";", "; ", " ; ", ";\t"])
    text = join.join(parts)
    if rng.random() < 0.4:
        text += rng.choice([";", "; ", " ;"])
    return text

def mx_case():
    p = pattern()
    base = p[2:] if p.startswith("*.") else p
    kind = rng.randint(0, 4)
    if kind == 0:
        h = base                      # the base itself
    elif kind == 1:
        h = label() + "." + base      # one label more
    elif kind == 2:
        h = label() + "." + label() + "." + base  # two labels more
    elif kind == 3:
        h = base.swapcase() if base.isascii() else base
    else:
        h = host()                    # unrelated
    if rng.random() < 0.1:
        h += "."
    return f"{p}\n{h}"

def postfix_key():
    h = host()
    return rng.choice([h, h.upper(), h + ".", f"[{h}]", f"[{h}]:25", f"{h}:587", f"[{h}]:2525"])

def write(target, make):
    d = os.path.join(HERE, "seeds", target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    seen = set()
    while len(seen) < N:
        seen.add(make())
    for i, s in enumerate(sorted(seen)):
        with open(os.path.join(d, f"valid-{i:03}"), "wb") as f:
            f.write(s.encode())

write("policy", policy)
write("txt", txt)
write("mx", mx_case)
write("postfix_key", postfix_key)

def report():
    """An RFC 8460 §4 report, with the quirks real senders have (RCV-03, RCV-04, JSON-08)."""
    import json
    day = rng.randint(16000, 21000)
    iso = lambda d, zone: __import__("datetime").datetime.fromtimestamp(d * 86400, __import__("datetime").timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + zone
    zone = rng.choice(["Z", "Z", "+00:00", ""])
    ip = lambda: rng.choice([f"192.0.2.{rng.randint(1, 254)}", f"2001:db8::{rng.randint(1, 9999):x}", ""])
    policies = []
    for _ in range(rng.randint(1, 4)):
        ptype = rng.choice(["sts", "sts", "tlsa", "no-policy-found", "other-type"])
        dom = host(unicode=False).lower()
        pol = {"policy-type": ptype, "policy-domain": dom}
        if rng.random() < 0.7:
            pol["policy-string"] = ["version: STSv1", f"mode: {rng.choice(['enforce', 'testing'])}", f"mx: {pattern().lower()}", "max_age: 604800"]
        r = rng.random()
        if r < 0.4:
            pol["mx-host"] = [pattern().lower() for _ in range(rng.randint(1, 3))]
        elif r < 0.6:
            pol["mx-host"] = pattern().lower()
        details = []
        for _ in range(rng.randint(0, 4)):
            d = {"result-type": rng.choice(["starttls-not-supported", "certificate-expired", "validation-failure", "sts-policy-fetch-error", "new-kind"]),
                 "failed-session-count": rng.randint(0, 1000)}
            for k, v in [("sending-mta-ip", ip()), ("receiving-ip", ip()), ("receiving-mx-hostname", host(unicode=False).lower()),
                         ("failure-reason-code", rng.choice(["X509_V_ERR", None, ""])), ("receiving-mx-helo", host(unicode=False))]:
                if rng.random() < 0.7:
                    d[k] = v
            details.append(d)
        summary = {"total-successful-session-count": rng.randint(0, 100000), "total-failure-session-count": sum(d["failed-session-count"] for d in details)}
        p = {"policy": pol, "summary": summary}
        if details or rng.random() < 0.5:
            p["failure-details"] = details
        policies.append(p)
    rep = {"organization-name": rng.choice(["Google Inc.", "Microsoft Corporation", "Mail.ru", "Company-X"]),
           "date-range": {"start-datetime": iso(day, zone), "end-datetime": iso(day + 1, zone)},
           "contact-info": rng.choice(["smtp-tls-reporting@example.com", ""]),
           "report-id": f"{day}-{rng.randint(0, 10**9)}@example.com",
           "policies": policies}
    return json.dumps(rep, indent=rng.choice([None, 2]))

write("tlsrpt_report", report)
