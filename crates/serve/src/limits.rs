//! Per-client request rate (a token bucket per source address): a sender fetches a policy a
//! few times a day per domain, so a client asking hundreds of times a second is a scraper or
//! an attack, and gets `429` rather than a share of the server. The table is sharded by
//! address (a request takes one of [`SHARDS`] locks, not one shared by all) and bounded:
//! idle clients are forgotten, and past [`MAX_CLIENTS`] the oldest go first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Clients remembered at most.
pub const MAX_CLIENTS: usize = 65_536;
/// Independent tables, each with its own lock and an equal share of [`MAX_CLIENTS`].
pub const SHARDS: usize = 16;

type Buckets = HashMap<IpAddr, (f64, Instant)>;

/// The rate allowed per client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientRate {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once above that.
    pub burst: f64,
}

/// The buckets, by source address.
#[derive(Debug)]
pub struct RateLimiter {
    rate: ClientRate,
    shards: Vec<Mutex<Buckets>>,
    hasher: std::collections::hash_map::RandomState,
}

fn lock(m: &Mutex<Buckets>) -> std::sync::MutexGuard<'_, Buckets> {
    match m.lock() {
        Ok(b) => b,
        Err(p) => p.into_inner(),
    }
}

impl RateLimiter {
    /// A limiter allowing `rate` per client.
    pub fn new(rate: ClientRate) -> Self {
        Self {
            rate,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Whether `client` may make a request at `now` (and takes its token if so).
    pub fn allow(&self, client: IpAddr, now: Instant) -> bool {
        use std::hash::BuildHasher as _;
        let shard = usize::try_from(self.hasher.hash_one(client) % SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(shard) else {
            return true;
        };
        let mut buckets = lock(shard);
        if buckets.len() >= MAX_CLIENTS / SHARDS && !buckets.contains_key(&client) {
            self.forget(&mut buckets, now);
        }
        let (tokens, last) = buckets.entry(client).or_insert((self.rate.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.rate.per_second;
        *tokens = (*tokens + refill).min(self.rate.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops clients whose bucket is full again (idle long enough); if none is, the half
    /// seen least recently.
    fn forget(&self, buckets: &mut Buckets, now: Instant) {
        let full_after = self.rate.burst / self.rate.per_second.max(f64::MIN_POSITIVE);
        buckets
            .retain(|_, (_, last)| now.saturating_duration_since(*last).as_secs_f64() < full_after);
        if buckets.len() >= MAX_CLIENTS / SHARDS {
            let mut seen: Vec<Instant> = buckets.values().map(|(_, l)| *l).collect();
            seen.sort_unstable();
            let cut = seen[seen.len() / 2];
            buckets.retain(|_, (_, last)| *last > cut);
        }
    }

    /// How many clients are remembered.
    pub fn clients(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_client_gets_its_burst_then_its_rate_and_others_are_unaffected() {
        let l = RateLimiter::new(ClientRate {
            per_second: 10.0,
            burst: 5.0,
        });
        let (a, b): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().expect("ip"),
            "192.0.2.2".parse().expect("ip"),
        );
        let t0 = Instant::now();
        assert_eq!((0..5).filter(|_| l.allow(a, t0)).count(), 5);
        assert!(!l.allow(a, t0), "burst spent");
        assert!(l.allow(b, t0), "another client has its own bucket");
        // 10/s: one token back after 100 ms, never more than the burst.
        assert!(l.allow(a, t0 + Duration::from_millis(100)));
        assert!(!l.allow(a, t0 + Duration::from_millis(100)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| l.allow(a, later)).count(), 5);
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = RateLimiter::new(ClientRate {
            per_second: 1.0,
            burst: 2.0,
        });
        let t0 = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 1000) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.allow(ip, t0 + Duration::from_micros(u64::from(i)));
        }
        assert!(l.clients() <= MAX_CLIENTS, "{}", l.clients());
    }
}
