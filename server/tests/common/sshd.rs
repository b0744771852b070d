//! Placeholder: the sshd harness is being written.
