//! The H3 grid coverage is computed on: the cells whose centre lies in a district (or, without
//! districts, the cells holding population points), each with its centre, its district and the
//! people living in it.

use std::collections::{HashMap, HashSet, VecDeque};

use aednet_core::LatLon;
use aednet_geoindex::sphere::to_xyz;
use geo::{Area, BoundingRect, Contains, MultiPolygon, Point, Rect};
use h3o::{CellIndex, LatLng, Resolution};
use rstar::primitives::GeomWithData;
use rstar::RTree;
use serde::Serialize;

/// A district as the grid needs it: its area and, if known, its population.
#[derive(Debug, Clone)]
pub struct DistrictArea {
    pub id: i64,
    pub population: Option<f64>,
    pub area: MultiPolygon<f64>,
}

/// One row of a population grid (e.g. a 250 m census grid): people living around a point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PopulationPoint {
    pub pos: LatLon,
    pub population: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub cell: CellIndex,
    pub center: LatLon,
    pub population: f64,
    pub district: Option<i64>,
}

/// Where a district's cell populations came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PopulationSource {
    /// Population grid points falling in the district's cells.
    Grid,
    /// The district's population spread evenly over its cells (no grid, or no grid point in it).
    District,
    /// Neither: every cell counts zero people (shares are then per cell, see [`crate::Summary`]).
    None,
}

type CellPoint = GeomWithData<[f64; 3], u32>;

#[derive(Debug)]
pub struct Grid {
    pub res: Resolution,
    pub cells: Vec<Cell>,
    index: HashMap<CellIndex, u32>,
    tree: RTree<CellPoint>,
    /// Per district: its cells' population source.
    pub sources: HashMap<i64, PopulationSource>,
    /// Population grid people whose point fell outside every cell of the grid.
    pub unassigned_population: f64,
}

/// Grids beyond this many cells are refused: a country at resolution 10 would take gigabytes.
pub const MAX_CELLS: usize = 2_000_000;

#[derive(Debug, Clone, PartialEq)]
pub enum GridError {
    TooLarge { cells: usize },
}

impl std::fmt::Display for GridError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GridError::TooLarge { cells } => write!(
                f,
                "the grid would have more than {cells} cells; use a coarser resolution or one district"
            ),
        }
    }
}

impl std::error::Error for GridError {}

pub fn cell_center(c: CellIndex) -> LatLon {
    let ll = LatLng::from(c);
    LatLon {
        lat: ll.lat(),
        lon: ll.lng(),
    }
}

pub fn cell_at(pos: LatLon, res: Resolution) -> Option<CellIndex> {
    LatLng::new(pos.lat, pos.lon).ok().map(|ll| ll.to_cell(res))
}

/// Cells whose centre lies inside `area`: a flood fill over the cells of the bounding box
/// (grown by one cell so thin boxes stay connected), kept where the centre is inside. h3o's own
/// polyfill needs a newer `geo` than the workspace's.
pub fn polyfill(area: &MultiPolygon<f64>, res: Resolution) -> Result<Vec<CellIndex>, GridError> {
    let Some(rect) = area.bounding_rect() else {
        return Ok(Vec::new());
    };
    let edge_deg = res.edge_length_km() / 111.0 * 2.0;
    let lat_mid = rect.center().y.to_radians().cos().max(0.05);
    let grown = Rect::new(
        (rect.min().x - edge_deg / lat_mid, rect.min().y - edge_deg),
        (rect.max().x + edge_deg / lat_mid, rect.max().y + edge_deg),
    );
    let c = rect.center();
    let Some(seed) = cell_at(LatLon { lat: c.y, lon: c.x }, res) else {
        return Ok(Vec::new());
    };
    let mut seen: HashSet<CellIndex> = HashSet::from([seed]);
    let mut queue = VecDeque::from([seed]);
    let mut out = Vec::new();
    while let Some(cell) = queue.pop_front() {
        let ll = LatLng::from(cell);
        let p = Point::new(ll.lng(), ll.lat());
        if area.contains(&p) {
            out.push(cell);
        }
        if seen.len() > MAX_CELLS * 2 {
            return Err(GridError::TooLarge { cells: MAX_CELLS });
        }
        for n in cell.grid_disk::<Vec<_>>(1) {
            if seen.contains(&n) {
                continue;
            }
            let nl = LatLng::from(n);
            if grown.contains(&Point::new(nl.lng(), nl.lat())) {
                seen.insert(n);
                queue.push_back(n);
            }
        }
    }
    Ok(out)
}

