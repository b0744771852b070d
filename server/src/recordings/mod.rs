//! Terminal recordings at rest: the asciicast v3 format, the files, exports,
//! crash recovery, retention, markers and search, and who may read them. (The recorder that
//! writes them beside a live session is `term::recorder`.)
pub mod access;
pub mod cast;
pub mod export;
pub mod files;
pub mod index;
pub mod recovery;
pub mod retention;
pub mod timeline;
pub mod utf8;
