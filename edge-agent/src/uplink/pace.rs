//! The uplink's pacing: the token bucket that holds the drain rate, and
//! the exponential backoff (with jitter) used between reconnects and
//! before a record the broker refused is sent again.

use std::time::Duration;

use tokio::time::Instant;

use crate::record::MAX_MESSAGES;

/// First reconnect delay; doubles per failure up to the configured maximum.
pub(super) const FIRST_RECONNECT: Duration = Duration::from_millis(500);
/// First wait before resending refused records; doubles per refusal up to
/// the reconnect maximum.
pub(super) const FIRST_RESEND: Duration = Duration::from_secs(1);

/// Token bucket for the drain rate.
#[derive(Debug)]
pub(super) struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub(super) fn new(rate: u32) -> Bucket {
        let rate = f64::from(rate.max(1));
        let burst = (rate / 4.0).max(MAX_MESSAGES as f64);
        Bucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Takes `n` tokens, or says how long until there are enough.
    pub(super) fn take(&mut self, n: usize) -> Result<(), Duration> {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        let n = n as f64;
        if self.tokens >= n {
            self.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((n - self.tokens) / self.rate))
        }
    }
}

/// Exponential backoff with jitter (so a fleet that lost the broker at the
/// same moment does not come back in lockstep): the n-th delay lies
/// between half and all of `first · 2ⁿ`, capped at `max`.
#[derive(Debug)]
pub(super) struct Backoff {
    first: Duration,
    failures: u32,
    max: Duration,
    state: u64,
}

impl Backoff {
    pub(super) fn new(first: Duration, max: Duration, seed: &str) -> Backoff {
        let mut state = 0xcbf2_9ce4_8422_2325u64;
        for b in seed.bytes() {
            state = (state ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        state ^= crate::now_ms();
        Backoff {
            first,
            failures: 0,
            max,
            state: state | 1,
        }
    }

    pub(super) fn next(&mut self) -> Duration {
        let exp = self.first.saturating_mul(1u32 << self.failures.min(16));
        let base = exp.min(self.max);
        self.failures = self.failures.saturating_add(1);
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let half = base / 2;
        let jitter = half.mul_f64((self.state >> 11) as f64 / (1u64 << 53) as f64);
        half + jitter
    }

    /// The longest delay, jittered the same way (for refusals that no
    /// quick retry can cure).
    pub(super) fn longest(&mut self) -> Duration {
        self.failures = self.failures.max(16);
        self.next()
    }

    pub(super) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let mut b = Backoff::new(FIRST_RECONNECT, Duration::from_secs(4), "dev-1");
        let delays: Vec<Duration> = (0..8).map(|_| b.next()).collect();
        assert!(delays[0] >= Duration::from_millis(250) && delays[0] <= FIRST_RECONNECT);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(4)));
        assert!(delays[7] >= Duration::from_secs(2), "{delays:?}");
        b.reset();
        assert!(b.next() <= FIRST_RECONNECT);
        assert!(b.longest() >= Duration::from_secs(2));
    }

    #[test]
    fn the_resend_backoff_starts_at_a_second() {
        let mut b = Backoff::new(FIRST_RESEND, Duration::from_millis(300), "dev-1");
        assert!(b.next() <= Duration::from_millis(300), "the cap wins");
        let mut b = Backoff::new(FIRST_RESEND, Duration::from_secs(30), "dev-1");
        let first = b.next();
        assert!(first >= Duration::from_millis(500) && first <= FIRST_RESEND);
        let later: Vec<Duration> = (0..10).map(|_| b.next()).collect();
        assert!(later.iter().all(|d| *d <= Duration::from_secs(30)));
        assert!(later[9] >= Duration::from_secs(15), "{later:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_holds_the_rate() {
        let mut bucket = Bucket::new(100);
        let mut sent = 0;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            match bucket.take(2) {
                Ok(()) => sent += 2,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
        // 10 s at 100/s plus the initial burst of 25.
        assert!((1000..=1030).contains(&sent), "{sent}");
    }
}
