//! Property tests: the graph's walks equal a plain textbook Dijkstra over the raw edge list, on
//! random graphs made of clusters joined by single bridges, with isolated parts, parallel
//! edges, self-loops and zero-length edges; components equal a union-find's; the artifact
//! round-trips and a damaged one is refused, never a panic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use aednet_core::geo_util::LatLon;
use aednet_routing::{Edge, Graph, Search, Snap, SnapOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Instance {
    coords: Vec<(i32, i32)>,
    edges: Vec<Edge>,
    points: Vec<LatLon>,
}

/// Clusters of nodes (each a random connected-ish graph, or a path or ring with a few chords),
/// some joined by one bridge edge, some left apart; plus junk edges (self-loops, duplicates with
/// other costs).
fn instance() -> impl Strategy<Value = Instance> {
    (1usize..5, any::<u64>()).prop_map(|(clusters, seed)| {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut coords = Vec::new();
        let mut edges = Vec::new();
        let base = (471_000_000i32, 95_000_000i32);
        let mut firsts = Vec::new();
        for c in 0..clusters {
            let n = rng.gen_range(1..25usize);
            let first = coords.len() as u32;
            firsts.push(first);
            let (oy, ox) = (base.0 + c as i32 * 30_000, base.1);
            for _ in 0..n {
                coords.push((oy + rng.gen_range(0..20_000), ox + rng.gen_range(0..20_000)));
            }
            // Chains and rings of degree-2 nodes (the search contracts them): a path through
            // the cluster, sometimes closed, with few random edges on top.
            if rng.gen_bool(0.5) {
                let ring = rng.gen_bool(0.4);
                let len = if ring { n } else { n - 1 };
                for i in 0..len as u32 {
                    edges.push(Edge {
                        a: first + i,
                        b: first + (i + 1) % n as u32,
                        cost_cm: rng.gen_range(0..30_000),
                    });
                }
            }
            let m = if rng.gen_bool(0.5) {
                rng.gen_range(0..3)
            } else {
                rng.gen_range(0..n * 2 + 1)
            };
            for _ in 0..m {
                let a = first + rng.gen_range(0..n as u32);
                let b = first + rng.gen_range(0..n as u32);
                let cost_cm = if rng.gen_bool(0.05) {
                    0
                } else {
                    rng.gen_range(1..50_000)
                };
                edges.push(Edge { a, b, cost_cm });
            }
        }
        // Bridges between some consecutive clusters.
        for w in firsts.windows(2) {
            if rng.gen_bool(0.6) {
                edges.push(Edge {
                    a: w[0],
                    b: w[1],
                    cost_cm: rng.gen_range(1..100_000),
                });
            }
        }
        let points = (0..8)
            .map(|_| LatLon {
                lat: 47.1 + rng.gen_range(-0.001..0.015),
                lon: 9.5 + rng.gen_range(-0.001..0.003),
            })
            .collect();
        Instance {
            coords,
            edges,
            points,
        }
    })
}

/// Textbook Dijkstra over the raw edges (parallel edges and self-loops as given).
fn reference(n: usize, edges: &[Edge], source: &Snap) -> Vec<u64> {
    let mut adj: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
    for e in edges {
        adj[e.a as usize].push((e.b as usize, u64::from(e.cost_cm)));
        adj[e.b as usize].push((e.a as usize, u64::from(e.cost_cm)));
    }
    let mut dist = vec![u64::MAX; n];
    let mut heap = BinaryHeap::new();
    for (v, c) in [(source.a, source.cost_a_cm), (source.b, source.cost_b_cm)] {
        let c = u64::from(c);
        if c < dist[v as usize] {
            dist[v as usize] = c;
            heap.push(Reverse((c, v as usize)));
        }
    }
    while let Some(Reverse((d, v))) = heap.pop() {
        if d > dist[v] {
            continue;
        }
        for &(h, c) in &adj[v] {
            if d + c < dist[h] {
                dist[h] = d + c;
                heap.push(Reverse((d + c, h)));
            }
        }
    }
    dist
}

fn reference_cost(dist: &[u64], s: &Snap, t: &Snap) -> Option<u64> {
    let mut best = u64::MAX;
    if s.same_edge(t) {
        best = u64::from(s.along(t));
    }
    for (v, c) in [(t.a, t.cost_a_cm), (t.b, t.cost_b_cm)] {
        if dist[v as usize] != u64::MAX {
            best = best.min(dist[v as usize] + u64::from(c));
        }
    }
    (best != u64::MAX).then_some(best)
}

fn snaps(g: &Graph, pts: &[LatLon]) -> Vec<Snap> {
    let opts = SnapOptions {
        max_m: 5_000.0,
        min_component_nodes: 0,
    };
    pts.iter().filter_map(|p| g.snap(*p, &opts)).collect()
}

/// The cost of a walked path: its nodes' edges plus the partial edges at both ends.
fn path_cost(g: &Graph, nodes: &[u32], s: &Snap, t: &Snap) -> Option<u64> {
    if nodes.is_empty() {
        return s.same_edge(t).then(|| u64::from(s.along(t)));
    }
    let first = nodes[0];
    let start = if first == s.a {
        s.cost_a_cm
    } else if first == s.b {
        s.cost_b_cm
    } else {
        return None;
    };
    let last = *nodes.last().unwrap();
    let end = if last == t.a {
        t.cost_a_cm
    } else if last == t.b {
        t.cost_b_cm
    } else {
        return None;
    };
    let mut c = u64::from(start) + u64::from(end);
    for w in nodes.windows(2) {
        c += u64::from(g.edge_cost(w[0], w[1])?);
    }
    Some(c)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn walks_equal_plain_dijkstra(inst in instance()) {
        let g = Graph::from_parts(inst.coords.clone(), inst.edges.clone());
        let ss = snaps(&g, &inst.points);
        for s in &ss {
            let dist = reference(g.node_count(), &inst.edges, s);
            // Point to point, with the path.
            for t in &ss {
                let want = reference_cost(&dist, s, t);
                let got = g.route(s, t);
                prop_assert_eq!(got.as_ref().map(|r| u64::from(r.cost_cm)), want);
                if let Some(r) = got {
                    prop_assert_eq!(path_cost(&g, &r.nodes, s, t), Some(u64::from(r.cost_cm)));
                    prop_assert_eq!(r.coords.len(), r.nodes.len() + 2);
                    prop_assert_eq!(r.coords.first(), Some(&s.point));
                    prop_assert_eq!(r.coords.last(), Some(&t.point));
                }
                // Connected exactly when in one component.
                prop_assert_eq!(want.is_some(), s.component == t.component);
            }
            // One to many with a cutoff.
            for limit in [0u32, 5_000, 40_000, 200_000, u32::MAX - 1] {
                let got = g.one_to_many(s, &ss, limit);
                let want: Vec<Option<u32>> = ss
                    .iter()
                    .map(|t| reference_cost(&dist, s, t).filter(|&c| c <= u64::from(limit)).map(|c| c as u32))
                    .collect();
                prop_assert_eq!(got, want);
            }
            // One search asked about targets in turn, with varying limits (the caller's
            // re-ranking), agrees with the reference each time.
            aednet_routing::with_scratch(|scratch| {
                let mut search = Search::new(&g, scratch, s);
                for (i, t) in ss.iter().enumerate() {
                    let limit = [u32::MAX - 1, 10_000, 60_000][i % 3];
                    let want = reference_cost(&dist, s, t).filter(|&c| c <= u64::from(limit));
                    assert_eq!(search.cost_to(t, limit).map(u64::from), want);
                }
            });
        }
    }

    #[test]
    fn components_match_union_find(inst in instance()) {
        let g = Graph::from_parts(inst.coords.clone(), inst.edges.clone());
        let n = inst.coords.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], x: usize) -> usize {
            let mut r = x;
            while p[r] != r { r = p[r]; }
            p[x] = r;
            r
        }
        for e in &inst.edges {
            let (a, b) = (find(&mut parent, e.a as usize), find(&mut parent, e.b as usize));
            parent[a] = b;
        }
        for a in 0..n {
            for b in 0..n {
                let same = find(&mut parent, a) == find(&mut parent, b);
                prop_assert_eq!(same, g.component(a as u32) == g.component(b as u32));
            }
        }
        let sizes = g.component_sizes();
        prop_assert!(sizes.windows(2).all(|w| w[0] >= w[1]));
        prop_assert_eq!(sizes.iter().map(|&s| s as usize).sum::<usize>(), n);
    }

    #[test]
    fn artifact_round_trips_and_damage_is_refused(inst in instance(), cut in 0usize..64, flip in any::<u8>()) {
        let g = Graph::from_parts(inst.coords.clone(), inst.edges.clone());
        let bytes = g.encode();
        let back = Graph::decode(&bytes).expect("round trip");
        prop_assert_eq!(back.node_count(), g.node_count());
        prop_assert_eq!(back.edges().collect::<Vec<_>>(), g.edges().collect::<Vec<_>>());
        prop_assert_eq!(back.component_sizes(), g.component_sizes());
        prop_assert_eq!(back.encode(), bytes.clone());
        // Truncated or altered: an error, not a panic.
        let short = &bytes[..bytes.len().saturating_sub(cut + 1)];
        prop_assert!(Graph::decode(short).is_err());
        let mut bad = bytes.clone();
        let i = (cut * 7919) % bad.len();
        bad[i] ^= flip | 1;
        prop_assert!(Graph::decode(&bad).is_err());
    }
}

