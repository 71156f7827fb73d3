# Sourced by the Postfix scenarios: a private Postfix instance in $WORK (own config and queue
# directories, no chroot, mail accepted on 127.0.0.1:2525, the lab CA as the only trust store,
# the policy from the daemon on 127.0.0.1:8461, its log in $WORK/maillog).
# Needs WORK and MTASTS_LAB_CA; sets ETC.

ETC="$WORK/etc"

postfix_instance() {
    mkdir -p "$ETC" "$WORK/spool" "$WORK/data"
    chmod 0755 "$WORK"
    chown postfix "$WORK/data"
    cp /etc/postfix/master.cf "$ETC/master.cf"
    cat >"$ETC/main.cf" <<MAINCF
compatibility_level = 3.6
queue_directory = $WORK/spool
data_directory = $WORK/data
mail_owner = postfix
setgid_group = postdrop
myhostname = sender.lab.test
mydomain = lab.test
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
maillog_file = $WORK/maillog
maillog_file_prefixes = /tmp
smtp_tls_security_level = may
smtp_tls_CAfile = $MTASTS_LAB_CA
smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix
smtp_tls_loglevel = 1
smtp_connect_timeout = 5s
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
MAINCF
    postconf -c "$ETC" -F '*/*/chroot = n'
    postconf -c "$ETC" -M# smtp/inet
    postconf -c "$ETC" -M '127.0.0.1:2525/inet = 127.0.0.1:2525 inet n - n - - smtpd'
}

postfix_start() {
    postfix -c "$ETC" set-permissions >/dev/null 2>&1 || true
    postfix -c "$ETC" start >"$WORK/start.log" 2>&1 || { cat "$WORK/start.log" >&2; exit 1; }
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/2525) 2>/dev/null && break
        sleep 0.05
    done
}

# Sends one message to user@DOMAIN for each argument, on one SMTP session.
postfix_send() {
    python3 - "$@" <<'PY'
import smtplib, sys
with smtplib.SMTP("127.0.0.1", 2525, timeout=20) as s:
    for d in sys.argv[1:]:
        s.sendmail("tester@sender.lab.test", [f"user@{d}"], f"Subject: mtasts e2e {d}\r\n\r\nhello {d}\r\n")
PY
}

# The newest status= line for a recipient domain, or "pending".
status_of() {
    local line
    line=$(grep -E "to=<user@$1>.*status=" "$WORK/maillog" 2>/dev/null | tail -n 1 || true)
    if [ -z "$line" ]; then echo pending; else sed -E 's/.*status=([a-z]+).*/\1/' <<<"$line"; fi
}

# How many status=STATUS lines DOMAIN has.
count_of() {
    grep -cE "to=<user@$1>.*status=$2" "$WORK/maillog" 2>/dev/null || true
}
