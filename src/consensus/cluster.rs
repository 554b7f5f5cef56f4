//! Clustering the 2-D opinion space into groups: weighted k-means on a grid of cells, k chosen
//! by silhouette.
//!
//! Pol.is first runs k-means with k = 100 on the participants ("base clusters") and then
//! clusters those 100 centres into 2–5 groups, choosing k by the silhouette of the base
//! clusters. Here the first stage is a **grid**: the participants' projections are counted
//! into at most `grid × grid` cells over the central 99 % of each axis (outliers fall into the
//! edge cells), and each occupied cell is a point weighted by its count. That does the job of
//! the base clusters — a few thousand weighted points whatever the audience — in one pass,
//! with no iteration, and it does not depend on the order of the participants (a cell's
//! position is its centre, not a running mean), so neither does anything computed from it.
//!
//! For each k in 2..=k_max (k_max = min(max_k, 2 + n/12, occupied cells), as Pol.is's
//! `max-k-fn`), the best of a few seeded k-means++ runs is kept, and the k with the highest
//! silhouette wins. The silhouette is the point-level one (every participant counts, at its
//! cell's centre), computed from all pairs of cells in one pass for every k at once.

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};

/// How the clustering runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClusterParams {
    pub grid: usize,
    pub max_k: usize,
    pub restarts: usize,
    pub max_iter: usize,
}

/// One occupied cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cell {
    pub at: [f64; 2],
    pub w: f64,
}

/// Maps points to cells.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    lo: [f64; 2],
    size: [f64; 2],
    g: usize,
}

impl Grid {
    fn cell_of(&self, p: [f64; 2]) -> usize {
        let ix = |a: usize| {
            let t = ((p[a] - self.lo[a]) / self.size[a]).floor();
            if t.is_nan() || t < 0.0 { 0 } else { (t as usize).min(self.g - 1) }
        };
        ix(1) * self.g + ix(0)
    }

    fn centre(&self, cell: usize) -> [f64; 2] {
        let (x, y) = (cell % self.g, cell / self.g);
        [self.lo[0] + (x as f64 + 0.5) * self.size[0], self.lo[1] + (y as f64 + 0.5) * self.size[1]]
    }
}

/// The value at quantile `q` (nearest rank); independent of the order of `v`.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    let k = ((v.len() - 1) as f64 * q).floor() as usize;
    *v.select_nth_unstable_by(k, f64::total_cmp).1
}

/// Counts the points into cells; returns the grid and the occupied cells in cell order.
pub(crate) fn cells(points: &[[f64; 2]], g: usize) -> (Grid, Vec<Cell>) {
    assert!(!points.is_empty() && g >= 1);
    let mut lo = [0.0; 2];
    let mut size = [1.0; 2];
    for a in 0..2 {
        let mut v: Vec<f64> = points.iter().map(|p| p[a]).collect();
        let l = quantile(&mut v, 0.005);
        let h = quantile(&mut v, 0.995);
        lo[a] = l;
        size[a] = ((h - l) / g as f64).max(1e-9);
    }
    let grid = Grid { lo, size, g };
    let mut counts = vec![0u32; g * g];
    for p in points {
        counts[grid.cell_of(*p)] += 1;
    }
    let cells = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, c)| Cell { at: grid.centre(i), w: *c as f64 })
        .collect();
    (grid, cells)
}

fn d2(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

/// The index of the nearest centre (the lowest index among equals).
pub(crate) fn nearest(p: [f64; 2], centres: &[[f64; 2]]) -> usize {
    let mut best = (f64::INFINITY, 0);
    for (i, c) in centres.iter().enumerate() {
        let d = d2(p, *c);
        if d < best.0 {
            best = (d, i);
        }
    }
    best.1
}

/// One k-means result over the cells.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Candidate {
    pub k: usize,
    pub centres: Vec<[f64; 2]>,
    /// Cluster of each cell.
    pub assign: Vec<u8>,
    pub inertia: f64,
}

