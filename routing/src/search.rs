//! Shortest walks: a Dijkstra search from one snapped point that settles nodes only as far as
//! its questions need ([`Search::cost_to`], [`Search::settle_within`]), so one search answers
//! a caller's many candidate AEDs (one-to-many with a cutoff) and then draws the chosen walks
//! from its predecessor tree (point-to-point with the path).
//!
//! The per-node arrays live in a [`Scratch`] reused across searches (a generation stamp, not a
//! clear, marks what is current), so a query costs what it settles, not the graph's size.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use aednet_core::geo_util::LatLon;

use crate::chains::{Chains, OnChain};
use crate::graph::Graph;
use crate::snap::Snap;

/// No predecessor: the node was reached from the source's own edge.
const SOURCE: u32 = u32::MAX;

/// One node's state in a search: kept together so that a node touched costs one cache line,
/// not one per array (the arrays span the whole graph; on a city of millions of nodes every
/// access is a miss).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    dist: u32,
    /// The junction the node was reached from ([`SOURCE`]: from the source's chain) …
    pred: u32,
    /// … along this chain.
    pred_chain: u32,
    /// `stamp == gen`: `dist` and `pred` belong to the current search.
    stamp: u32,
    /// `done == gen`: the node is settled.
    done: u32,
}

/// Reusable per-node state of a search.
#[derive(Debug, Default)]
pub struct Scratch {
    slots: Vec<Slot>,
    gen: u32,
    /// (distance << 32 | node), smallest first.
    heap: BinaryHeap<Reverse<u64>>,
    settled: usize,
}

impl Scratch {
    fn reset(&mut self, n: usize) {
        if self.slots.len() != n {
            *self = Scratch {
                slots: vec![Slot::default(); n],
                gen: 0,
                heap: BinaryHeap::new(),
                settled: 0,
            };
        }
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            for x in &mut self.slots {
                x.stamp = 0;
                x.done = 0;
            }
            self.gen = 1;
        }
        self.heap.clear();
        self.settled = 0;
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch (a fresh one if it is in use further up the stack).
pub fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// A search from one snapped point, grown on demand. It settles junctions only
/// ([`crate::chains`]); a point's cost comes from the two ends of its chain.
#[derive(Debug)]
pub struct Search<'a> {
    g: &'a Graph,
    s: &'a mut Scratch,
    source: Snap,
    /// The source's place on its chain (`None` only for a snap not of this graph).
    at: Option<OnChain>,
}

impl<'a> Search<'a> {
    pub fn new(g: &'a Graph, s: &'a mut Scratch, source: &Snap) -> Self {
        s.reset(g.node_count());
        let at = source.on;
        let mut me = Search {
            g,
            s,
            source: *source,
            at,
        };
        if let Some(at) = at {
            for (v, c) in g.chains().end_costs(&at) {
                me.offer(v, c, SOURCE, at.chain);
            }
        }
        me
    }

    pub fn source(&self) -> &Snap {
        &self.source
    }

    /// Junctions settled so far.
    pub fn settled(&self) -> usize {
        self.s.settled
    }

    fn offer(&mut self, v: u32, d: u32, from: u32, chain: u32) {
        let s = &mut *self.s;
        let i = v as usize;
        let gen = s.gen;
        let x = &mut s.slots[i];
        if x.stamp != gen || d < x.dist {
            *x = Slot {
                dist: d,
                pred: from,
                pred_chain: chain,
                stamp: gen,
                done: x.done,
            };
            s.heap.push(Reverse((u64::from(d) << 32) | u64::from(v)));
        }
    }

    /// The smallest tentative distance not yet settled (stale heap entries dropped).
    fn top(&mut self) -> Option<u32> {
        let s = &mut *self.s;
        while let Some(&Reverse(k)) = s.heap.peek() {
            let (d, v) = ((k >> 32) as u32, (k & 0xffff_ffff) as usize);
            if s.slots[v].done == s.gen || d > s.slots[v].dist {
                s.heap.pop();
                continue;
            }
            return Some(d);
        }
        None
    }

