//! The socketmap server: listeners (TCP, unix, systemd-passed), one task per connection,
//! requests answered in order within each zone's deadline, graceful shutdown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::BytesMut;
use mtasts_core::dane::DaneDecision;
use mtasts_core::decision::{
    DaneFinding, RememberMode, RememberOutcome, StsFinding, decide_with_trust, with_remembered,
};
use mtasts_core::postfix::{self, KeyRejection, Reply, policy_domain_from_key};
use mtasts_core::remember::{Memory, State};
use mtasts_core::{Decision, DomainName, TrustAnchors};
use mtasts_resolver::{Counter, DaneResolver, Dns, Fetch, Lookup, Resolver, TrustHandle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::NetstringCodec;
use crate::config::{Config, UnixSocket, Zone};
use crate::postfix_version::PostfixVersion;
use crate::reply_cache::{Basis, Class, ReplyCache};
use crate::values::ListenAddr;

/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Replies are written once this much is waiting, even if more requests are already read.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// The DANE side of one request.
enum DaneState {
    Off,
    Known(Arc<DaneDecision>),
    Pending(tokio::task::JoinHandle<Arc<DaneDecision>>),
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("listen {addr}")]
    /// A TCP listener could not be bound.
    Listen {
        /// The address.
        addr: String,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    #[error("unix socket {}", path.display())]
    /// A unix socket could not be set up.
    Socket {
        /// The socket path.
        path: PathBuf,
        #[source]
        /// Why.
        source: SocketError,
    },
}

/// What went wrong with a unix socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    #[error("exists and is not a socket; not removing it")]
    /// Something other than a socket is at the path.
    NotASocket,
    #[error("its directory {} does not exist (create it, e.g. with systemd's RuntimeDirectory=)", .0.display())]
    /// The directory to hold the socket is missing; it is not created (as root that would
    /// make directories anywhere a typo points).
    NoDirectory(PathBuf),
    #[error(transparent)]
    /// Binding, chmod or chown failed.
    Io(#[from] std::io::Error),
    #[error("`{name}` not found in {file}")]
    /// The owner or group is not known.
    UnknownId {
        /// The name asked for.
        name: String,
        /// Where it was looked up.
        file: &'static str,
    },
}

/// Answer counters, by reply class.
#[derive(Debug, Default)]
pub struct Counters {
    /// `OK` answers.
    pub ok: Counter,
    /// `NOTFOUND` answers.
    pub notfound: Counter,
    /// `TEMP` and `TIMEOUT` answers.
    pub temp: Counter,
    /// `PERM` answers.
    pub perm: Counter,
    /// Answers given at the deadline while a lookup went on.
    pub deadline_hits: Counter,
    /// Connections closed for malformed requests.
    pub bad_frames: Counter,
    /// Connections accepted.
    pub connections: Counter,
    /// Connections closed at once because `max_connections` were open.
    pub refused: Counter,
    /// Starts whose cache file could not be used as it was (moved aside, or memory only).
    pub store_fallbacks: Counter,
    /// Sum of answer latencies in microseconds, and buckets for a histogram.
    pub latency: LatencyHistogram,
    /// Answers that required TLS for a remembered domain (`remember_tls = enforce`).
    pub remembered_required: Counter,
    /// Answers that would have (`remember_tls = report`).
    pub remembered_would_require: Counter,
}

impl Counters {
    /// Requests answered (every answer has one class).
    pub fn requests(&self) -> u64 {
        [&self.ok, &self.notfound, &self.temp, &self.perm]
            .iter()
            .map(|c| c.get())
            .sum()
    }
}

/// Cumulative latency buckets (seconds): 0.0001, 0.001, 0.01, 0.1, 1, 10, +Inf.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Per bucket of [`LATENCY_BOUNDS`] (the last: above them all).
    pub buckets: [Counter; 7],
    /// Sum of all latencies, in microseconds.
    pub sum_micros: Counter,
}

