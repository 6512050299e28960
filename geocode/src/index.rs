//! The search index over [`Place`]s: an inverted index from tokens ([`crate::text`]) to
//! places, an idf weight per token, a symmetric-deletion table for typos (every word with one
//! character deleted, two for long words: a misspelling and the word it misspells share a
//! deletion) and a sorted vocabulary for the word being typed. A query is scored by how much of
//! its weight a place covers, shortened by the place's unmatched words, and nudged by distance
//! from the dispatcher's map view, so a Landstrasse nearby beats one in the next town.

use std::cell::RefCell;
use std::collections::HashMap;

use aednet_core::geo_util::LatLon;

use crate::text::{edit_distance, index_tokens, query_tokens, QueryToken};
use crate::{Kind, Place};

/// A place needs this share of the query's weight to be an answer at all.
const MIN_COVERAGE: f32 = 0.5;
/// Words the typed prefix may stand for (the shortest first).
const MAX_PREFIX_WORDS: usize = 64;
/// Similarity of a misspelt word to what it matched, by edit distance.
const SIM_BY_DISTANCE: [f32; 3] = [1.0, 0.8, 0.6];
const SIM_PREFIX: f32 = 0.9;

/// How many edits a word of `len` characters may carry and still be found.
fn max_edits(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

fn hash(s: &str) -> u64 {
    // FNV-1a: stable, fast, and collisions only cost a verification.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `word` with up to `depth` characters deleted (the word itself included).
fn deletions(word: &str, depth: usize, out: &mut Vec<String>) {
    out.push(word.to_string());
    let mut frontier = vec![word.to_string()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for w in &frontier {
            let cs: Vec<char> = w.chars().collect();
            for i in 0..cs.len() {
                let d: String = cs[..i].iter().chain(&cs[i + 1..]).collect();
                if !out.contains(&d) {
                    out.push(d.clone());
                    next.push(d);
                }
            }
        }
        frontier = next;
    }
}

fn fuzzy_word(w: &str) -> bool {
    !w.chars()
        .any(|c| c.is_ascii_digit() || crate::text::is_cjk(c))
}

/// One answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Index into [`Index::places`].
    pub place: usize,
    /// Text match (share of the query found, 0–1) weighed with distance.
    pub score: f32,
    /// Where to put the marker: the place's point, or a street's point nearest the map view.
    pub pos: LatLon,
    /// From `near`, when given.
    pub distance_m: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Index {
    places: Vec<Place>,
    vocab: HashMap<String, u32>,
    words: Vec<String>,
    /// Word ids in word order, for prefix ranges.
    sorted: Vec<u32>,
    postings: Vec<Vec<u32>>,
    idf: Vec<f32>,
    /// (hash of a deletion, word id), sorted.
    deletes: Vec<(u64, u32)>,
    /// Tokens per place.
    lengths: Vec<u16>,
}

#[derive(Default)]
struct Scratch {
    gen: u32,
    stamp: Vec<u32>,
    best: Vec<f32>,
    acc_stamp: Vec<u32>,
    acc: Vec<f32>,
    count: Vec<u16>,
}

impl Scratch {
    fn ready(&mut self, n: usize) {
        if self.stamp.len() < n || self.gen > u32::MAX - 1024 {
            self.gen = 0;
            self.stamp = vec![0; n];
            self.best = vec![0.0; n];
            self.acc_stamp = vec![0; n];
            self.acc = vec![0.0; n];
            self.count = vec![0; n];
        }
    }
    fn next(&mut self) -> u32 {
        self.gen += 1;
        self.gen
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Cheap distance for ranking (equirectangular; exact enough within a city).
fn approx_m(a: LatLon, b: LatLon) -> f64 {
    let k = std::f64::consts::PI / 180.0;
    let x = (b.lon - a.lon) * k * ((a.lat + b.lat) * 0.5 * k).cos();
    let y = (b.lat - a.lat) * k;
    (x * x + y * y).sqrt() * 6_371_000.0
}

impl Index {
    pub fn build(places: Vec<Place>) -> Index {
        let mut ix = Index {
            lengths: Vec::with_capacity(places.len()),
            ..Default::default()
        };
        for (i, p) in places.iter().enumerate() {
            let mut text = p.label.clone();
            for t in &p.texts {
                text.push_str(" | ");
                text.push_str(t);
            }
            let toks = index_tokens(&text);
            // Unmatched words of the label count against a place, not its other names: a
            // village with names in six languages is not a worse match for its own name.
            let label_len = index_tokens(&p.label).len();
            ix.lengths.push(label_len.min(usize::from(u16::MAX)) as u16);
            for t in toks {
                let id = match ix.vocab.get(&t) {
                    Some(id) => *id,
                    None => {
                        let id = ix.words.len() as u32;
                        ix.vocab.insert(t.clone(), id);
                        ix.words.push(t);
                        ix.postings.push(Vec::new());
                        id
                    }
                };
                ix.postings[id as usize].push(i as u32);
            }
        }
        let n = places.len() as f32;
        ix.idf = ix
            .postings
            .iter()
            .map(|p| (1.0 + n / p.len() as f32).ln())
            .collect();
        ix.sorted = (0..ix.words.len() as u32).collect();
        ix.sorted
            .sort_unstable_by(|a, b| ix.words[*a as usize].cmp(&ix.words[*b as usize]));
        let mut dels = Vec::new();
        for (id, w) in ix.words.iter().enumerate() {
            if !fuzzy_word(w) {
                continue;
            }
            let d = max_edits(w.chars().count());
            if d == 0 {
                continue;
            }
            dels.clear();
            deletions(w, d, &mut dels);
            ix.deletes.extend(dels.iter().map(|s| (hash(s), id as u32)));
        }
        ix.deletes.sort_unstable();
        ix.deletes.dedup();
        ix.places = places;
        ix
    }

    pub fn places(&self) -> &[Place] {
        &self.places
    }

    pub fn len(&self) -> usize {
        self.places.len()
    }

    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// Distinct tokens (for the import summary).
    pub fn vocabulary(&self) -> usize {
        self.words.len()
    }

    /// The index words `q` may stand for, with their similarity.
    fn variants(&self, q: &QueryToken) -> Vec<(u32, f32)> {
        fn add(id: u32, s: f32, out: &mut Vec<(u32, f32)>) {
            if let Some(e) = out.iter_mut().find(|e| e.0 == id) {
                e.1 = e.1.max(s);
            } else {
                out.push((id, s));
            }
        }
        let mut out: Vec<(u32, f32)> = Vec::new();
        if let Some(id) = self.vocab.get(&q.text) {
            add(*id, 1.0, &mut out);
        }
        if q.prefix {
            let start = self
                .sorted
                .partition_point(|id| self.words[*id as usize].as_str() < q.text.as_str());
            let mut found: Vec<u32> = self.sorted[start..]
                .iter()
                .take_while(|id| self.words[**id as usize].starts_with(q.text.as_str()))
                .take(MAX_PREFIX_WORDS * 8)
                .copied()
                .collect();
            // The shortest completions first: "land" is more likely "landstrasse" than
            // "landstrassenbruecke".
            found.sort_by_key(|id| self.words[*id as usize].len());
            for id in found.into_iter().take(MAX_PREFIX_WORDS) {
                add(id, SIM_PREFIX, &mut out);
            }
        }
        let len = q.text.chars().count();
        let edits = max_edits(len);
        if q.fuzzy && edits > 0 {
            let mut dels = Vec::new();
            deletions(&q.text, edits, &mut dels);
            for d in &dels {
                let h = hash(d);
                let start = self.deletes.partition_point(|e| e.0 < h);
                for &(_, id) in self.deletes[start..].iter().take_while(|e| e.0 == h) {
                    let w = &self.words[id as usize];
                    let dist = edit_distance(&q.text, w, edits);
                    if dist <= edits {
                        add(id, SIM_BY_DISTANCE[dist], &mut out);
                    }
                }
            }
        }
        out
    }

    /// The best `limit` places for `query`, nearest first among equals when `near` is given.
    pub fn search(&self, query: &str, near: Option<LatLon>, limit: usize) -> Vec<Hit> {
        let tokens = query_tokens(query);
        if tokens.is_empty() || self.places.is_empty() || limit == 0 {
            return Vec::new();
        }
        let unknown_weight = (1.0 + self.places.len() as f32).ln();
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            s.ready(self.places.len());
            let qgen = s.next();
            let mut candidates: Vec<u32> = Vec::new();
            let mut total = 0.0f32;
            let mut touched: Vec<u32> = Vec::new();
            // (Only where it matters: small indexes are cheap to walk whole.)
            let many = (self.places.len() * 3 / 10).max(10_000);
            for q in &tokens {
                let vars = self.variants(q);
                // A word on most places ("号", "strasse") tells nothing apart and costs a walk
                // over most of the index: with other words in the query, it is left out.
                if tokens.len() > 1
                    && vars.len() == 1
                    && self.postings[vars[0].0 as usize].len() > many
                {
                    continue;
                }
                let weight = match self.vocab.get(&q.text) {
                    Some(id) => self.idf[*id as usize],
                    // A CJK bigram across two words the record keeps apart ("区人" of
                    // 柯城区 + 人民路 typed together) is weak evidence against a place: half
                    // the weight of an unknown word.
                    None if vars.is_empty()
                        && !q.fuzzy
                        && !q.text.is_empty()
                        && q.text.chars().all(crate::text::is_cjk) =>
                    {
                        unknown_weight * 0.5
                    }
                    None if vars.is_empty() => unknown_weight,
                    None => {
                        vars.iter()
                            .map(|(id, _)| self.idf[*id as usize])
                            .sum::<f32>()
                            / vars.len() as f32
                    }
                };
                total += weight;
                let tgen = s.next();
                touched.clear();
                for (id, sim) in vars {
                    for &d in &self.postings[id as usize] {
                        let di = d as usize;
                        if s.stamp[di] != tgen {
                            s.stamp[di] = tgen;
                            s.best[di] = sim;
                            touched.push(d);
                        } else if sim > s.best[di] {
                            s.best[di] = sim;
                        }
                    }
                }
                for &d in &touched {
                    let di = d as usize;
                    if s.acc_stamp[di] != qgen {
                        s.acc_stamp[di] = qgen;
                        s.acc[di] = 0.0;
                        s.count[di] = 0;
                        candidates.push(d);
                    }
                    s.acc[di] += s.best[di] * weight;
                    s.count[di] += 1;
                }
            }
            if total <= 0.0 {
                return Vec::new();
            }
            let mut scored: Vec<(f32, u32)> = Vec::new();
            for &d in &candidates {
                let di = d as usize;
                let coverage = s.acc[di] / total;
                if coverage < MIN_COVERAGE {
                    continue;
                }
                let extra = f32::from(self.lengths[di].saturating_sub(s.count[di]));
                // Among equals, the town itself before a bus stop named after it.
                let prior = match self.places[di].kind {
                    Kind::Place => 1.05,
                    Kind::Street => 1.02,
                    Kind::Address | Kind::Poi => 1.0,
                };
                let text = prior * coverage / (1.0 + 0.03 * extra);
                let score = match near {
                    Some(n) => {
                        let km = (approx_m(n, self.point(di, n)) / 1000.0) as f32;
                        text * (0.8 + 0.2 / (1.0 + km / 3.0))
                    }
                    None => text,
                };
                scored.push((score, d));
            }
            let by_score = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
            if scored.len() > limit {
                scored.select_nth_unstable_by(limit - 1, by_score);
                scored.truncate(limit);
            }
            scored.sort_by(by_score);
            scored
                .into_iter()
                .map(|(score, d)| {
                    let pos = match near {
                        Some(n) => self.point(d as usize, n),
                        None => self.places[d as usize].pos(),
                    };
                    Hit {
                        place: d as usize,
                        score,
                        pos,
                        distance_m: near.map(|n| n.distance_m(&pos)),
                    }
                })
                .collect()
        })
    }

    /// The place's point nearest `near`: a street's nearest vertex, else its point.
    fn point(&self, i: usize, near: LatLon) -> LatLon {
        let p = &self.places[i];
        if p.kind != Kind::Street || p.line.is_empty() {
            return p.pos();
        }
        p.line
            .iter()
            .map(|c| LatLon {
                lat: c[0],
                lon: c[1],
            })
            .min_by(|a, b| approx_m(near, *a).total_cmp(&approx_m(near, *b)))
            .unwrap_or_else(|| p.pos())
    }
}
