//! The search graph: chains of degree-2 nodes contracted into single arcs.
//!
//! Most nodes of an OSM walking network are the shape points of a way: two neighbours, no
//! choice. A search only has to decide at *junctions* (degree ≠ 2, plus one node per ring made
//! only of degree-2 nodes); between two junctions the walk follows a *chain* whose cost is the
//! sum of its edges. The searches ([`crate::Search`]) settle junctions only, over arcs that each
//! stand for one chain, and place points (snaps) by their position along their chain; paths are
//! expanded back to the chain's nodes for drawing. Dead ends (junctions of degree 1) are never
//! entered. On Liechtenstein 9 298 of 79 894 nodes are junctions, 2 273 of them dead ends
//! (see the crate docs for the measurements).

use crate::graph::{csr, Adjacency, Edge};

/// Not a chain's interior node.
const JUNCTION: u32 = u32::MAX;
/// A junction of degree 1 (a footway's end): nothing lies beyond it.
const DEAD_END: u32 = u32::MAX - 1;

/// One chain as an arc of the search graph, seen from one of its end junctions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChainArc {
    /// The junction at the other end.
    pub head: u32,
    /// The chain's whole cost, centimetres.
    pub cost_cm: u32,
    pub chain: u32,
    /// The head is a dead end ([`Chains::is_dead_end`]), kept here so that a search need not
    /// read the head's entry of the per-node array (one cache miss per arc on a big city).
    pub head_dead_end: bool,
}

/// Where a point on the network lies along its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OnChain {
    pub chain: u32,
    /// Cost from the chain's first node to the point, centimetres.
    pub pos_cm: u32,
    /// Flat index (in [`Chains::node_at`]) of the lower end of the edge the point lies on.
    pub lo: u32,
}

struct Builder<'g> {
    g: &'g Adjacency,
    junction: Vec<bool>,
    /// Interior nodes already in a chain.
    walked: Vec<bool>,
    inner: Vec<u32>,
    first: Vec<u32>,
    nodes: Vec<u32>,
    cum: Vec<u32>,
}