/// Upper bounds of [`LatencyHistogram`] buckets, in seconds.
pub const LATENCY_BOUNDS: [f64; 6] = [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0];

impl LatencyHistogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i].inc();
        self.sum_micros
            .add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Answers observed.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(Counter::get).sum()
    }
}

/// The MTA-STS side of a finished lookup, for the core decision.
fn sts_finding(lookup: &Lookup) -> StsFinding<'_> {
    StsFinding::Lookup {
        verdict: &lookup.verdict,
        policy: lookup.policy(),
    }
}

/// Everything behind one answer: the zone, the DANE decision (`None`: DANE off for the zone)
/// and the MTA-STS lookup. [`Explanation::decision`] is what the daemon decides from them.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The map name asked for.
    pub map: String,
    /// The zone that map name selects.
    pub zone: Zone,
    /// The Postfix the reply is rendered for.
    pub postfix: PostfixVersion,
    /// The DANE decision, or `None` when the zone does not check DANE.
    pub dane: Option<Arc<DaneDecision>>,
    /// The MTA-STS lookup.
    pub lookup: Lookup,
    /// The conditional trust configured for the domain, if any.
    pub trust: Option<Arc<TrustAnchors>>,
    /// Remembered TLS: where the domain's memory stands (`None`: no memory, or exempt).
    pub remembered: Option<State>,
    /// Whether the domain is exempt from remembered TLS.
    pub remember_exempt: bool,
}

impl Explanation {
    /// The decision, as the daemon makes it.
    pub fn decision(&self) -> Decision<'_> {
        self.decision_and_remembered().0
    }

    /// The decision and what remembered TLS did to it.
    pub fn decision_and_remembered(&self) -> (Decision<'_>, RememberOutcome) {
        let dane = self
            .dane
            .as_deref()
            .map_or(DaneFinding::Off, DaneFinding::Decided);
        let decision = decide_with_trust(
            dane,
            sts_finding(&self.lookup),
            self.zone.profile(),
            self.trust.as_deref(),
        );
        if self.zone.remember_tls == RememberMode::Off {
            return (decision, RememberOutcome::Untouched);
        }
        with_remembered(decision, self.zone.remember_tls, self.remembered)
    }

    /// The Postfix reply the daemon gives for it.
    pub fn postfix_reply(&self) -> Reply {
        let opts = self.zone.render_options(self.postfix);
        postfix::render(&self.lookup.domain, &self.decision(), &opts).0
    }
}

/// The policy server.
pub struct Server<D, F> {
    resolver: Resolver<D, F>,
    dane: Option<DaneResolver>,
    config: RwLock<Arc<Config>>,
    /// Conditional trust, shared with the fetcher: both apply the same rules.
    trust: TrustHandle,
    /// Bumped on every reload, so connections re-read `config` only when it changed.
    config_generation: AtomicU64,
    counters: Counters,
    decision_log: crate::decision_log::DecisionLog,
    /// Encoded replies of the hot set of domains.
    replies: ReplyCache,
    /// One per open connection, at most `max_connections` (fixed at start).
    permits: Arc<tokio::sync::Semaphore>,
    max_connections: usize,
    /// Warnings that floods could repeat: at most one per kind every 10 s.
    throttle: mtasts_resolver::Throttle,
    /// Remembered TLS, as the learners last wrote it (read every `remember.reload_interval`).
    remembered: RwLock<Arc<HashMap<String, Memory>>>,
}

impl<D, F> std::fmt::Debug for Server<D, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A unix socket listener and its path (removed on shutdown).
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Where it listens, for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "tcp".into()),
            Self::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

impl<D: Dns, F: Fetch> Server<D, F> {
    /// A server; `dane` enables DANE awareness for zones with `dane = true`. No conditional
    /// trust: see [`Server::with_trust`].
    pub fn new(resolver: Resolver<D, F>, dane: Option<DaneResolver>, config: Config) -> Arc<Self> {
        Self::with_trust(resolver, dane, config, TrustHandle::default())
    }

