//! Authentication: password hashing, random tokens, single-use tickets, rate limits.
pub mod password;
pub mod ratelimit;
pub mod tickets;
pub mod tokens;
