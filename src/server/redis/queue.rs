//! The write-sync queue in Redis (to come).