    /// Settles the closest unsettled junction.
    fn settle_next(&mut self) -> Option<(u32, u32)> {
        self.top()?;
        let Reverse(k) = self.s.heap.pop()?;
        let (d, v) = ((k >> 32) as u32, (k & 0xffff_ffff) as u32);
        self.s.slots[v as usize].done = self.s.gen;
        self.s.settled += 1;
        let chains = self.g.chains();
        for a in chains.arcs_of(v) {
            // A dead end leads nowhere: only a point on its own chain needs it, and that
            // point is reached through the chain's other end (or along it from the source).
            if a.head_dead_end {
                continue;
            }
            if self.s.slots[a.head as usize].done != self.s.gen {
                self.offer(a.head, d.saturating_add(a.cost_cm), v, a.chain);
            }
        }
        Some((v, d))
    }

    /// The final distance of junction `v`, if settled.
    fn settled_dist(&self, v: u32) -> Option<u32> {
        let x = &self.s.slots[v as usize];
        (x.done == self.s.gen).then_some(x.dist)
    }

    /// Settles every junction within `limit_cm` (the one-to-many search with a cutoff).
    pub fn settle_within(&mut self, limit_cm: u32) {
        while self.top().is_some_and(|d| d <= limit_cm) {
            self.settle_next();
        }
    }

    /// `t`'s chain, the cost along it from the source when both share it, and the cost from
    /// each end of the chain to `t`.
    fn target(&self, t: &Snap) -> Option<Target> {
        if t.component != self.source.component {
            return None;
        }
        let at = self.at?;
        let chains = self.g.chains();
        let on = t.on?;
        let direct = if on.chain == at.chain {
            on.pos_cm.abs_diff(at.pos_cm)
        } else {
            u32::MAX
        };
        // A dead end is never settled (see `settle_next`) and never on a shorter way in.
        let ends = chains
            .end_costs(&on)
            .map(|(v, c)| (v, if chains.is_dead_end(v) { u32::MAX } else { c }));
        Some(Target { on, direct, ends })
    }

    fn best_settled(&self, t: &Target) -> u32 {
        t.ends
            .iter()
            .filter(|&&(_, c)| c != u32::MAX)
            .filter_map(|&(v, c)| Some(self.settled_dist(v)?.saturating_add(c)))
            .fold(t.direct, u32::min)
    }

    /// The cost to `t` from what is settled so far: exact for targets within the distance
    /// settled ([`Search::settle_within`]), `None` if not connected or not yet reached.
    pub fn cost_if_settled(&self, t: &Snap) -> Option<u32> {
        let best = self.best_settled(&self.target(t)?);
        (best != u32::MAX).then_some(best)
    }

    /// Network cost from the source's snapped position to `t`'s, in centimetres, if it is at
    /// most `limit_cm` (`None`: farther, or not connected). Settles only what it must.
    pub fn cost_to(&mut self, t: &Snap, limit_cm: u32) -> Option<u32> {
        let target = self.target(t)?;
        let mut best;
        loop {
            best = self.best_settled(&target);
            let Some(top) = self.top() else { break };
            // An unsettled end ends up at `top` or farther.
            let could = target.ends.iter().any(|&(v, c)| {
                c != u32::MAX && self.settled_dist(v).is_none() && top.saturating_add(c) < best
            });
            if !could || top > limit_cm {
                break;
            }
            self.settle_next();
        }
        (best <= limit_cm).then_some(best)
    }