    /// [`Server::new`] with the conditional trust in force, the handle the resolver's fetcher
    /// was given (a reload replaces the rules for both).
    pub fn with_trust(
        resolver: Resolver<D, F>,
        dane: Option<DaneResolver>,
        config: Config,
        trust: TrustHandle,
    ) -> Arc<Self> {
        let max_connections = config.max_connections.max(1);
        Arc::new(Self {
            resolver,
            dane,
            trust,
            config: RwLock::new(Arc::new(config)),
            config_generation: AtomicU64::new(0),
            counters: Counters::default(),
            decision_log: crate::decision_log::DecisionLog::default(),
            replies: ReplyCache::new(crate::reply_cache::CAPACITY),
            permits: Arc::new(tokio::sync::Semaphore::new(max_connections)),
            max_connections,
            throttle: mtasts_resolver::Throttle::default(),
            remembered: RwLock::new(Arc::new(HashMap::new())),
        })
    }

    /// Replaces the remembered-TLS memories; kept replies rendered from the old ones go.
    pub fn set_remembered(&self, memories: HashMap<String, Memory>) {
        let changed = {
            let old = self.remembered();
            *old != memories
        };
        if !changed {
            return;
        }
        match self.remembered.write() {
            Ok(mut m) => *m = Arc::new(memories),
            Err(p) => *p.into_inner() = Arc::new(memories),
        }
        self.config_generation.fetch_add(1, Ordering::Release);
    }

    /// Counts and logs what remembered TLS did to an answer.
    pub fn count_remembered(&self, domain: &DomainName, outcome: RememberOutcome) {
        match outcome {
            RememberOutcome::Required => {
                self.counters.remembered_required.inc();
                tracing::debug!(domain = %domain, "remembered TLS: TLS required");
            }
            RememberOutcome::WouldRequire => {
                self.counters.remembered_would_require.inc();
                tracing::info!(domain = %domain, "remembered TLS (report): TLS would be required; answered without");
            }
            RememberOutcome::Untouched => {}
        }
    }

