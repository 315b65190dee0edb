//! The expectation language of `watch-sync --expect` (being written).
