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

use crate::graph::Graph;
use crate::snap::Snap;

/// No predecessor: the node was reached from the source's own edge.
const SOURCE: u32 = u32::MAX;

/// Reusable per-node state of a search.
#[derive(Debug, Default)]
pub struct Scratch {
    dist: Vec<u32>,
    pred: Vec<u32>,
    /// `stamp[v] == gen`: `dist[v]` and `pred[v]` belong to the current search.
    stamp: Vec<u32>,
    /// `done[v] == gen`: `v` is settled.
    done: Vec<u32>,
    gen: u32,
    /// (distance << 32 | node), smallest first.
    heap: BinaryHeap<Reverse<u64>>,
    settled: usize,
}

impl Scratch {
    fn reset(&mut self, n: usize) {
        if self.dist.len() != n {
            *self = Scratch {
                dist: vec![0; n],
                pred: vec![0; n],
                stamp: vec![0; n],
                done: vec![0; n],
                gen: 0,
                heap: BinaryHeap::new(),
                settled: 0,
            };
        }
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.stamp.fill(0);
            self.done.fill(0);
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

/// A search from one snapped point, grown on demand.
#[derive(Debug)]
pub struct Search<'a> {
    g: &'a Graph,
    s: &'a mut Scratch,
    source: Snap,
}

impl<'a> Search<'a> {
    pub fn new(g: &'a Graph, s: &'a mut Scratch, source: &Snap) -> Self {
        s.reset(g.node_count());
        let mut me = Search {
            g,
            s,
            source: *source,
        };
        me.offer(source.a, source.cost_a_cm, SOURCE);
        me.offer(source.b, source.cost_b_cm, SOURCE);
        me
    }

    pub fn source(&self) -> &Snap {
        &self.source
    }

    /// Nodes settled so far.
    pub fn settled(&self) -> usize {
        self.s.settled
    }

    fn offer(&mut self, v: u32, d: u32, from: u32) {
        let s = &mut *self.s;
        let i = v as usize;
        if s.stamp[i] != s.gen || d < s.dist[i] {
            s.stamp[i] = s.gen;
            s.dist[i] = d;
            s.pred[i] = from;
            s.heap.push(Reverse((u64::from(d) << 32) | u64::from(v)));
        }
    }

    /// The smallest tentative distance not yet settled (stale heap entries dropped).
    fn top(&mut self) -> Option<u32> {
        let s = &mut *self.s;
        while let Some(&Reverse(k)) = s.heap.peek() {
            let (d, v) = ((k >> 32) as u32, (k & 0xffff_ffff) as usize);
            if s.done[v] == s.gen || d > s.dist[v] {
                s.heap.pop();
                continue;
            }
            return Some(d);
        }
        None
    }

    /// Settles the closest unsettled node.
    fn settle_next(&mut self) -> Option<(u32, u32)> {
        self.top()?;
        let Reverse(k) = self.s.heap.pop()?;
        let (d, v) = ((k >> 32) as u32, (k & 0xffff_ffff) as u32);
        self.s.done[v as usize] = self.s.gen;
        self.s.settled += 1;
        let g = self.g;
        for a in g.arcs_of(v) {
            if self.s.done[a.head as usize] != self.s.gen {
                self.offer(a.head, d.saturating_add(a.cost_cm), v);
            }
        }
        Some((v, d))
    }

    /// The final distance of `v`, if settled.
    pub fn settled_dist(&self, v: u32) -> Option<u32> {
        (self.s.done[v as usize] == self.s.gen).then(|| self.s.dist[v as usize])
    }

    /// Settles every node within `limit_cm` (the one-to-many search with a cutoff).
    pub fn settle_within(&mut self, limit_cm: u32) {
        while self.top().is_some_and(|d| d <= limit_cm) {
            self.settle_next();
        }
    }

    /// The cost to `t` from what is settled so far: exact for targets within the distance
    /// settled ([`Search::settle_within`]), `None` if not connected or not yet reached.
    pub fn cost_if_settled(&self, t: &Snap) -> Option<u32> {
        if t.component != self.source.component {
            return None;
        }
        let mut best = if t.same_edge(&self.source) {
            self.source.along(t)
        } else {
            u32::MAX
        };
        for (v, c) in [(t.a, t.cost_a_cm), (t.b, t.cost_b_cm)] {
            if let Some(d) = self.settled_dist(v) {
                best = best.min(d.saturating_add(c));
            }
        }
        (best != u32::MAX).then_some(best)
    }

    /// Network cost from the source's snapped position to `t`'s, in centimetres, if it is at
    /// most `limit_cm` (`None`: farther, or not connected). Settles only what it must.
    pub fn cost_to(&mut self, t: &Snap, limit_cm: u32) -> Option<u32> {
        if t.component != self.source.component {
            return None;
        }
        let mut best = if t.same_edge(&self.source) {
            self.source.along(t)
        } else {
            u32::MAX
        };
        loop {
            let (da, db) = (self.settled_dist(t.a), self.settled_dist(t.b));
            if let Some(d) = da {
                best = best.min(d.saturating_add(t.cost_a_cm));
            }
            if let Some(d) = db {
                best = best.min(d.saturating_add(t.cost_b_cm));
            }
            let Some(top) = self.top() else { break };
            // An unsettled end point ends up at `top` or farther.
            let could =
                |settled: Option<u32>, c: u32| settled.is_none() && top.saturating_add(c) < best;
            if !could(da, t.cost_a_cm) && !could(db, t.cost_b_cm) {
                break;
            }
            if top > limit_cm {
                break;
            }
            self.settle_next();
        }
        (best <= limit_cm).then_some(best)
    }

    /// The nodes walked to reach `t` at `cost_cm` (from [`Search::cost_to`]; call it first),
    /// in order from the source's edge; empty when the walk stays on the source's edge.
    pub fn path_nodes(&self, t: &Snap, cost_cm: u32) -> Vec<u32> {
        if t.same_edge(&self.source) && self.source.along(t) == cost_cm {
            return Vec::new();
        }
        let end = match (self.settled_dist(t.a), self.settled_dist(t.b)) {
            (Some(d), _) if d.saturating_add(t.cost_a_cm) == cost_cm => t.a,
            (_, Some(d)) if d.saturating_add(t.cost_b_cm) == cost_cm => t.b,
            _ => return Vec::new(),
        };
        let mut nodes = vec![end];
        let mut v = end;
        while self.s.pred[v as usize] != SOURCE && nodes.len() <= self.g.node_count() {
            v = self.s.pred[v as usize];
            nodes.push(v);
        }
        nodes.reverse();
        nodes
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