impl Builder<'_> {
    /// Walks every chain leaving junction `j` that no earlier walk took.
    fn walk_from(&mut self, j: u32) {
        let g = self.g;
        for arc in g.arcs_of(j) {
            let h = arc.head as usize;
            // A chain is walked once, from the end that finds it first; a direct
            // junction-to-junction edge from its lower end.
            if (!self.junction[h] && self.walked[h]) || (self.junction[h] && arc.head < j) {
                continue;
            }
            self.nodes.push(j);
            self.cum.push(0);
            let (mut prev, mut cur, mut acc) = (j, arc.head, arc.cost_cm);
            while !self.junction[cur as usize] {
                self.walked[cur as usize] = true;
                self.inner[cur as usize] = self.nodes.len() as u32;
                self.nodes.push(cur);
                self.cum.push(acc);
                let next = g
                    .arcs_of(cur)
                    .iter()
                    .find(|a| a.head != prev)
                    .copied()
                    .expect("an interior node has two distinct neighbours");
                acc = acc.saturating_add(next.cost_cm);
                (prev, cur) = (cur, next.head);
            }
            self.nodes.push(cur);
            self.cum.push(acc);
            self.first.push(self.nodes.len() as u32);
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Chains {
    /// Per node: its flat index when it is a chain's interior node, [`DEAD_END`] for a junction
    /// of degree 1, [`JUNCTION`] for the other junctions.
    inner: Vec<u32>,
    /// Chain `c` is `nodes[first[c]..first[c + 1]]`, junction to junction, both ends included.
    first: Vec<u32>,
    nodes: Vec<u32>,
    /// Cost from the chain's first node, per flat index.
    cum: Vec<u32>,
    /// Per junction (indexed by node id): the chains leaving it, as a CSR. Interior nodes and
    /// chains that come back to their own junction have no arcs.
    first_out: Vec<u32>,
    arcs: Vec<ChainArc>,
}

impl Chains {
    pub(crate) fn build(g: &Adjacency) -> Chains {
        let n = g.node_count();
        let mut b = Builder {
            g,
            junction: (0..n as u32).map(|v| g.arcs_of(v).len() != 2).collect(),
            walked: vec![false; n],
            inner: (0..n as u32)
                .map(|v| {
                    if g.arcs_of(v).len() == 1 {
                        DEAD_END
                    } else {
                        JUNCTION
                    }
                })
                .collect(),
            first: vec![0u32],
            nodes: Vec::new(),
            cum: Vec::new(),
        };
        for j in 0..n as u32 {
            if b.junction[j as usize] {
                b.walk_from(j);
            }
        }
        // Rings of degree-2 nodes only: one node of each becomes a junction.
        for v in 0..n as u32 {
            if !b.junction[v as usize] && !b.walked[v as usize] {
                b.junction[v as usize] = true;
                b.walk_from(v);
            }
        }
        let Builder {
            inner,
            first,
            nodes,
            cum,
            ..
        } = b;

        let mut chains = Chains {
            inner,
            first,
            nodes,
            cum,
            first_out: Vec::new(),
            arcs: Vec::new(),
        };
        chains.index_arcs(n);
        chains
    }

    fn index_arcs(&mut self, n: usize) {
        let (first_out, arcs) = csr(n, || {
            (0..self.chain_count()).flat_map(|c| {
                let (s, e) = self.ends(c);
                let cost_cm = self.cost(c);
                // A chain back to its own junction is no way anywhere.
                let both = (s != e).then_some([(s, e), (e, s)]);
                let inner = &self.inner;
                both.into_iter().flatten().map(move |(from, head)| {
                    (
                        from,
                        ChainArc {
                            head,
                            cost_cm,
                            chain: c,
                            head_dead_end: inner[head as usize] == DEAD_END,
                        },
                    )
                })
            })
        });
        self.first_out = first_out;
        self.arcs = arcs;
    }

    pub(crate) fn chain_count(&self) -> u32 {
        self.first.len() as u32 - 1
    }

    /// Junctions: the nodes a search settles.
    pub(crate) fn junction_count(&self) -> usize {
        self.inner.iter().filter(|&&i| i >= DEAD_END).count()
    }

    /// Flat index range of chain `c`.
    pub(crate) fn range(&self, c: u32) -> (u32, u32) {
        (self.first[c as usize], self.first[c as usize + 1] - 1)
    }

    pub(crate) fn ends(&self, c: u32) -> (u32, u32) {
        let (s, e) = self.range(c);
        (self.nodes[s as usize], self.nodes[e as usize])
    }

    /// The ends of `on`'s chain, each with the cost from it to the point.
    pub(crate) fn end_costs(&self, on: &OnChain) -> [(u32, u32); 2] {
        let (start, end) = self.ends(on.chain);
        [
            (start, on.pos_cm),
            (end, self.cost(on.chain).saturating_sub(on.pos_cm)),
        ]
    }

    pub(crate) fn cost(&self, c: u32) -> u32 {
        let (_, e) = self.range(c);
        self.cum[e as usize]
    }

    /// A junction of degree 1: searches do not enter it (only a point on its own chain needs
    /// it, and that point is reached through the chain's other end).
    pub(crate) fn is_dead_end(&self, v: u32) -> bool {
        self.inner[v as usize] == DEAD_END
    }

    /// Dead ends among the junctions.
    pub(crate) fn dead_end_count(&self) -> usize {
        self.inner.iter().filter(|&&i| i == DEAD_END).count()
    }

    pub(crate) fn node_at(&self, i: u32) -> u32 {
        self.nodes[i as usize]
    }

    pub(crate) fn arcs_of(&self, v: u32) -> &[ChainArc] {
        let (s, e) = (
            self.first_out[v as usize] as usize,
            self.first_out[v as usize + 1] as usize,
        );
        &self.arcs[s..e]
    }

    fn chain_of_flat(&self, i: u32) -> u32 {
        // `first` is sorted; the chain is the last one starting at or before `i`.
        (self.first.partition_point(|&f| f <= i) - 1) as u32
    }

    /// The flat indices of the edge `a`–`b` (lower first), if it is an edge.
    fn edge_flat(&self, a: u32, b: u32) -> Option<(u32, u32)> {
        let inside = |v: u32, other: u32| -> Option<(u32, u32)> {
            let i = self.inner[v as usize];
            if i >= DEAD_END {
                return None;
            }
            if self.nodes[i as usize - 1] == other {
                Some((i - 1, i))
            } else if self.nodes[i as usize + 1] == other {
                Some((i, i + 1))
            } else {
                None
            }
        };
        if let Some(x) = inside(a, b).or_else(|| inside(b, a)) {
            return Some(x);
        }
        // Both junctions: the two-node chain between them.
        self.arcs_of(a)
            .iter()
            .chain(self.arcs_of(b))
            .map(|x| self.range(x.chain))
            .find(|&(s, e)| {
                e == s + 1 && {
                    let (ns, ne) = (self.nodes[s as usize], self.nodes[e as usize]);
                    (ns == a && ne == b) || (ns == b && ne == a)
                }
            })
    }

    /// The edge `a`–`b`'s cost and where on its chain the point `at(cost)` centimetres from
    /// `a` lies: one lookup for a snap (which keeps the answer, so a search never looks it up
    /// again per query).
    pub(crate) fn place(
        &self,
        a: u32,
        b: u32,
        at: impl FnOnce(u32) -> u32,
    ) -> Option<(OnChain, u32)> {
        let (lo, hi) = self.edge_flat(a, b)?;
        let cost = self.cum[hi as usize] - self.cum[lo as usize];
        let cost_a_cm = at(cost);
        let a_is_lo = self.nodes[lo as usize] == a;
        let pos_cm = if a_is_lo {
            self.cum[lo as usize].saturating_add(cost_a_cm)
        } else {
            self.cum[hi as usize].saturating_sub(cost_a_cm)
        };
        let on = OnChain {
            chain: self.chain_of_flat(lo),
            pos_cm,
            lo,
        };
        Some((on, cost))
    }

    /// The cost of the edge `a`–`b`, if it is one.
    pub(crate) fn edge_cost(&self, a: u32, b: u32) -> Option<u32> {
        let (lo, hi) = self.edge_flat(a, b)?;
        Some(self.cum[hi as usize] - self.cum[lo as usize])
    }

    /// Every edge once (`a < b`), chain by chain.
    pub(crate) fn edges(&self) -> impl Iterator<Item = Edge> + '_ {
        (0..self.chain_count()).flat_map(move |c| {
            let (s, e) = self.range(c);
            (s..e).map(move |i| {
                let (x, y) = (self.nodes[i as usize], self.nodes[i as usize + 1]);
                Edge {
                    a: x.min(y),
                    b: x.max(y),
                    cost_cm: self.cum[i as usize + 1] - self.cum[i as usize],
                }
            })
        })
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.inner.capacity()
            + self.first.capacity()
            + self.nodes.capacity()
            + self.cum.capacity()
            + self.first_out.capacity())
            * 4
            + self.arcs.capacity() * std::mem::size_of::<ChainArc>()
    }
}
