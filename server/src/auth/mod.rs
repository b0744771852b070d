//! Authentication: password hashing, device cookies, random tokens, single-use tickets, rate limits.
pub mod device;
pub mod password;
pub mod ratelimit;
pub mod shared_limit;
pub mod tickets;
pub mod tokens;