    /// The nodes walked to reach `t` at `cost_cm` (from [`Search::cost_to`]; call it first),
    /// in order from the source's edge; empty when the walk stays on the source's edge.
    pub fn path_nodes(&self, t: &Snap, cost_cm: u32) -> Vec<u32> {
        let (Some(target), Some(at)) = (self.target(t), self.at) else {
            return Vec::new();
        };
        let chains = self.g.chains();
        if target.direct == cost_cm {
            // Along the shared chain, between the two points' edges.
            return along(chains, at.lo, target.on.lo);
        }
        let Some(&(end, _)) = target
            .ends
            .iter()
            .find(|&&(v, c)| self.settled_dist(v).map(|d| d.saturating_add(c)) == Some(cost_cm))
        else {
            return Vec::new();
        };
        // Backwards from `t`: its chain from its edge to the junction reached …
        let (first, last) = chains.range(target.on.chain);
        let mut rev: Vec<u32> = if chains.node_at(first) == end
            && self
                .settled_dist(end)
                .map(|d| d.saturating_add(target.on.pos_cm))
                == Some(cost_cm)
        {
            (first..=target.on.lo)
                .rev()
                .map(|i| chains.node_at(i))
                .collect()
        } else {
            (target.on.lo + 1..=last)
                .map(|i| chains.node_at(i))
                .collect()
        };
        // … then junction to junction along the chains the search came by …
        let mut v = end;
        let mut guard = 0;
        while self.s.slots[v as usize].pred != SOURCE && guard <= self.g.node_count() {
            guard += 1;
            let x = &self.s.slots[v as usize];
            let (u, c) = (x.pred, x.pred_chain);
            let (s, e) = chains.range(c);
            // Interior nodes from `v`'s end towards `u`'s, then `u`.
            if chains.node_at(e) == v {
                rev.extend((s..e).rev().map(|i| chains.node_at(i)));
            } else {
                rev.extend((s + 1..=e).map(|i| chains.node_at(i)));
            }
            v = u;
        }
        // … and the source's chain from the first junction back to the source's edge.
        let (s, e) = chains.range(at.chain);
        let from_start = chains.node_at(s) == v && self.settled_dist(v) == Some(at.pos_cm);
        if from_start {
            rev.extend((s + 1..=at.lo).map(|i| chains.node_at(i)));
        } else {
            rev.extend((at.lo + 1..e).rev().map(|i| chains.node_at(i)));
        }
        rev.reverse();
        rev
    }

    /// The walk to `t` as coordinates: the source's snapped position, the nodes walked, `t`'s
    /// snapped position.
    pub fn path_to(&self, t: &Snap, cost_cm: u32) -> Vec<LatLon> {
        let mut out = vec![self.source.point];
        out.extend(
            self.path_nodes(t, cost_cm)
                .into_iter()
                .map(|v| self.g.pos(v)),
        );
        out.push(t.point);
        out
    }
}

/// A target's place: its chain position, the cost along the source's chain when shared
/// (`u32::MAX` otherwise), and its chain's ends with the cost from each.
struct Target {
    on: OnChain,
    direct: u32,
    ends: [(u32, u32); 2],
}

/// The nodes passed going along one chain from a point on the edge starting at flat index
/// `from_lo` to a point on the edge starting at `to_lo`.
fn along(chains: &Chains, from_lo: u32, to_lo: u32) -> Vec<u32> {
    if to_lo >= from_lo {
        (from_lo + 1..=to_lo).map(|i| chains.node_at(i)).collect()
    } else {
        (to_lo + 1..=from_lo)
            .rev()
            .map(|i| chains.node_at(i))
            .collect()
    }
}

/// A walk between two snapped points.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Network cost between the snapped positions, centimetres (penalties included).
    pub cost_cm: u32,
    /// From the first snapped position to the second, through the nodes walked.
    pub coords: Vec<LatLon>,
    /// The nodes walked (empty when both points are on one edge).
    pub nodes: Vec<u32>,
}

impl Graph {
    /// Costs from `source` to each target within `limit_cm` (`None`: farther or unreachable):
    /// one search settling every node within the cutoff.
    pub fn one_to_many(&self, source: &Snap, targets: &[Snap], limit_cm: u32) -> Vec<Option<u32>> {
        with_scratch(|s| {
            let mut search = Search::new(self, s, source);
            search.settle_within(limit_cm);
            targets
                .iter()
                .map(|t| search.cost_if_settled(t).filter(|&c| c <= limit_cm))
                .collect()
        })
    }

    /// The shortest walk between two snapped points, `None` if they are not connected.
    pub fn route(&self, from: &Snap, to: &Snap) -> Option<Route> {
        with_scratch(|s| {
            let mut search = Search::new(self, s, from);
            let cost_cm = search.cost_to(to, u32::MAX - 1)?;
            Some(Route {
                cost_cm,
                coords: search.path_to(to, cost_cm),
                nodes: search.path_nodes(to, cost_cm),
            })
        })
    }
}
