//! Deterministic synthetic demo city (to be written).