    /// The remembered-TLS memories in use.
    pub fn remembered(&self) -> Arc<HashMap<String, Memory>> {
        match self.remembered.read() {
            Ok(m) => m.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Where `domain` stands for remembered TLS under `config` now (`None`: no memory of it,
    /// or exempt).
    pub fn remembered_state(&self, config: &Config, domain: &DomainName) -> Option<State> {
        if config.remember.exempt(domain.as_str()) {
            return None;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.remembered()
            .get(domain.as_str())
            .map(|m| m.state(&config.remember.rule(), now))
    }

    /// The resolver behind the server.
    pub fn resolver(&self) -> &Resolver<D, F> {
        &self.resolver
    }

    /// Answer counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The DANE checker, when DANE is on.
    pub fn dane(&self) -> Option<&DaneResolver> {
        self.dane.as_ref()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.max_connections
            .saturating_sub(self.permits.available_permits())
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces zones and other reloadable settings (SIGHUP). Listeners and the cache stay.
    pub fn reload(&self, new: Config) -> Vec<String> {
        let mut notes = Vec::new();
        let old = self.config();
        let pending = old.restart_needed(&new);
        if !pending.is_empty() {
            notes.push(format!(
                "changed, but in effect only after a restart: {}",
                pending.join(", ")
            ));
        }
        if old.trust != new.trust || old.ca_file != new.ca_file {
            match new.trust_table() {
                Ok(table) => {
                    self.trust.set(Arc::new(table));
                    notes.push(format!("trust: {} rule(s) in force", new.trust.len()));
                }
                Err(e) => notes.push(format!(
                    "trust: {}; the previous rules stay in force",
                    mtasts_core::errors::Chain(&e)
                )),
            }
        }
        match self.config.write() {
            Ok(mut c) => *c = Arc::new(new),
            Err(p) => *p.into_inner() = Arc::new(new),
        }
        self.config_generation.fetch_add(1, Ordering::Release);
        notes
    }

    /// Appends the encoded reply to `request` if it can be given from memory alone (the hot
    /// path: no await, no timer, no task; a kept rendering when nothing it was rendered from
    /// changed); `false` when the answer needs a lookup.
    fn answer_from_memory(
        &self,
        (generation, config): &(u64, Arc<Config>),
        request: &[u8],
        out: &mut BytesMut,
        started: std::time::Instant,
    ) -> bool {
        let (map, domain) = match parse_request(request) {
            Ok(asked) => asked,
            Err(reply) => {
                self.counted(Class::of(&reply), started);
                encode(&reply, out);
                return true;
            }
        };
        let zone = config.zone(map);
        let dane = match (&self.dane, zone.dane) {
            (Some(dane), true) => match dane.cached(&domain) {
                Some(d) => Some(d),
                None => return false,
            },
            _ => None,
        };
        let Some(lookup) = self.resolver.lookup_now(&domain) else {
            return false;
        };
        let Some(state) = &lookup.state else {
            return false;
        };
        let basis = Basis {
            generation: *generation,
            zone: &zone,
            state,
            dane: dane.as_ref(),
            verdict: &lookup.verdict,
        };
        if let Some(class) = self.replies.copy_into(&domain, &basis, out) {
            tracing::debug!(domain = %domain, "answered (kept reply)");
            self.counted(class, started);
            return true;
        }
        let finding = dane
            .as_deref()
            .map_or(DaneFinding::Off, DaneFinding::Decided);
        let reply = self.decide(&domain, config, &zone, finding, sts_finding(&lookup));
        let from = out.len();
        encode(&reply, out);
        let class = Class::of(&reply);
        // A remembered domain's answer depends on the time (its memory expires) and is
        // counted each time: never kept.
        let remembered = zone.remember_tls != RememberMode::Off
            && self.remembered().contains_key(domain.as_str());
        if !remembered {
            self.replies.keep(&domain, &basis, class, &out[from..]);
        }
        self.counted(class, started);
        true
    }

    fn counted(&self, class: Class, started: std::time::Instant) {
        // Each class counter is bumped once per answer: their sum is the requests answered.
        match class {
            Class::Ok => &self.counters.ok,
            Class::NotFound => &self.counters.notfound,
            Class::Temp => &self.counters.temp,
            Class::Perm => &self.counters.perm,
        }
        .inc();
        self.counters.latency.observe(started.elapsed());
    }

    /// Answers one socketmap request payload.
    pub async fn answer(&self, request: &[u8]) -> Reply {
        self.answer_with(&self.config(), request).await
    }

    /// [`Server::answer`] under `config` (a connection's snapshot).
    async fn answer_with(&self, config: &Config, request: &[u8]) -> Reply {
        let started = std::time::Instant::now();
        let reply = self.answer_inner(config, request).await;
        self.counted(Class::of(&reply), started);
        reply
    }

    async fn answer_inner(&self, config: &Config, request: &[u8]) -> Reply {
        let (map, domain) = match parse_request(request) {
            Ok(asked) => asked,
            Err(reply) => return reply,
        };
        let zone = &config.zone(map);
        // Hot path: everything known in memory, no timers, no tasks.
        let dane_now = match (&self.dane, zone.dane) {
            (Some(dane), true) => dane.cached(&domain).map(Some),
            _ => Some(None),
        };
        if let Some(dane_now) = dane_now
            && let Some(lookup) = self.resolver.lookup_now(&domain)
        {
            let dane = dane_now
                .as_deref()
                .map_or(DaneFinding::Off, DaneFinding::Decided);
            return self.decide(&domain, config, zone, dane, sts_finding(&lookup));
        }
        let deadline = tokio::time::Instant::now() + zone.deadline();
        let dane_pending = match (&self.dane, zone.dane) {
            (Some(dane), true) => match dane.cached(&domain) {
                Some(d) => DaneState::Known(d),
                None => {
                    // Runs on after the deadline, so the next request finds it cached.
                    let (dane, d) = (dane.clone(), domain.clone());
                    DaneState::Pending(tokio::spawn(async move { dane.check(&d).await }))
                }
            },
            _ => DaneState::Off,
        };
        let (dane, sts) = tokio::join!(
            async {
                match dane_pending {
                    DaneState::Off => Some(None),
                    DaneState::Known(d) => Some(Some(d)),
                    DaneState::Pending(h) => {
                        tokio::time::timeout_at(deadline, h).await.ok().map(|r| {
                            Some(r.unwrap_or_else(|e| {
                                Arc::new(DaneDecision::TempFail(format!("internal error: {e}")))
                            }))
                        })
                    }
                }
            },
            tokio::time::timeout_at(deadline, self.resolver.lookup(&domain))
        );
        let dane = match &dane {
            None => DaneFinding::Pending,
            Some(None) => DaneFinding::Off,
            Some(Some(d)) => DaneFinding::Decided(d),
        };
        let sts = sts.as_ref().map_or(StsFinding::Pending, sts_finding);
        self.decide(&domain, config, zone, dane, sts)
    }

    /// The reply from what is known about DANE and MTA-STS when the answer is due, through the
    /// core decision every front end shares.
    fn decide(
        &self,
        domain: &DomainName,
        config: &Config,
        zone: &Zone,
        dane: DaneFinding<'_>,
        sts: StsFinding<'_>,
    ) -> Reply {
        let table = self.trust.get();
        let trust = table.find(domain).map(|rule| &*rule.anchors);
        let decision = decide_with_trust(dane, sts, zone.profile(), trust);
        let decision = if zone.remember_tls == RememberMode::Off {
            decision
        } else {
            let state = self.remembered_state(config, domain);
            let (decision, outcome) = with_remembered(decision, zone.remember_tls, state);
            self.count_remembered(domain, outcome);
            decision
        };
        if decision.hit_deadline() {
            self.counters.deadline_hits.inc();
            tracing::info!(domain = %domain, deadline = ?zone.deadline(), decision = %decision, "answer deadline reached; lookup continues in the background");
        }
        let (reply, omitted) = postfix::render(domain, &decision, &config.render_options(zone));
        if let Some(o) = omitted {
            tracing::warn!(domain = %domain, omitted = ?o, "reply shortened to fit Postfix's 100,000-byte limit");
        }
        self.decision_log.record(domain, &decision, &reply);
        reply
    }

    /// Everything behind the answer for `domain` under the zone of `map`, waiting for the
    /// DANE check and the MTA-STS lookup to finish (no deadline): `mtasts query` and
    /// `GET /v1/decision/<domain>`. `traced` records the lookup's steps.
    pub async fn explain(&self, map: &str, domain: &DomainName, traced: bool) -> Explanation {
        let config = self.config();
        let zone = config.zone(map);
        let dane = async {
            match (&self.dane, zone.dane) {
                (Some(dane), true) => Some(dane.check(domain).await),
                _ => None,
            }
        };
        let sts = async {
            if traced {
                self.resolver.lookup_traced(domain).await
            } else {
                self.resolver.lookup(domain).await
            }
        };
        let (dane, lookup) = tokio::join!(dane, sts);
        Explanation {
            remembered: self.remembered_state(&config, domain),
            remember_exempt: config.remember.exempt(domain.as_str()),
            trust: self.trust.get().find(domain).map(|r| r.anchors.clone()),
            map: map.to_string(),
            postfix: config.postfix_version,
            zone,
            dane,
            lookup,
        }
    }

    /// Serves a connection: requests in order, one reply each; a bad frame closes it. Every
    /// whole request already read is answered before the replies are written, together, so
    /// a pipelining client gets one write per batch rather than one per reply. A whole request
    /// must arrive within `idle_timeout` of the previous one (one timer per connection).
    pub async fn serve_connection<S>(
        self: Arc<Self>,
        mut stream: S,
        peer: String,
        mut shutdown: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.counters.connections.inc();
        let mut config = self.config_snapshot();
        let idle = config.1.idle_timeout;
        let mut codec = NetstringCodec::default();
        let mut input = BytesMut::with_capacity(READ_CHUNK);
        let mut output = BytesMut::with_capacity(READ_CHUNK);
        let mut last_request = tokio::time::Instant::now();
        let idle_timer = tokio::time::sleep_until(last_request + idle);
        tokio::pin!(idle_timer);
        // Made once: a new `changed()` per read would register with the channel every time.
        let stop = shutdown.changed();
        tokio::pin!(stop);
        loop {
            loop {
                match codec.decode(&mut input) {
                    Ok(Some(request)) => {
                        let received = std::time::Instant::now();
                        last_request = tokio::time::Instant::from_std(received);
                        self.refresh_snapshot(&mut config);
                        if !self.answer_from_memory(&config, &request, &mut output, received) {
                            // A lookup: the replies already waiting go out first.
                            if !output.is_empty() {
                                if stream.write_all(&output).await.is_err()
                                    || stream.flush().await.is_err()
                                {
                                    return;
                                }
                                output.clear();
                            }
                            let reply = self.answer_with(&config.1, &request).await;
                            encode(&reply, &mut output);
                        }
                        // Bounded: a batch of small requests can ask for large replies.
                        if output.len() >= MAX_BATCH_BYTES {
                            if stream.write_all(&output).await.is_err() {
                                return;
                            }
                            output.clear();
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // Replies to the requests before the bad one still go out.
                        let _ = stream.write_all(&output).await;
                        let _ = stream.flush().await;
                        self.counters.bad_frames.inc();
                        if let Some(suppressed) = self.throttle.allow("bad-frame") {
                            tracing::warn!(%peer, error = %e, suppressed, "malformed socketmap request; closing the connection");
                        }
                        return;
                    }
                }
            }
            if !output.is_empty() {
                if stream.write_all(&output).await.is_err() || stream.flush().await.is_err() {
                    return;
                }
                output.clear();
            }
            if input.capacity() - input.len() < READ_CHUNK / 4 {
                input.reserve(READ_CHUNK);
            }
            tokio::select! {
                read = stream.read_buf(&mut input) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                () = &mut idle_timer => {
                    let due = last_request + idle;
                    if tokio::time::Instant::now() >= due {
                        return;
                    }
                    // Requests came since the timer was set: wait for the rest of the interval.
                    idle_timer.as_mut().reset(due);
                }
                // Whole requests already read were answered above; stop reading.
                _ = &mut stop => return,
            }
        }
    }

    /// The configuration and its generation, for a connection to keep until a reload.
    fn config_snapshot(&self) -> (u64, Arc<Config>) {
        let generation = self.config_generation.load(Ordering::Acquire);
        (generation, self.config())
    }

    /// Replaces a connection's snapshot after a reload; otherwise one atomic load.
    fn refresh_snapshot(&self, snapshot: &mut (u64, Arc<Config>)) {
        if self.config_generation.load(Ordering::Acquire) != snapshot.0 {
            *snapshot = self.config_snapshot();
        }
    }

    /// Accepts on every listener until `shutdown` turns true, then gives open connections
    /// up to `grace` to finish their current request.
    pub async fn run(
        self: Arc<Self>,
        listeners: Vec<Listener>,
        mut shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) {
        let mut accepts = JoinSet::new();
        let connections = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        for listener in listeners {
            let (this, conns, rx) = (self.clone(), connections.clone(), shutdown.clone());
            accepts.spawn(async move { accept_loop(this, listener, conns, rx).await });
        }
        let _ = shutdown.wait_for(|stop| *stop).await;
        accepts.abort_all();
        let mut conns = connections.lock().await;
        let drained =
            tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("shutdown grace period over; closing remaining connections");
            conns.abort_all();
        }
        for l in &self.config().listen {
            if let ListenAddr::Unix(path) = l {
                let _ = std::fs::remove_file(path);
            }
        }
        self.resolver.flush().await;
    }
}

/// The map name and policy domain of a request, or the reply when it names none.
fn parse_request(request: &[u8]) -> Result<(&str, DomainName), Reply> {
    let Ok(text) = std::str::from_utf8(request) else {
        return Err(Reply::Perm("request is not UTF-8".into()));
    };
    let Some((map, key)) = text.split_once(' ') else {
        return Err(Reply::Perm("request must be `<map name> <key>`".into()));
    };
    match policy_domain_from_key(key) {
        Ok(d) => Ok((map, d)),
        Err(KeyRejection::Empty | KeyRejection::ParentProbe(_)) => Err(Reply::NotFound),
        Err(e @ KeyRejection::NotADomain(..)) => {
            tracing::debug!(key, reason = %e, "key names no policy domain");
            Err(Reply::NotFound)
        }
    }
}

/// Appends `reply` as one netstring.
fn encode(reply: &Reply, out: &mut BytesMut) {
    let _ = NetstringCodec::default().encode(reply.payload().as_bytes(), out);
}

impl Class {
    fn of(reply: &Reply) -> Self {
        match reply {
            Reply::Ok(_) => Self::Ok,
            Reply::NotFound => Self::NotFound,
            Reply::Temp(_) | Reply::Timeout(_) => Self::Temp,
            Reply::Perm(_) => Self::Perm,
        }
    }
}

async fn accept_loop<D: Dns, F: Fetch>(
    server: Arc<Server<D, F>>,
    listener: Listener,
    connections: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        let (server, rx) = (server.clone(), shutdown.clone());
        let accepted = match &listener {
            Listener::Tcp(l) => l.accept().await.map(|(stream, peer)| {
                let _ = stream.set_nodelay(true);
                (Accepted::Tcp(stream), peer.to_string())
            }),
            Listener::Unix(l, path) => l
                .accept()
                .await
                .map(|(stream, _)| (Accepted::Unix(stream), format!("unix:{}", path.display()))),
        };
        match accepted {
            Ok((stream, peer)) => match server.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let serve = async move {
                        let _permit = permit;
                        match stream {
                            Accepted::Tcp(s) => server.serve_connection(s, peer, rx).await,
                            Accepted::Unix(s) => server.serve_connection(s, peer, rx).await,
                        }
                    };
                    connections.lock().await.spawn(serve);
                }
                // At the cap: close at once, so the client fails fast instead of waiting in
                // the backlog (Postfix defers that lookup and tries again).
                Err(_) => {
                    server.counters.refused.inc();
                    if let Some(suppressed) = server.throttle.allow("refused") {
                        tracing::warn!(%peer, max = server.max_connections, suppressed, "max_connections open; closing a new connection");
                    }
                    drop(stream);
                }
            },
            Err(e) => {
                if let Some(suppressed) = server.throttle.allow("accept") {
                    tracing::warn!(error = %e, suppressed, "accept failed");
                }
                accept_error().await;
            }
        }
        // Reap finished connection tasks so the set does not grow.
        let mut conns = connections.lock().await;
        while conns.try_join_next().is_some() {}
    }
}

/// An accepted connection of either kind.
enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept_error() {
    // Out of file descriptors and the like: pause, keep serving.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Binds the configured listeners, or takes the ones systemd passed (socket activation).
pub async fn bind(config: &Config) -> Result<Vec<Listener>, ServerError> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() > 0 {
        let mut out = Vec::new();
        for i in 0..fds.len() {
            if let Ok(Some(l)) = fds.take_tcp_listener(i) {
                l.set_nonblocking(true)
                    .map_err(|e| listen_err(&format!("systemd fd {i}"), e))?;
                out.push(Listener::Tcp(
                    TcpListener::from_std(l).map_err(|e| listen_err("systemd", e))?,
                ));
            } else if let Ok(Some(l)) = fds.take_unix_listener(i) {
                l.set_nonblocking(true)
                    .map_err(|e| listen_err(&format!("systemd fd {i}"), e))?;
                let path = l
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(Path::to_path_buf))
                    .unwrap_or_default();
                out.push(Listener::Unix(
                    UnixListener::from_std(l).map_err(|e| listen_err("systemd", e))?,
                    path,
                ));
            }
        }
        tracing::info!(count = out.len(), "using sockets passed by systemd");
        return Ok(out);
    }
    bind_addrs(&config.listen, &config.unix_socket).await
}

/// Binds `specs` (TCP addresses or unix sockets with `unix` ownership and mode).
pub async fn bind_addrs(
    specs: &[ListenAddr],
    unix: &UnixSocket,
) -> Result<Vec<Listener>, ServerError> {
    let mut out = Vec::new();
    for spec in specs {
        match spec {
            ListenAddr::Unix(path) => out.push(bind_unix(path, unix)?),
            ListenAddr::Tcp(addr) => {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|e| listen_err(&addr.to_string(), e))?;
                out.push(Listener::Tcp(l));
            }
        }
    }
    Ok(out)
}

