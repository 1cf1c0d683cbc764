-- issue 16: the rate limits count across instances (bot/shared_limits.py, a `limits` Storage).
-- One row per counted request inside its moving window; rows older than the window go at the next hit.
CREATE TABLE rate_limit_hits (
    key text NOT NULL,               -- limits' key: budget name, client address, the limit
    at double precision NOT NULL     -- the server's clock (epoch seconds): one clock for every instance
);
CREATE INDEX rate_limit_hits_key_at ON rate_limit_hits (key, at);

-- Fixed-window counters (limits' incr/get), which the moving-window limiter does not use; kept for the
-- Storage interface's other strategies.
CREATE TABLE rate_limit_counters (
    key text PRIMARY KEY,
    value bigint NOT NULL,
    expires double precision NOT NULL
);
