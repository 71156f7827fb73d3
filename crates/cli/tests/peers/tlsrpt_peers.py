"""Independent peers for the TLS-RPT sending tests, run in the venv .ci/peers.sh makes.

  parsedmarc FILE...   parse each report (a .eml message, a .json or .json.gz file) with
                       parsedmarc; print what it read as JSON
  collectd-counts DB   read tlsrpt-reporter's collectd SQLite database; print per domain the
                       sessions, failed sessions and failure details by result code as JSON

Prints JSON on stdout; any parser error is an exit status 1 with the error on stderr.
"""

import gzip
import json
import sqlite3
import sys


def parsedmarc_read(path):
    import parsedmarc

    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".eml"):
        parsed = parsedmarc.parse_report_email(data, offline=True)
        if parsed.get("report_type") != "smtp_tls":
            raise ValueError(f"{path}: parsedmarc read a {parsed.get('report_type')} report")
        return parsed["report"]
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return parsedmarc.parse_smtp_tls_report_json(data)


def collectd_counts(db):
    con = sqlite3.connect(db)
    out = {}
    for domain, total, failed in con.execute(
        "SELECT domain, SUM(cntrtotal), SUM(cntrfailure) FROM finalresults GROUP BY domain"
    ):
        out[domain] = {"sessions": total, "failed": failed, "codes": {}}
    for domain, reason, count in con.execute("SELECT domain, reason, cntr FROM failures"):
        code = str(json.loads(reason).get("c"))
        codes = out.setdefault(domain, {"sessions": 0, "failed": 0, "codes": {}})["codes"]
        codes[code] = codes.get(code, 0) + count
    return out


def main(argv):
    if len(argv) >= 2 and argv[0] == "parsedmarc":
        print(json.dumps([parsedmarc_read(p) for p in argv[1:]], default=str))
        return 0
    if len(argv) == 2 and argv[0] == "collectd-counts":
        print(json.dumps(collectd_counts(argv[1])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