#[test]
fn snapping_picks_the_nearest_edge_not_the_nearest_node() {
    // A long edge west–east and a short stub whose end node is nearer to the point than any
    // node of the long edge, but whose segment is farther than the long edge's middle.
    let coords = vec![
        (471_000_000, 95_000_000),
        (471_000_000, 95_200_000), // ~1.5 km east
        (471_004_000, 95_100_000), // 44 m north of the middle
        (471_010_000, 95_100_000),
    ];
    let edges = vec![
        Edge {
            a: 0,
            b: 1,
            cost_cm: 151_000,
        },
        Edge {
            a: 2,
            b: 3,
            cost_cm: 6_700,
        },
    ];
    let g = Graph::from_parts(coords, edges);
    let p = LatLon {
        lat: 47.10015,
        lon: 9.51,
    };
    let opts = SnapOptions {
        max_m: 300.0,
        min_component_nodes: 0,
    };
    let s = g.snap(p, &opts).unwrap();
    assert_eq!((s.a, s.b), (0, 1), "{s:?}");
    assert!(s.off_m < 20.0 && (s.t - 0.5).abs() < 0.01, "{s:?}");
    // Beyond max_m: off the network.
    assert!(g
        .snap(
            LatLon {
                lat: 47.2,
                lon: 9.51
            },
            &opts
        )
        .is_none());
    // Small components are skipped when a larger one is within reach.
    let opts = SnapOptions {
        max_m: 300.0,
        min_component_nodes: 3,
    };
    assert!(g
        .snap(
            LatLon {
                lat: 47.1004,
                lon: 9.51
            },
            &opts
        )
        .is_some());
}