impl Grid {
    /// The grid over `districts` at `res`. Population comes from `points` where a district has
    /// any; otherwise the district's population is spread evenly over its cells. Where
    /// districts overlap (nested levels), a cell belongs to the smallest.
    pub fn for_districts(
        districts: &[DistrictArea],
        res: Resolution,
        points: &[PopulationPoint],
    ) -> Result<Grid, GridError> {
        let mut order: Vec<&DistrictArea> = districts.iter().collect();
        order.sort_by(|a, b| a.area.unsigned_area().total_cmp(&b.area.unsigned_area()));
        let mut cells: Vec<Cell> = Vec::new();
        let mut index: HashMap<CellIndex, u32> = HashMap::new();
        for d in &order {
            for c in polyfill(&d.area, res)? {
                if index.contains_key(&c) {
                    continue;
                }
                index.insert(c, cells.len() as u32);
                cells.push(Cell {
                    cell: c,
                    center: cell_center(c),
                    population: 0.0,
                    district: Some(d.id),
                });
                if cells.len() > MAX_CELLS {
                    return Err(GridError::TooLarge { cells: MAX_CELLS });
                }
            }
        }
        let mut grid = Grid::from_cells(res, cells, index);
        let assigned = grid.add_points(points);
        for d in districts {
            let source = if assigned.contains(&Some(d.id)) {
                PopulationSource::Grid
            } else if let Some(pop) = d.population.filter(|p| *p > 0.0) {
                let mine: Vec<usize> = (0..grid.cells.len())
                    .filter(|&i| grid.cells[i].district == Some(d.id))
                    .collect();
                let each = pop / mine.len().max(1) as f64;
                for i in &mine {
                    grid.cells[*i].population = each;
                }
                if mine.is_empty() {
                    PopulationSource::None
                } else {
                    PopulationSource::District
                }
            } else {
                PopulationSource::None
            };
            grid.sources.insert(d.id, source);
        }
        Ok(grid)
    }

    /// A grid of just the cells holding population points (no districts known).
    pub fn from_points(points: &[PopulationPoint], res: Resolution) -> Grid {
        let mut cells = Vec::new();
        let mut index = HashMap::new();
        for p in points {
            if let Some(c) = cell_at(p.pos, res) {
                index.entry(c).or_insert_with(|| {
                    cells.push(Cell {
                        cell: c,
                        center: cell_center(c),
                        population: 0.0,
                        district: None,
                    });
                    (cells.len() - 1) as u32
                });
            }
        }
        let mut grid = Grid::from_cells(res, cells, index);
        grid.add_points(points);
        grid
    }

    fn from_cells(res: Resolution, cells: Vec<Cell>, index: HashMap<CellIndex, u32>) -> Grid {
        let tree = RTree::bulk_load(
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| CellPoint::new(to_xyz(c.center), i as u32))
                .collect(),
        );
        Grid {
            res,
            cells,
            index,
            tree,
            sources: HashMap::new(),
            unassigned_population: 0.0,
        }
    }

    /// Adds each point's people to its cell; returns the districts that received any.
    fn add_points(&mut self, points: &[PopulationPoint]) -> HashSet<Option<i64>> {
        let mut got = HashSet::new();
        for p in points {
            let idx = cell_at(p.pos, self.res).and_then(|c| self.index.get(&c).copied());
            match idx {
                Some(i) => {
                    let cell = &mut self.cells[i as usize];
                    cell.population += p.population;
                    if p.population > 0.0 {
                        got.insert(cell.district);
                    }
                }
                None => self.unassigned_population += p.population,
            }
        }
        got
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn index_of(&self, c: CellIndex) -> Option<u32> {
        self.index.get(&c).copied()
    }

    /// Cells whose centre is within `radius_m` of `pos` (great-circle), with the distance.
    pub fn within(&self, pos: LatLon, radius_m: f64) -> impl Iterator<Item = (u32, f64)> + '_ {
        let q = to_xyz(pos);
        // A hair wider than the radius: chord and haversine round differently; the exact
        // haversine test below decides.
        let c2 = aednet_geoindex::sphere::chord2_for_distance(radius_m * 1.0001 + 0.5);
        self.tree
            .locate_within_distance(q, c2)
            .map(move |p| (p.data, pos.distance_m(&self.cells[p.data as usize].center)))
            .filter(move |(_, d)| *d <= radius_m)
    }
}