fn unit(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Index drawn with probability ∝ `weights` (None if they sum to 0).
fn draw(weights: &[f64], rng: &mut Xoshiro256PlusPlus) -> Option<usize> {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let r = unit(rng) * total;
    let mut acc = 0.0;
    let mut last = None;
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 {
            acc += w;
            last = Some(i);
            if acc > r {
                return Some(i);
            }
        }
    }
    last
}

/// Weighted k-means++ and Lloyd iterations over the cells. `None` when the cells have fewer
/// than k distinct positions.
fn kmeans(cells: &[Cell], k: usize, rng: &mut Xoshiro256PlusPlus, max_iter: usize) -> Option<Candidate> {
    let w: Vec<f64> = cells.iter().map(|c| c.w).collect();
    let mut centres = vec![cells[draw(&w, rng)?].at];
    let mut dist: Vec<f64> = cells.iter().map(|c| d2(c.at, centres[0])).collect();
    while centres.len() < k {
        let wd: Vec<f64> = cells.iter().zip(&dist).map(|(c, d)| c.w * d).collect();
        let next = cells[draw(&wd, rng)?].at;
        centres.push(next);
        for (d, c) in dist.iter_mut().zip(cells) {
            *d = d.min(d2(c.at, next));
        }
    }
    let mut assign = vec![u8::MAX; cells.len()];
    for _ in 0..max_iter {
        let mut changed = false;
        for (a, c) in assign.iter_mut().zip(cells) {
            let n = nearest(c.at, &centres) as u8;
            changed |= *a != n;
            *a = n;
        }
        if !changed {
            break;
        }
        let mut sum = vec![[0.0f64; 3]; k];
        for (a, c) in assign.iter().zip(cells) {
            let s = &mut sum[*a as usize];
            s[0] += c.w * c.at[0];
            s[1] += c.w * c.at[1];
            s[2] += c.w;
        }
        for (i, s) in sum.iter().enumerate() {
            if s[2] > 0.0 {
                centres[i] = [s[0] / s[2], s[1] / s[2]];
            } else {
                // An empty cluster takes the cell that costs most where it is.
                let far = (0..cells.len())
                    .max_by(|x, y| {
                        let cx = cells[*x].w * d2(cells[*x].at, centres[assign[*x] as usize]);
                        let cy = cells[*y].w * d2(cells[*y].at, centres[assign[*y] as usize]);
                        cx.total_cmp(&cy).then(y.cmp(x))
                    })
                    .expect("cells are not empty");
                centres[i] = cells[far].at;
            }
        }
    }
    let inertia = assign.iter().zip(cells).map(|(a, c)| c.w * d2(c.at, centres[*a as usize])).sum();
    Some(Candidate { k, centres, assign, inertia })
}

/// The best of `restarts` k-means runs for each k in 2..=k_max, with their silhouettes.
pub(crate) fn candidates(cells: &[Cell], n_points: usize, p: &ClusterParams, seed: u64) -> Vec<(Candidate, f64)> {
    let k_max = p.max_k.min(2 + n_points / 12).min(cells.len());
    let mut out = Vec::new();
    for k in 2..=k_max {
        let mut best: Option<Candidate> = None;
        for r in 0..p.restarts.max(1) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ ((k as u64) << 40) ^ ((r as u64) << 32) ^ 0x5eed);
            if let Some(c) = kmeans(cells, k, &mut rng, p.max_iter)
                && best.as_ref().is_none_or(|b| c.inertia < b.inertia)
            {
                best = Some(c);
            }
        }
        out.extend(best);
    }
    let s = silhouettes(cells, &out);
    out.into_iter().zip(s).collect()
}

