//! Failed logins counted against a key (a username's or a client address's), and when they
//! lock it. The rule is here, the same for every engine; each engine only keeps the counts and
//! applies [`FailureCount::after_failure`] inside one write transaction.

/// How many failures lock a key, within which window, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Failures within `window` that lock the key (at least 1).
    pub max_failures: u32,
    pub window: i64,
    /// The first lockout; each later one doubles it, up to `lockout_max`.
    pub lockout: i64,
    pub lockout_max: i64,
}

/// What is on record for one key. Times are Unix seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCount {
    /// Failures since `window_start`.
    pub failures: u32,
    pub window_start: i64,
    /// Locked until this time (0: never locked).
    pub locked_until: i64,
    /// Lockouts so far, which set the next one's length.
    pub lockouts: u32,
    pub last_failure: i64,
}

impl FailureCount {
    /// When the lock ends, if the key is locked at `now`.
    pub fn locked(&self, now: i64) -> Option<i64> {
        (self.locked_until > now).then_some(self.locked_until)
    }

    /// The count after one more failure at `now`.
    pub fn after_failure(mut self, limit: &Limit, now: i64) -> FailureCount {
        // A quiet spell as long as the longest lockout forgets the earlier lockouts.
        if now - self.locked_until.max(self.last_failure) >= limit.lockout_max {
            self.lockouts = 0;
        }
        // A new window when the old one has passed, or a lock has ended since it began.
        let lock_ended = self.locked_until > self.window_start && self.locked_until <= now;
        if self.failures == 0 || now - self.window_start >= limit.window || lock_ended {
            self.failures = 0;
            self.window_start = now;
        }
        self.failures += 1;
        self.last_failure = now;
        if self.failures >= limit.max_failures.max(1) {
            let doubled = limit
                .lockout
                .saturating_mul(1i64 << self.lockouts.min(32))
                .min(limit.lockout_max);
            self.locked_until = now + doubled;
            self.lockouts += 1;
            self.failures = 0;
            self.window_start = now;
        }
        self
    }

    /// After this the record says nothing a later failure would use, and may be deleted.
    pub fn expires_at(&self, limit: &Limit) -> i64 {
        let window_end = self.window_start.saturating_add(limit.window);
        self.locked_until
            .max(window_end)
            .max(self.last_failure)
            .saturating_add(limit.lockout_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        max_failures: 3,
        window: 120,
        lockout: 300,
        lockout_max: 1000,
    };

    fn fail(count: FailureCount, times: &[i64]) -> FailureCount {
        times
            .iter()
            .fold(count, |c, &now| c.after_failure(&LIMIT, now))
    }

    #[test]
    fn failures_within_the_window_lock_and_outside_it_do_not() {
        let c = fail(FailureCount::default(), &[10, 20]);
        assert_eq!((c.failures, c.locked(20)), (2, None));
        let c = fail(c, &[30]);
        assert_eq!(c.locked(30), Some(330));
        assert_eq!(c.locked(330), None);
        // Spread over more than the window: never three in one.
        let c = fail(FailureCount::default(), &[0, 100, 200, 300, 400]);
        assert_eq!(c.locked(400), None);
    }

    #[test]
    fn repeat_lockouts_double_up_to_the_most() {
        let first = fail(FailureCount::default(), &[0, 1, 2]);
        assert_eq!(first.locked_until, 302);
        let second = fail(first, &[400, 401, 402]);
        assert_eq!(second.locked_until, 402 + 600);
        let third = fail(second, &[1100, 1101, 1102]);
        assert_eq!(third.locked_until, 1102 + 1000);
        // After a quiet spell of the longest lockout, back to the first length.
        let quiet = fail(third, &[5000, 5001, 5002]);
        assert_eq!(quiet.locked_until, 5002 + 300);
    }

    #[test]
    fn failures_before_a_lock_ended_do_not_count_after_it() {
        let c = fail(FailureCount::default(), &[0, 1, 2]);
        // The lock ends at 302; one failure right after starts a fresh count.
        let c = fail(c, &[303]);
        assert_eq!((c.failures, c.locked(303)), (1, None));
        assert!(c.expires_at(&LIMIT) >= 303 + LIMIT.window);
    }
}
