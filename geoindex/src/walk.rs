//! Walking-time model for fetching an AED: straight-line distance times a street detour factor
//! at walking speed, plus stairs, entering a building and opening a locked cabinet.

use serde::{Deserialize, Serialize};

/// Defaults from field studies: walking 1.4 m/s, street detour ~1.2 over the straight line;
/// stairs at ~0.35× walking speed going up and ~0.5× going down.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalkModel {
    pub speed_mps: f64,
    pub detour_factor: f64,
    /// Finding the way inside a building, per visit (half in, half out).
    pub indoor_extra_s: f64,
    /// Path length of one flight of stairs between floors.
    pub stairs_per_floor_m: f64,
    pub stairs_up_factor: f64,
    pub stairs_down_factor: f64,
    /// Getting a locked cabinet open (calling for the code, or the cabinet's own call button).
    pub locked_cabinet_s: f64,
    /// With a walking network loaded: a point farther than this from any walkable way is off
    /// the network, and its answer keeps the straight-line model (and says so).
    pub max_snap_m: f64,
}

impl Default for WalkModel {
    fn default() -> Self {
        Self {
            speed_mps: 1.4,
            detour_factor: 1.2,
            indoor_extra_s: 30.0,
            stairs_per_floor_m: 7.0,
            stairs_up_factor: 0.35,
            stairs_down_factor: 0.5,
            locked_cabinet_s: 20.0,
            max_snap_m: 300.0,
        }
    }
}

impl WalkModel {
    /// Seconds to walk `distance_m` of straight line along streets.
    pub fn walk_s(&self, distance_m: f64) -> f64 {
        distance_m * self.detour_factor / self.speed_mps
    }

    /// Nothing reaches an AED at `distance_m` (straight line) and back faster than this on
    /// any walking network: every walk is at least the straight line, at walking speed.
    pub fn network_round_trip_lower_bound(&self, distance_m: f64) -> f64 {
        // The tiny margin absorbs rounding in the network's centimetre costs.
        2.0 * distance_m * (1.0 - 1e-9) / self.speed_mps
    }

    /// Nothing reaches an AED at `distance_m` and back faster than this.
    pub fn round_trip_lower_bound(&self, distance_m: f64) -> f64 {
        2.0 * self.walk_s(distance_m)
    }

    /// (caller → AED with the AED in hand, caller → AED → patient), in seconds.
    pub fn fetch_times(
        &self,
        distance_m: f64,
        indoor: Option<bool>,
        floor: Option<f64>,
        locked: bool,
    ) -> (f64, f64) {
        self.fetch_times_walking(self.walk_s(distance_m), indoor, floor, locked)
    }

    /// [`WalkModel::fetch_times`] for a walk already timed (on the walking network): `walk`
    /// seconds each way, plus floors, the building and the cabinet.
    pub fn fetch_times_walking(
        &self,
        walk: f64,
        indoor: Option<bool>,
        floor: Option<f64>,
        locked: bool,
    ) -> (f64, f64) {
        let inside = if indoor == Some(true) {
            self.indoor_extra_s / 2.0
        } else {
            0.0
        };
        let up = self.stairs_per_floor_m / (self.speed_mps * self.stairs_up_factor);
        let down = self.stairs_per_floor_m / (self.speed_mps * self.stairs_down_factor);
        let f = floor.unwrap_or(0.0);
        // Up to a floor above ground and down again; down to a basement and up again.
        let (to, back) = if f >= 0.0 {
            (f * up, f * down)
        } else {
            (-f * down, -f * up)
        };
        let cabinet = if locked { self.locked_cabinet_s } else { 0.0 };
        let one_way = walk + inside + to + cabinet;
        (one_way, one_way + walk + inside + back)
    }

    /// Checks the parameters are usable (positive, finite); names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [
            ("speed_mps", self.speed_mps, false),
            ("detour_factor", self.detour_factor, false),
            ("stairs_up_factor", self.stairs_up_factor, false),
            ("stairs_down_factor", self.stairs_down_factor, false),
            ("indoor_extra_s", self.indoor_extra_s, true),
            ("stairs_per_floor_m", self.stairs_per_floor_m, true),
            ("locked_cabinet_s", self.locked_cabinet_s, true),
            ("max_snap_m", self.max_snap_m, true),
        ];
        for (name, v, zero_ok) in fields {
            if !v.is_finite() || v < 0.0 || (!zero_ok && v == 0.0) {
                return Err(format!("walk.{name} must be a positive number, got {v}"));
            }
        }
        if self.detour_factor < 1.0 {
            return Err("walk.detour_factor must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_never_below_the_bound_and_floors_cost_time() {
        let w = WalkModel::default();
        let (one, rt) = w.fetch_times(140.0, None, None, false);
        assert!((one - 120.0).abs() < 1e-9, "{one}");
        assert!((rt - 240.0).abs() < 1e-9);
        let (one3, rt3) = w.fetch_times(140.0, Some(true), Some(3.0), true);
        assert!(one3 > one + 20.0 && rt3 > rt + 3.0 * 20.0, "{one3} {rt3}");
        let (_, basement) = w.fetch_times(140.0, Some(true), Some(-1.0), false);
        assert!(basement > rt);
        for f in [-2.0, 0.0, 4.0] {
            for d in [0.0, 10.0, 800.0] {
                let (o, r) = w.fetch_times(d, Some(true), Some(f), true);
                assert!(r >= w.round_trip_lower_bound(d) && o <= r);
            }
        }
        assert!(w.validate().is_ok());
        let bad = WalkModel {
            speed_mps: 0.0,
            ..w
        };
        assert!(bad.validate().unwrap_err().contains("speed_mps"));
    }
}