fn listen_err(addr: &str, source: std::io::Error) -> ServerError {
    ServerError::Listen {
        addr: addr.to_string(),
        source,
    }
}

fn socket_err(path: &Path, e: impl Into<SocketError>) -> ServerError {
    ServerError::Socket {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// Mode of a unix socket when the configuration sets none: any local user may connect (limit
/// it with `unix_socket.mode`/`group`, or with the directory's permissions).
pub const DEFAULT_SOCKET_MODE: u32 = 0o666;

fn bind_unix(path: &Path, opts: &UnixSocket) -> Result<Listener, ServerError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(socket_err(path, SocketError::NotASocket));
        }
        std::fs::remove_file(path).map_err(|e| socket_err(path, e))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(socket_err(
            path,
            SocketError::NoDirectory(dir.to_path_buf()),
        ));
    }
    let l = UnixListener::bind(path).map_err(|e| socket_err(path, e))?;
    // Set explicitly: a socket's mode otherwise comes from the umask (0755 under root's
    // 022), and a client such as Postfix's smtp, running as another user, could not connect.
    let mode = opts.mode.map_or(DEFAULT_SOCKET_MODE, |m| m.0);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| socket_err(path, e))?;
    if opts.owner.is_some() || opts.group.is_some() {
        let uid = opts
            .owner
            .as_deref()
            .map(|o| lookup_id("/etc/passwd", o))
            .transpose()
            .map_err(|e| socket_err(path, e))?;
        let gid = opts
            .group
            .as_deref()
            .map(|g| lookup_id("/etc/group", g))
            .transpose()
            .map_err(|e| socket_err(path, e))?;
        std::os::unix::fs::chown(path, uid, gid).map_err(|e| socket_err(path, e))?;
    }
    Ok(Listener::Unix(l, path.to_path_buf()))
}

/// A numeric id, or the id of a name in /etc/passwd or /etc/group (third field).
fn lookup_id(file: &'static str, name: &str) -> Result<u32, SocketError> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let text = std::fs::read_to_string(file)?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(2)?.parse().ok())
        .ok_or_else(|| SocketError::UnknownId {
            name: name.to_string(),
            file,
        })
}