/// Mean silhouette of each candidate, every point counted (at its cell's centre).
fn silhouettes(cells: &[Cell], cands: &[Candidate]) -> Vec<f64> {
    if cands.is_empty() {
        return Vec::new();
    }
    let n = cells.len();
    let offs: Vec<usize> = cands.iter().scan(0, |acc, c| { let o = *acc; *acc += c.k; Some(o) }).collect();
    let total: usize = cands.iter().map(|c| c.k).sum();
    // sums[i * total + off(l) + c]: Σ w_j · dist(i, j) over cells j ≠ i in cluster c of candidate l.
    let mut sums = vec![0.0f64; n * total];
    for i in 0..n {
        for j in i + 1..n {
            let d = d2(cells[i].at, cells[j].at).sqrt();
            let (wi, wj) = (cells[i].w * d, cells[j].w * d);
            for (l, cand) in cands.iter().enumerate() {
                sums[i * total + offs[l] + cand.assign[j] as usize] += wj;
                sums[j * total + offs[l] + cand.assign[i] as usize] += wi;
            }
        }
    }
    cands
        .iter()
        .enumerate()
        .map(|(l, cand)| {
            let mut weight = vec![0.0; cand.k];
            for (a, c) in cand.assign.iter().zip(cells) {
                weight[*a as usize] += c.w;
            }
            let (mut acc, mut wsum) = (0.0, 0.0);
            for (i, c) in cells.iter().enumerate() {
                let own = cand.assign[i] as usize;
                let s = &sums[i * total + offs[l]..i * total + offs[l] + cand.k];
                wsum += c.w;
                if weight[own] <= 1.0 {
                    continue; // a cluster of one point: silhouette 0
                }
                let a = s[own] / (weight[own] - 1.0);
                let b = (0..cand.k)
                    .filter(|o| *o != own && weight[*o] > 0.0)
                    .map(|o| s[o] / weight[o])
                    .fold(f64::INFINITY, f64::min);
                let m = a.max(b);
                if m > 0.0 && b.is_finite() {
                    acc += c.w * (b - a) / m;
                }
            }
            if wsum > 0.0 { acc / wsum } else { 0.0 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(centres: &[([f64; 2], usize)]) -> Vec<[f64; 2]> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut out = Vec::new();
        for (c, n) in centres {
            for _ in 0..*n {
                out.push([c[0] + unit(&mut rng) - 0.5, c[1] + unit(&mut rng) - 0.5]);
            }
        }
        out
    }

    #[test]
    fn silhouette_prefers_the_number_of_blobs() {
        let pts = blobs(&[([0.0, 0.0], 300), ([10.0, 0.0], 150), ([5.0, 9.0], 60)]);
        let (_, cells) = cells(&pts, 40);
        let p = ClusterParams { grid: 40, max_k: 5, restarts: 4, max_iter: 100 };
        let cands = candidates(&cells, pts.len(), &p, 42);
        let best = cands.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        assert_eq!(best.0.k, 3, "{:?}", cands.iter().map(|(c, s)| (c.k, *s)).collect::<Vec<_>>());
        assert!(best.1 > 0.8);
        assert_eq!(cands, candidates(&cells, pts.len(), &p, 42), "deterministic for a seed");
    }

    #[test]
    fn the_grid_ignores_the_order_of_points_and_clamps_outliers() {
        let mut pts = blobs(&[([0.0, 0.0], 200), ([4.0, 4.0], 200)]);
        pts.push([1e6, -1e6]);
        let (g1, c1) = cells(&pts, 16);
        pts.reverse();
        let (_, c2) = cells(&pts, 16);
        assert_eq!(c1, c2);
        assert_eq!(g1.cell_of([1e6, -1e6]), 15, "an outlier falls into an edge cell");
        assert_eq!(c1.iter().map(|c| c.w).sum::<f64>(), 401.0);
    }

    #[test]
    fn identical_points_give_no_second_cluster() {
        let pts = vec![[1.0, 1.0]; 50];
        let (_, cells) = cells(&pts, 40);
        assert_eq!(cells.len(), 1);
        let p = ClusterParams { grid: 40, max_k: 5, restarts: 2, max_iter: 100 };
        assert!(candidates(&cells, 50, &p, 1).is_empty());
    }
}
