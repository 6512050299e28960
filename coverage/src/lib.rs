//! Four-minute ("黄金四分钟") coverage on an H3 grid: time-to-AED per cell for AEDs that are
//! ready and open at a given time, population weighting, the weekly profile against "every
//! AED 24/7", and greedy placement of new units. A library: no I/O (the live map that follows
//! store events and the HTTP surface are `aednet_api::coverage`).
//!
//! - [`grid`]: the cells over the districts, with population from a grid or spread from the
//!   district's total.
//! - [`map`]: [`CoverageMap`], full and incremental computation, weekly profile.
//! - [`placement`]: greedy maximal covering (lazy), relocation, 24/7 conversion suggestions.
//!
//! Walking times come from the geoindex's [`aednet_geoindex::WalkModel`] and opening hours
//! from its shared [`aednet_geoindex::Schedule`]s, so a cell's time is the caller's query's
//! round trip for the same AED.

pub mod grid;
pub mod inverse;
pub mod map;
pub mod network;
pub mod placement;

pub use grid::{Cell, DistrictArea, Grid, GridError, PopulationPoint, PopulationSource};
pub use inverse::{plan_for_share, RescuerModel, RescuersNeeded, TargetPlan};
pub use map::{CellView, CoverageMap, HourShare, Mode, Params, Summary};
pub use network::CellNetwork;
pub use placement::{
    exhaustive_max_cover, greedy_max_cover, plan, Candidate, Conversion, Coverage, Plan,
    PlanRequest, Relocation, Site,
};

/// Parses an H3 resolution given as a number (9 or 10 for coverage).
pub fn resolution(n: u8) -> Option<h3o::Resolution> {
    h3o::Resolution::try_from(n).ok()
}
