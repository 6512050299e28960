//! Four-minute ("黄金四分钟") coverage on an H3 grid: time-to-AED per cell for AEDs that are
//! ready and open at a given time, population weighting, district totals against targets,
//! coverage gaps and greedy placement of new units. A library: no I/O.
//!
//! Filled by the coverage issue; the foundation only reserves the crate.
